import type { IncomingMessage, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { createMeter, type Exchange, type UsagewireOptions } from '@usagewire/core'
import {
  attachExchange,
  carryBody,
  clientLeft,
  outcomeOf,
  exchangeOf,
  interceptResponse,
  runInExchange,
  type HeldHead,
  type ResponseHandle,
} from '@usagewire/core/node'
import { carriable } from './body.js'
import { flushWhenCompressed } from './flush.js'

export { exchangeOf } from '@usagewire/core/node'
export type { Exchange, UsageRecord, UsagewireOptions, RouteRule, Logger, Dialect, Sink } from '@usagewire/core'

/** What usagewire reads and sets on a Koa (2 or 3) context, without depending on Koa's types. */
export interface KoaContext {
  req: IncomingMessage
  res: ServerResponse
  method: string
  /** The URL as the client sent it: koa-mount and routers strip their prefix from `ctx.path`, not from this. */
  originalUrl: string
  status: number
  body: unknown
  respond?: boolean | undefined
  /** Holds `body` when a body parser (koa-bodyparser, @koa/bodyparser, koa-body) ran. */
  request: object
  app: object
  set(field: string, value: string): void
  remove(field: string): void
}

/** The shape of a Koa middleware, usable with `app.use` on Koa 2 and 3. */
export type UsagewireMiddleware = ((ctx: KoaContext, next: () => Promise<unknown>) => Promise<void>) & {
  /** Records delivered and sink failures so far. */
  readonly stats: Readonly<{ records: number; failures: number }>
}

interface Wired {
  exchange: Exchange
  handle: ResponseHandle
}

const requestBody = (ctx: KoaContext): unknown => (ctx.request as { body?: unknown }).body

/** Koa 3 (`app.compose` came with it) sends `Response`, `ReadableStream` and `Blob` bodies itself. */
const sendsWebBodies = (ctx: KoaContext): boolean => typeof (ctx.app as { compose?: unknown }).compose === 'function'

/** The response head as `ctx.response` holds it before Koa sends it. */
function heldHead(ctx: KoaContext): HeldHead {
  const res = ctx.res
  return {
    status: ctx.status,
    getHeader: (name) => res.getHeader(name),
    removeHeader: (name) => ctx.remove(name),
    setHeader: (name, value) => ctx.set(name, String(value)),
    // Koa destroys a body it no longer sends: when a middleware replaces it (Koa 3, at once; Koa 2, once
    // the response finished) as well as when the client left.
    clientLeft: () => clientLeft(res),
  }
}

/**
 * Koa 3 sends a stream body with `pipeline()`, which destroys it with "Premature close" when the client
 * goes away: the record must say `aborted`, not that the gateway cut the body. This listener, added before
 * Koa's, tells the two apart as the interception does (`outcomeOf`).
 */
function watchClient(res: ServerResponse, exchange: Exchange): void {
  // Not `once`, whose wrapper and removal cost more than the listener: 'close' comes once.
  res.on('close', () => {
    const outcome = outcomeOf(res)
    if (outcome.kind !== 'end') exchange.finish(outcome) // a body that ended: the carried stream finished the record
  })
}

/**
 * Koa 2 reports a body stream's failure through a listener its `body` setter adds to the stream. The
 * source stream has that listener already, and the carried body fails with the source's own error: the
 * second report of the same error is dropped, so Koa 2 reports it once, as without usagewire.
 */
function reportOnce(ctx: KoaContext): void {
  const reporting = ctx as KoaContext & { onerror?: (this: unknown, error: unknown) => void }
  const onerror = reporting.onerror
  if (typeof onerror !== 'function') return
  let reported: unknown
  reporting.onerror = function (error) {
    if (error != null && error === reported) return
    reported = error
    onerror.call(this, error)
  }
}

/**
 * Hands Koa the carried stream. Koa drops Content-Length when one body stream replaces another, but a
 * whole (JSON) body carried as a stream keeps it: usagewire sets it to the new length before the first
 * byte leaves (docs/transport.md#content-length-and-etag). A stream of events (SSE, a streamed JSON
 * array, NDJSON) is flushed through koa-compress event by event.
 */
function sendStream(ctx: KoaContext, exchange: Exchange, carried: Readable): void {
  const res = ctx.res
  if (exchange.streaming) flushWhenCompressed(carried)
  watchClient(res, exchange)
  if (!sendsWebBodies(ctx)) reportOnce(ctx)
  const length = res.getHeader('content-length')
  ctx.body = carried
  if (length !== undefined && !res.hasHeader('content-length')) ctx.set('content-length', String(length))
}

/**
 * Koa middleware: every LLM response that passes through it leaves with complete, consistent usage, and
 * `onUsage` receives one record per request. Mount it before the proxy or handler that produces the LLM
 * response, and after koa-compress:
 *
 *   app.use(compress())
 *   app.use(usagewire({ onUsage: (record) => log.info(record) }))
 *   app.use(proxy('/v1', { target: 'https://api.anthropic.com', changeOrigin: true }))
 *
 * The body a handler leaves in `ctx.body` (a stream, a Buffer, a string, an object, and on Koa 3 a
 * `Response`, `ReadableStream` or `Blob`) is carried through usagewire before Koa sends it; a response
 * written straight to `ctx.res` (koa-proxies, `ctx.respond = false`) is rewritten as it is written.
 */
export function usagewire(options: UsagewireOptions = {}): UsagewireMiddleware {
  const meter = createMeter(options)
  const warn = (message: string): void => {
    try {
      options.logger?.warn(`usagewire: ${message}`)
    } catch {
      // A logger that throws is no reason to fail a response.
    }
  }

  /**
   * Begins the Exchange and intercepts `ctx.res` before anything downstream runs, so raw writes made while
   * it runs are caught; the interception is handed back if the response turns out to be in `ctx.body`.
   */
  function wire(ctx: KoaContext): Wired | undefined {
    // Metered already, by a usagewire mounted before this one: one record per request.
    if (exchangeOf(ctx.req)?.done === false) return undefined
    try {
      const exchange = meter.begin({
        method: ctx.method,
        url: ctx.originalUrl,
        headers: (name) => ctx.req.headers[name],
        body: requestBody(ctx),
      })
      if (!exchange) return undefined
      attachExchange(ctx.req, exchange)
      return { exchange, handle: interceptResponse(exchange, ctx.res) }
    } catch (error) {
      warn(`could not wrap the response: ${(error as Error).message}`)
      return undefined
    }
  }

  /** Downstream is done: carry `ctx.body`, or leave the response to the interception. */
  function settle(ctx: KoaContext, { exchange, handle }: Wired): void {
    let released = false
    try {
      // A body parser mounted after usagewire has run by now.
      exchange.readRequestBody(requestBody(ctx))
      // `ctx.respond = false`: the handler writes (or has written) `ctx.res` itself, through the interception.
      if (ctx.respond === false) return
      const taken = carriable(ctx.body, sendsWebBodies(ctx))
      // Nothing to carry, or something already wrote to `ctx.res` (koa-proxies resolves once the proxied
      // response has finished): what Koa sends, or was sent, goes through the interception.
      if (!taken || !(released = handle.release())) return
      const carried = carryBody(exchange, heldHead(ctx), taken)
      if (carried === taken) return // not read: ctx.body stays as the application set it
      if (carried instanceof Readable) sendStream(ctx, exchange, carried)
      else ctx.body = carried // Koa keeps the Content-Type set and takes the new length
    } catch (error) {
      const reason = `could not carry the response body: ${(error as Error).message}`
      warn(reason)
      if (released) {
        exchange.passthrough(reason)
        exchange.finish({ kind: 'end' })
      }
    }
  }

  const middleware = async function usagewireMiddleware(ctx: KoaContext, next: () => Promise<unknown>): Promise<void> {
    const wired = wire(ctx)
    // A throw from downstream passes through unchanged; the interception stays on `ctx.res`, so the error
    // response Koa (or an error handler mounted before usagewire) writes still yields the record.
    // The rest of the request runs inside its Exchange: the upstream tap ties the gateway's calls to it.
    await (wired ? runInExchange(wired.exchange, next) : next())
    if (wired) settle(ctx, wired)
  }
  return Object.assign(middleware, { stats: meter.stats })
}

export default usagewire
