import { Readable } from 'node:stream'
import type { Body } from '@usagewire/core/node'

/** A Koa body in the form `carryBody` takes. */
export type Carriable = Exclude<Body, null | undefined>

/**
 * The body Koa would send for `body`, in a form usagewire can carry, or undefined when Koa is best left to
 * send it (no body, a legacy stream, something Koa itself would fail to serialize): the response then
 * goes through the interception on `ctx.res`, which still reads it and yields the record.
 *
 * `webBodies` is true on Koa 3, which sends a `Response`, `ReadableStream` or `Blob` body itself
 * (koajs/koa#1830); Koa 2 serializes those as JSON, so they are left to it.
 */
export function carriable(body: unknown, webBodies: boolean): Carriable | undefined {
  if (body === null || body === undefined) return undefined
  if (typeof body === 'string' || Buffer.isBuffer(body) || body instanceof Readable) return body
  if (typeof (body as { pipe?: unknown }).pipe === 'function') return undefined
  if (body instanceof ReadableStream || body instanceof Blob || body instanceof Response) {
    if (!webBodies) return undefined
    const stream = body instanceof ReadableStream ? body : body instanceof Blob ? body.stream() : body.body
    if (!stream) return undefined
    return lazyReadable(stream)
  }
  // Anything else is JSON to Koa: serialized the way Koa's respond() does, so the same bytes are read.
  try {
    const json: unknown = JSON.stringify(body)
    return typeof json === 'string' ? json : undefined
  } catch {
    return undefined // Koa's own respond() meets the same error and reports it
  }
}

/**
 * A Node stream over a web stream that takes the web stream's reader only when first read, so a body
 * usagewire decides not to carry stays unread for Koa to send. Destroying it (as the carried body does
 * its source when the client goes away) cancels the web stream.
 */
function lazyReadable(stream: ReadableStream<Uint8Array>): Readable {
  // Not Readable.from over an async iterator: its destroy waits for the read under way, so a web stream
  // stalled on its upstream would never be cancelled.
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined
  const readable: Readable = new Readable({
    read() {
      reader ??= stream.getReader()
      reader.read().then(
        (next) => {
          if (readable.destroyed) return
          if (next.done) readable.push(null)
          else readable.push(next.value)
        },
        (error: unknown) => readable.destroy(error instanceof Error ? error : new Error(String(error))),
      )
    },
    destroy(error, callback) {
      // Cancels the stream whether or not it was read yet: what it was reading from is let go.
      const cancelled = reader ? reader.cancel(error ?? undefined) : stream.locked ? undefined : stream.cancel(error)
      cancelled?.catch(() => {})
      callback(error)
    },
  })
  return readable
}
