import type { Transform } from 'node:stream'
import zlib from 'node:zlib'

/**
 * A streaming decoder for a response's content-encoding, or undefined when usagewire cannot decode it
 * (the response then passes untouched). Each write is flushed through, so an SSE event leaves as soon as
 * its compressed bytes arrive, and a truncated body yields what it holds instead of an error.
 */
export function createDecoder(encoding: string): Transform | undefined {
  switch (encoding) {
    case 'gzip':
    case 'x-gzip':
      return zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH })
    case 'deflate':
      return zlib.createInflate({ flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH })
    case 'br':
      return zlib.createBrotliDecompress({
        flush: zlib.constants.BROTLI_OPERATION_FLUSH,
        finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
      })
    default:
      return undefined
  }
}

/** The content encodings `createDecoder` handles. */
export const NODE_DECODERS: readonly string[] = ['gzip', 'x-gzip', 'deflate', 'br']
