import type { Readable } from 'node:stream'
import zlib from 'node:zlib'

type Compressor = { flush(callback?: () => void): void }

const COMPRESSORS = [
  zlib.Gzip,
  zlib.Deflate,
  zlib.DeflateRaw,
  zlib.BrotliCompress,
  (zlib as { ZstdCompress?: typeof zlib.Gzip }).ZstdCompress,
].filter((type): type is typeof zlib.Gzip => type !== undefined)

const isCompressor = (dest: unknown): dest is Compressor => COMPRESSORS.some((type) => dest instanceof type)

/**
 * An SSE body must leave event by event, but koa-compress pipes `ctx.body` into a zlib stream that keeps
 * its output in the compression window until the body ends (docs/transport.md#event-by-event-delivery):
 * when the carried body is piped into a compressor, the compressor is flushed after what each write
 * produced, as usagewire flushes `compression()` in Express. One flush per turn of the event loop, however
 * many pieces one upstream chunk became.
 */
export function flushWhenCompressed(body: Readable): void {
  const pipe = body.pipe
  body.pipe = function pipeAndFlush<T extends NodeJS.WritableStream>(dest: T, options?: { end?: boolean }): T {
    const piped = pipe.call(body, dest, options) as T
    if (isCompressor(dest)) {
      let due = false
      const flush = () => {
        due = false
        dest.flush()
      }
      body.on('data', () => {
        if (due) return
        due = true
        queueMicrotask(flush)
      })
    }
    return piped
  }
}
