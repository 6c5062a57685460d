import { PassThrough, Readable } from 'node:stream'
import zlib from 'node:zlib'
import type { Exchange, HeaderLookup } from '../exchange.js'
import { isStreaming } from '../framing/index.js'
import { inflateSync, NODE_DECODERS, zstdDecompressSync } from './decode.js'
import { CarriedBody } from './stream.js'

/**
 * The response head as a hook- or stream-style framework holds it before sending (Fastify's `reply`,
 * Koa's `ctx.response`): usagewire reads it and removes the headers that no longer hold. A JSON body
 * carried as a stream settles its length just before its first byte leaves, after the framework took
 * the head: until the head is sent, changes made here must reach the response.
 */
export interface HeldHead {
  status: number
  getHeader: HeaderLookup
  removeHeader(name: string): void
  setHeader(name: string, value: string | number): void
  /**
   * True once the client went away before the response ended. A carried stream destroyed without an
   * error is then the client's leaving (`aborted`); while the client is still there it is a body the
   * application dropped for another (`incomplete`). Without it, every such destroy is the client's.
   */
  clientLeft?(): boolean
  /**
   * The adapter writes the record once the response was sent, for a framework that may still send
   * something else in the body's place (a later Fastify onSend hook that fails sends an error reply):
   * a body read to its end then does not finish the Exchange, one cut or dropped still does.
   */
  deferRecord?: boolean
}

/** A body as frameworks hold it: a stream, bytes, text, or nothing. */
export type Body = Readable | Uint8Array | string | null | undefined

function decodeSync(encoding: string, bytes: Buffer): Buffer {
  switch (encoding) {
    case 'br':
      return zlib.brotliDecompressSync(bytes)
    case 'deflate':
      return inflateSync(bytes)
    case 'zstd':
      return zstdDecompressSync(bytes)
    default:
      return zlib.gunzipSync(bytes)
  }
}

/**
 * The head of a whole body carried as a stream, just before its first byte leaves: the length it has
 * now (`undefined` when bytes leave before the end: an event over the size bound, a body on hold), and
 * no ETag if usage was rewritten. A head that lost its Content-Length meanwhile frames the body itself
 * (a compressor after usagewire replaced the body); one already sent cannot change.
 */
function settleHead(exchange: Exchange, head: HeldHead, length: number | undefined): void {
  try {
    if (exchange.rewrote) head.removeHeader('etag')
    if (head.getHeader('content-length') === undefined) return
    if (length === undefined || head.getHeader('transfer-encoding') !== undefined) head.removeHeader('content-length')
    else head.setHeader('content-length', length)
  } catch {
    // The head left already: nothing to change, and no reason to fail the body.
  }
}

/**
 * Carries a framework's response body through `exchange` and returns the body to send instead, for
 * adapters that hand the framework a body rather than patching `res` (a Fastify `onSend` payload, a
 * Koa `ctx.body`). The decision at the head, decoding, header changes and the record are the
 * Exchange's, the same as for a patched `res`:
 * - a stream is carried by a {@link CarriedBody} and finishes the record when it ends, is destroyed
 *   (`abort`) or its source fails (`cut`); destroyed before its source ended, it destroys the source. A
 *   JSON stream keeps its Content-Length, set to the new length before its first byte leaves;
 * - bytes or text are read at once; the new body gets its length, and an ETag that no longer tags it is
 *   removed. A body that cannot be decoded is sent exactly as it came, headers untouched. When a hold
 *   keeps the final usage event, a stream carries the rest when it is released.
 */
export function carryBody(exchange: Exchange, head: HeldHead, body: Body): Body {
  const decision = exchange.respond({ status: head.status, headers: head.getHeader }, { decoders: NODE_DECODERS })
  const ended = (): void => {
    if (!head.deferRecord) exchange.finish({ kind: 'end' })
  }
  if (!decision.read || body === null || body === undefined) {
    ended()
    return body
  }
  if (body instanceof Readable) {
    // A whole (JSON) body is held until its end, so its new length is known before its first byte
    // leaves: it keeps a Content-Length, as through the interception (docs/transport.md#content-length-and-etag).
    const whole = !isStreaming(decision.framing)
    for (const name of decision.remove) if (!whole || name !== 'content-length') head.removeHeader(name)
    // The framework destroys the body it sends when the client goes away (Fastify, Koa); that is now the
    // carried body, which releases its source (an upstream response) then.
    return new CarriedBody(body, exchange, decision, {
      headDue: whole ? (length) => settleHead(exchange, head, length) : undefined,
      clientLeft: head.clientLeft ? () => head.clientLeft!() : undefined,
      deferRecord: head.deferRecord,
    })
  }
  let bytes = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  if (decision.decode) {
    try {
      bytes = decodeSync(decision.decode, bytes)
    } catch (error) {
      exchange.passthrough(`content-encoding ${decision.decode}: ${(error as Error).message}`)
      ended()
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
      ended()
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
  if (exchange.rewrote) head.removeHeader('etag')
  ended()
  return result
}
