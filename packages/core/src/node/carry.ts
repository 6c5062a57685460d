import { PassThrough, Readable } from 'node:stream'
import zlib from 'node:zlib'
import type { Exchange, HeaderLookup } from '../exchange.js'
import { NODE_DECODERS } from './decode.js'
import { UsageTransform } from './stream.js'

/**
 * The response head as a hook- or stream-style framework holds it before sending (Fastify's `reply`,
 * Koa's `ctx.response`): usagewire reads it and removes the headers that no longer hold.
 */
export interface HeldHead {
  status: number
  getHeader: HeaderLookup
  removeHeader(name: string): void
  setHeader(name: string, value: string | number): void
}

/** A body as frameworks hold it: a stream, bytes, text, or nothing. */
export type Body = Readable | Uint8Array | string | null | undefined

function decodeSync(encoding: string, bytes: Buffer): Buffer {
  switch (encoding) {
    case 'br':
      return zlib.brotliDecompressSync(bytes)
    case 'deflate':
      return zlib.inflateSync(bytes)
    default:
      return zlib.gunzipSync(bytes)
  }
}

/**
 * Carries a framework's response body through `exchange` and returns the body to send instead, for
 * adapters that hand the framework a body rather than patching `res` (a Fastify `onSend` payload, a
 * Koa `ctx.body`). The decision at the head, decoding, header changes and the record are the
 * Exchange's, the same as for a patched `res`:
 * - a stream is carried by a {@link UsageTransform} and finishes the record when it ends, is destroyed
 *   (`abort`) or its source fails (`cut`);
 * - bytes or text are read at once; the new body gets its length, and an ETag that no longer tags it is
 *   removed. A body that cannot be decoded is sent exactly as it came, headers untouched. When a hold
 *   keeps the final usage event, a stream carries the rest when it is released.
 */
export function carryBody(exchange: Exchange, head: HeldHead, body: Body): Body {
  const decision = exchange.respond({ status: head.status, headers: head.getHeader }, { decoders: NODE_DECODERS })
  if (!decision.read || body === null || body === undefined) {
    exchange.finish({ kind: 'end' })
    return body
  }
  if (body instanceof Readable) {
    for (const name of decision.remove) head.removeHeader(name)
    const transform = new UsageTransform(exchange, decision)
    body.once('error', (error: Error) => transform.destroy(error))
    return body.pipe(transform)
  }
  let bytes = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  if (decision.decode) {
    try {
      bytes = decodeSync(decision.decode, bytes)
    } catch (error) {
      exchange.passthrough(`content-encoding ${decision.decode}: ${(error as Error).message}`)
      exchange.finish({ kind: 'end' })
      return body
    }
  }
  const out = exchange.push(bytes)
  const held = new PassThrough()
  const { chunks, deferred } = exchange.end({
    write: (more) => {
      for (const chunk of more) held.write(chunk)
    },
    end: () => {
      held.end()
      exchange.finish({ kind: 'end' })
    },
  })
  for (const name of decision.remove) head.removeHeader(name)
  if (deferred) {
    // The final usage event waits for a truer source: what is ready leaves now, the rest on release.
    for (const chunk of [...out, ...chunks]) held.write(chunk)
    return held
  }
  const result = Buffer.concat([...out, ...chunks])
  head.setHeader('content-length', result.length)
  if ((exchange.result()?.corrections.length ?? 0) > 0) head.removeHeader('etag')
  exchange.finish({ kind: 'end' })
  return result
}
