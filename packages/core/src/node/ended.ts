import { OutgoingMessage, ServerResponse } from 'node:http'
import type { Outcome } from '../exchange.js'

/**
 * How a response ended, for node:http and for node:http2's compatibility API alike
 * (docs/transport.md#http2). Every adapter reads the end of a response here, so a record says `aborted`
 * for a client that left, `incomplete` for a response the gateway destroyed, whatever the protocol.
 */

/** The part of an `Http2Stream` read here: set on the `stream` of an `Http2ServerResponse`. */
interface H2Stream {
  readonly rstCode: number | undefined
  readonly aborted: boolean
  readonly errored: (Error & { code?: string }) | null
}

/**
 * The HTTP/2 stream under `res`, when `res` is an `Http2ServerResponse`. A node:http response is told by
 * its class, not by reading `stream` off it: with Express every response has a shape of its own, and a
 * read of a property it lacks walks its whole prototype chain.
 */
function h2Stream(res: ServerResponse): H2Stream | undefined {
  if (res instanceof ServerResponse) return undefined
  const stream = (res as { stream?: unknown }).stream
  return typeof stream === 'object' && stream !== null && 'rstCode' in stream ? (stream as H2Stream) : undefined
}

/**
 * node:http's getters of how a response stands, read once and called on it: read off an Express response,
 * each would miss V8's caches (see `h2Stream`), once per response, as usagewire is the one that reads
 * them when it closes. Undefined on a Node without them as getters: the response is read as before.
 */
const getter = (name: string): ((this: ServerResponse) => unknown) | undefined =>
  Object.getOwnPropertyDescriptor(OutgoingMessage.prototype, name)?.get
const WRITABLE_FINISHED = getter('writableFinished')
const ERRORED = getter('errored')

const END: Outcome = { kind: 'end' }
const ABORT: Outcome = { kind: 'abort' }

const cut = (error: Error): Outcome => ({ kind: 'cut', reason: `response destroyed: ${error.message}` })

/**
 * A reset from the client reaches an HTTP/2 stream as `ERR_HTTP2_STREAM_ERROR` (any code but CANCEL,
 * which leaves no error): the client's doing, not the gateway's.
 */
function gatewayError(stream: H2Stream): Error | undefined {
  const errored = stream.errored
  return errored && errored.code !== 'ERR_HTTP2_STREAM_ERROR' ? errored : undefined
}

/**
 * How `res` ended, read once it closed, or at its 'finish' event (`finished`). On node:http, a response
 * that finished ended; one destroyed with an error was cut by the gateway (`pipeline()` on an upstream
 * reset); one closed without either was left by its client. On HTTP/2, 'finish' and `writableFinished`
 * come for a stream the client reset too: only a stream whose writer ended it, and that was not reset,
 * ended.
 */
export function outcomeOf(res: ServerResponse, finished = false): Outcome {
  const stream = h2Stream(res)
  if (stream !== undefined) {
    if (res.writableEnded && !stream.aborted) return END
    const error = gatewayError(stream)
    return error ? cut(error) : ABORT
  }
  const http1 = res instanceof ServerResponse
  if (finished || (http1 && WRITABLE_FINISHED ? WRITABLE_FINISHED.call(res) : res.writableFinished)) return END
  const errored = (http1 && ERRORED ? ERRORED.call(res) : (res as { errored?: unknown }).errored) as
    Error | null | undefined
  return errored ? cut(errored) : ABORT
}

/**
 * True once the client of `res` went away before the response ended: for `HeldHead.clientLeft`. A
 * framework may hear of it from the socket (Koa 2's on-finished) before `res` itself is destroyed. An
 * HTTP/2 client leaves by resetting its stream (or its whole connection), which the stream tells.
 */
export function clientLeft(res: ServerResponse): boolean {
  const stream = h2Stream(res)
  if (stream !== undefined) return stream.aborted && !res.writableEnded && gatewayError(stream) === undefined
  return !res.writableFinished && (res.destroyed || res.socket === null || res.socket.destroyed === true)
}
