import { Readable } from 'node:stream'
import type { ServerResponse } from 'node:http'
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { createMeter, type Exchange, type Logger, type SinkStats, type UsagewireOptions } from '@usagewire/core'
import {
  attachExchange,
  carryBody,
  clientLeft,
  outcomeOf,
  exchangeOf,
  interceptResponse,
  runInExchange,
  type Body,
  type HeldHead,
  type ResponseHandle,
} from '@usagewire/core/node'

export { exchangeOf } from '@usagewire/core/node'

export type {
  Dialect,
  Exchange,
  Logger,
  RouteRule,
  Sink,
  SinkLike,
  UsageRecord,
  UsagewireOptions,
} from '@usagewire/core'

/** What `fastify.usagewire` holds once the plugin is registered. */
export interface UsagewireDecoration {
  /** Records delivered and sink failures so far. */
  readonly stats: Readonly<SinkStats>
}

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The Exchange of an LLM request usagewire meters; null for every other request. Its `record` is the
     * usage record once the response has finished (in `onResponse`). Code that knows truer numbers than
     * the response it sends writes them with `usagewire.ledger.observe('tap', usage, sources)`.
     */
    usagewire: Exchange | null
  }
  interface FastifyInstance {
    usagewire: UsagewireDecoration
  }
}

/** What the plugin keeps for a metered request between `onRequest` and `onSend`. */
interface Pending {
  exchange: Exchange
  /** The interception of `reply.raw`, until `onSend` gives it back. */
  handle: ResponseHandle | undefined
  /** The stream `onSend` handed on, while it may still run again for the same request. */
  carried: Readable | undefined
  /** `onSend` handed on a whole body it read at once: its record waits for the response to be sent. */
  whole: boolean
}

const isNodeReadable = (value: unknown): value is Readable => value instanceof Readable

/**
 * A response the interception carries (hijacked, raw writes, a stream Fastify pipes itself) has ended
 * once 'finish' comes. The interception tells that from `writableFinished` at 'close', which a response
 * injected by `fastify.inject` (light-my-request) never sets: without this, every such record there
 * would say `aborted`. One function for every response; the record is written once, the first time.
 */
function finishedWriting(this: ServerResponse): void {
  // On HTTP/2, 'finish' comes for a stream the client reset as well: the response tells which.
  exchangeOf(this.req)?.finish(outcomeOf(this, true))
}

/** A carried response closed: before 'finish' (whose record is written by then) the client left. */
function closedWriting(this: ServerResponse): void {
  exchangeOf(this.req)?.finish({ kind: 'abort' })
}

/**
 * Fastify sends a reply with trailers chunked, and leaves a Content-Length set before it in place: the
 * client would get both. Its trailers are kept under a symbol of Fastify's own (the same in 4 and 5).
 */
function hasTrailers(reply: FastifyReply): boolean {
  for (const symbol of Object.getOwnPropertySymbols(reply)) {
    if (symbol.description === 'fastify.reply.trailers')
      return (reply as unknown as Record<symbol, unknown>)[symbol] != null
  }
  return false
}

/**
 * The response head as `reply` holds it. A JSON body sent as a stream gets its length after `onSend`
 * (just before its first byte leaves), when Fastify has copied `reply`'s headers onto `raw` with
 * `setHeader` and not yet sent them: a change then must reach `raw` too. A header `raw` does not have is
 * set on `reply` only, so one that a later onSend hook removes (@fastify/compress drops the length of
 * the body it replaces) never reaches the client.
 */
function heldHead(reply: FastifyReply): HeldHead {
  const raw = reply.raw as ServerResponse
  return {
    status: reply.statusCode,
    getHeader: (name) => reply.getHeader(name),
    removeHeader: (name) => {
      reply.removeHeader(name)
      if (!raw.headersSent && raw.hasHeader(name)) raw.removeHeader(name)
    },
    setHeader: (name, value) => {
      if (name === 'content-length' && hasTrailers(reply)) return
      reply.header(name, value)
      if (!raw.headersSent && raw.hasHeader(name)) raw.setHeader(name, value)
    },
    // @fastify/compress (version 9) pipes the carried body into its compressor, whose pipeline destroys
    // it with "Premature close" when the client leaves: the response tells that the client left.
    clientLeft: () => clientLeft(raw),
    // A later onSend hook may still fail, and Fastify then sends an error reply instead: the record
    // waits for the response to be sent (finishedWriting, closedWriting).
    deferRecord: true,
  }
}

type WebStream = import('node:stream/web').ReadableStream

/**
 * True for a payload `carryBody` can take here: nothing, text, bytes, a Node stream, a WHATWG stream or
 * a fetch `Response`. Anything else (a userland stream Fastify pipes) stays with the interception,
 * which reads what Fastify writes.
 */
function carriable(payload: unknown): boolean {
  return (
    payload === null ||
    payload === undefined ||
    typeof payload === 'string' ||
    payload instanceof Uint8Array ||
    isNodeReadable(payload) ||
    (typeof ReadableStream === 'function' && payload instanceof ReadableStream) ||
    (typeof Response === 'function' && payload instanceof Response)
  )
}

/**
 * A carriable payload as a body `carryBody` takes. A fetch `Response` is unwrapped into `reply`, as
 * Fastify itself does after `onSend`; a WHATWG stream becomes a Node stream (destroying it cancels the
 * web stream).
 */
function bodyOf(reply: FastifyReply, payload: unknown): Body {
  if (typeof Response === 'function' && payload instanceof Response) {
    reply.code(payload.status)
    for (const [name, value] of payload.headers) reply.header(name, value)
    return payload.body === null ? null : Readable.fromWeb(payload.body as WebStream)
  }
  if (typeof ReadableStream === 'function' && payload instanceof ReadableStream) {
    return Readable.fromWeb(payload as WebStream)
  }
  return payload as Body
}

/** The request decorator that holds what the hooks of one request share. */
const PENDING = Symbol.for('usagewire.fastify.pending')

const usagewirePlugin: FastifyPluginCallback<UsagewireOptions> = (fastify, options, done) => {
  if (fastify.hasDecorator('usagewire')) {
    done(new Error('@usagewire/fastify is already registered in this scope or a parent scope'))
    return
  }
  let meter: ReturnType<typeof createMeter>
  try {
    // Options are checked once, here: a mistake in them fails `fastify.ready()`, not a request.
    meter = createMeter({ ...options, logger: options.logger ?? (fastify.log as Logger) })
  } catch (error) {
    done(error as Error)
    return
  }
  const logger = meter.options.logger
  const warn = (message: string): void => {
    try {
      logger?.warn(`usagewire: ${message}`)
    } catch {
      // A logger that throws is no reason to fail a response.
    }
  }
  // Per-request state on a request decorator, not in a WeakMap: an entry per request costs every
  // scavenge (bench/README.md), and a declared decorator keeps the request's shape.
  const pending = {
    get: (request: FastifyRequest): Pending | undefined =>
      (request as unknown as Record<symbol, Pending | null>)[PENDING] ?? undefined,
    has: (request: FastifyRequest): boolean => (request as unknown as Record<symbol, Pending | null>)[PENDING] != null,
    set: (request: FastifyRequest, state: Pending): void => {
      ;(request as unknown as Record<symbol, Pending | null>)[PENDING] = state
    },
  }

  fastify.decorate('usagewire', { stats: meter.stats } satisfies UsagewireDecoration)
  if (!fastify.hasRequestDecorator('usagewire')) fastify.decorateRequest('usagewire', null)
  if (!fastify.hasRequestDecorator(PENDING as unknown as string))
    fastify.decorateRequest(PENDING as unknown as string, null)

  // The response is intercepted as the request arrives, so whatever answers it is seen: `reply.send`
  // (carried in onSend below) or raw writes after `reply.hijack()`, which never reach onSend.
  fastify.addHook('onRequest', (request, reply, next) => {
    let begun: Exchange | undefined
    try {
      // Another registration further up already meters this request: one record per request.
      if (request.usagewire) return next()
      const exchange = meter.begin({
        method: request.method,
        // The full path, prefixes included, whatever scope the plugin was registered in.
        url: request.url,
        headers: (name) => request.headers[name],
      })
      if (exchange) {
        request.usagewire = exchange
        attachExchange(request.raw, exchange) // exchangeOf(request.raw), for code that sees only node:http
        const raw = reply.raw as ServerResponse
        const handle = interceptResponse(exchange, raw)
        // Before Fastify's own 'finish' listener: the record is there by onResponse.
        // Not a `once` listener (a closure made per response): 'finish' comes once, and a record once written stays.
        raw.prependListener('finish', finishedWriting)
        pending.set(request, { exchange, handle, carried: undefined, whole: false })
        begun = exchange
      }
    } catch (error) {
      warn(`could not wrap the response: ${(error as Error).message}`)
    }
    // The rest of the request runs inside its Exchange: the upstream tap ties the gateway's calls to it.
    if (begun) runInExchange(begun, next)
    else next()
  })

  // Fastify parses the body after onRequest: its model and stream flag reach the record here.
  fastify.addHook('preValidation', (request, _reply, next) => {
    const body: unknown = request.body
    const exchange = pending.has(request) ? request.usagewire : null
    if (!exchange) return next()
    if (body !== undefined) exchange.readRequestBody(body)
    // The body was read on the socket's events, outside the request's Exchange: the handler runs inside it.
    runInExchange(exchange, next)
  })

  fastify.addHook('onSend', (request, reply, payload, next) => {
    const state = pending.get(request)
    if (!state) return next(null, payload)
    const { exchange, handle } = state
    if (state.carried || state.whole) {
      // onSend runs again for the same request: a later hook failed and Fastify sends an error reply
      // instead of the body handed on before, which will never be sent. A stream is destroyed (its source
      // with it); the error reply is not an LLM response and leaves as it is.
      const reason = 'the response was replaced by an error reply'
      const carried = state.carried
      if (carried) {
        carried.once('error', () => {}) // the cut is the record's to tell, not an uncaught error
        carried.destroy(new Error(reason))
      }
      exchange.finish({ kind: 'cut', reason })
      state.carried = undefined
      state.whole = false
      return next(null, payload)
    }
    // A payload carried here is read before any later onSend hook (a compressor) changes it; one that
    // cannot be, and raw writes made before reply.send(), stay with the interception, which reads
    // what reaches `reply.raw` and writes the record.
    if (!handle || !carriable(payload) || !handle.release()) return next(null, payload)
    state.handle = undefined
    // The record is written once the response was sent ('finish'), or the client left ('close').
    reply.raw.on('close', closedWriting)
    try {
      const body = bodyOf(reply, payload)
      const out = carryBody(exchange, heldHead(reply), body)
      if (isNodeReadable(out) && out !== body) state.carried = out
      else state.whole = true
      next(null, out)
    } catch (error) {
      const message = (error as Error).message
      warn(`could not carry the response: ${message}`)
      exchange.passthrough(`could not carry the response: ${message}`)
      exchange.finish({ kind: 'end' })
      next(null, payload)
    }
  })

  done()
}

/**
 * The Fastify plugin: every LLM response of the scope it is registered in leaves with complete,
 * consistent usage, and `onUsage` receives one record per request. Register it before the routes or
 * the proxy that answers LLM requests:
 *
 *   await fastify.register(usagewire, { onUsage: (record) => fastify.log.info(record) })
 *   await fastify.register(proxy, { upstream: 'https://api.anthropic.com', prefix: '/v1', rewritePrefix: '/v1' })
 *
 * Wrapped with fastify-plugin, so its hooks belong to the scope it is registered in (not a new child
 * scope); routes are matched by their full path, prefixes included.
 */
export const usagewire = fp(usagewirePlugin, { fastify: '4.x || 5.x', name: '@usagewire/fastify' })

export default usagewire
