import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http'
import type { Exchange, UsagewireOptions } from '@usagewire/core'
import { createInterceptor, exchangeOf, parsedBody, tapClientRequest, tapInstalled } from '@usagewire/core/node'

export { exchangeOf } from '@usagewire/core/node'
export type { UsageRecord, UsagewireOptions, RouteRule, Logger, Dialect, Sink } from '@usagewire/core'

/**
 * The proxy server a plugin is given: http-proxy's in http-proxy-middleware 3, httpxy's in 4. Both are
 * EventEmitters with the same per-request events (`start`, `proxyReq`, `proxyRes`, `error`, `end`).
 */
export interface ProxyServer {
  on(event: string, listener: (...args: any[]) => void): unknown
}

/** The request as a framework in front of the proxy may have left it (Express, connect, a body parser). */
type Request = IncomingMessage & { originalUrl?: string; body?: unknown }

/** A plugin for `createProxyMiddleware({ plugins: [...] })`, without depending on either major's types. */
export type UsagewirePlugin = ((proxyServer: ProxyServer, proxyOptions?: { selfHandleResponse?: boolean }) => void) & {
  /** Records delivered and sink failures so far. */
  readonly stats: Readonly<{ records: number; failures: number }>
}

/** What the plugin keeps about a request it meters, for the events that follow its `start`. */
interface Metered {
  exchange: Exchange
  /** The request to the upstream, once the proxy has made it. */
  upstream: ClientRequest | undefined
  /** The upstream answered: an error from now on cut a body already on its way. */
  answered: boolean
  /** The client's response closed before it finished: the client went away. */
  gone: boolean
  /** With onAbort 'drain': the upstream body was read to its end (or failed), or drain was not possible. */
  drained?: boolean
}

const explain = (error: unknown): string => {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
  return [code, message].filter((part) => typeof part === 'string' && part !== '').join(': ') || String(error)
}

/**
 * `onAbort: 'drain'`: once the client left, the rest of the upstream body is read into the Exchange
 * (nobody sees it), so the record holds the provider's final usage. An encoded body is not: its reading
 * happens in the response's decoder, which went with the client.
 */
function drainOnAbort(state: Metered, proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse): void {
  const { exchange } = state
  const encoding = proxyRes.headers['content-encoding']
  // http-proxy-middleware's own plugins destroy the upstream response when the client's closes.
  const destroy = proxyRes.destroy
  proxyRes.destroy = function (this: IncomingMessage, error?: Error) {
    return keeps(state, req) ? this : destroy.call(this, error)
  }
  const cancel = (): false => {
    // Nothing will read on: the upstream is cancelled after all.
    state.drained = true
    state.upstream?.destroy()
    return false
  }
  exchange.drainWith((done) => {
    if (proxyRes.complete) return false
    if ((encoding && encoding !== 'identity') || proxyRes.destroyed || !exchange.reading) {
      state.drained = true
      proxyRes.destroy()
      return cancel()
    }
    proxyRes.unpipe(res)
    proxyRes.on('data', (chunk: Buffer) => exchange.push(chunk))
    const over = (): void => {
      state.drained = true
      done()
    }
    proxyRes.once('end', () => {
      exchange.end()
      over()
    })
    proxyRes.once('close', over)
    proxyRes.resume()
    return true
  })
}

/**
 * `onAbort: 'drain'`: the proxy cancels the upstream request when the client leaves (http-proxy on the
 * request's 'aborted', httpxy on the response's 'close'); once the upstream answered, that cancel is
 * skipped so the body can be read to its end. Before the upstream answered, it is cancelled as usual.
 */
function keepWhenClientLeaves(proxyReq: ClientRequest, req: IncomingMessage, state: Metered): void {
  const destroy = proxyReq.destroy
  const abort = proxyReq.abort
  proxyReq.destroy = function (this: ClientRequest, error?: Error) {
    return keeps(state, req) ? this : destroy.call(this, error)
  }
  proxyReq.abort = function (this: ClientRequest) {
    if (!keeps(state, req)) abort.call(this)
  }
}

/** The client left after the upstream answered, and its body is still to be drained. */
const keeps = (state: Metered, req: IncomingMessage): boolean =>
  state.answered && !state.drained && (state.gone || req.destroyed || req.socket?.destroyed === true)

/**
 * An http-proxy-middleware (3 or 4) plugin: every LLM response the proxy streams leaves with complete,
 * consistent usage, and `onUsage` receives one record per request.
 *
 *   createProxyMiddleware({ target: 'https://api.anthropic.com', plugins: [usagewire({ onUsage })] })
 *
 * It connects the client's response to an Exchange when the proxy starts a request, before the proxy
 * copies the upstream's status and headers onto it and pipes the upstream body through it, so the body
 * streams as it arrives (docs/transport.md#event-by-event-delivery) and every `on.proxyRes` handler
 * still sees the upstream response untouched. It never buffers: `responseInterceptor` holds the whole
 * body until its end, which holds an SSE stream until it is over (docs/peer-bugs.md row 49).
 */
export function usagewire(options: UsagewireOptions = {}): UsagewirePlugin {
  const intercept = createInterceptor(options)
  const warn = (what: string, error: unknown): void => {
    try {
      options.logger?.warn(`usagewire: ${what}: ${explain(error)}`)
    } catch {
      // A logger that throws is no reason to fail a response.
    }
  }

  const plugin = (proxyServer: ProxyServer, proxyOptions?: { selfHandleResponse?: boolean }): void => {
    // On the request, not in a WeakMap: an entry per request costs every scavenge (bench/README.md).
    const METERED = Symbol('usagewire.metered')
    const metered = {
      get: (req: IncomingMessage): Metered | undefined => (req as Carrying)[METERED],
      set: (req: IncomingMessage, state: Metered): void => void ((req as Carrying)[METERED] = state),
    }
    type Carrying = IncomingMessage & { [METERED]?: Metered }
    // With `selfHandleResponse` the user's own `on.proxyRes` handler writes the response: what it does
    // when the upstream breaks off is its own business.
    const selfHandled = proxyOptions?.selfHandleResponse === true

    // The first per-request event with both `req` and `res`, emitted before the upstream request is made.
    proxyServer.on('start', (req: Request, res: ServerResponse, target?: unknown) => {
      try {
        if (typeof res?.writeHead !== 'function') return
        // A usagewire in front (@usagewire/express) meters this request already, into one record: its
        // Exchange gets from here what only the proxy sees (an upstream that breaks off mid-body, a client
        // that leaves before the upstream answered).
        let exchange = exchangeOf(req)
        if (exchange?.done) exchange = undefined
        if (!exchange) {
          // Express and connect strip a mount path from req.url and keep the client's path in originalUrl.
          const path = req.originalUrl ?? req.url
          const body = parsedBody(req)
          exchange = intercept(req, res, path, body)
          // A pathRewrite that maps a gateway path onto a provider's (`/claude` → `/v1/messages`) shows the
          // LLM route only in the path sent upstream, which is req.url by now, after the target's own path.
          if (!exchange && req.url !== undefined && req.url !== path) exchange = intercept(req, res, req.url, body)
          if (!exchange) {
            const upstreamPath = joinTargetPath(target, req.url)
            if (upstreamPath !== undefined) exchange = intercept(req, res, upstreamPath, body)
          }
        }
        if (!exchange) return
        // An `Expect: 100-continue` the gateway's server answered already is not sent on: http-proxy 1.x
        // emits no `proxyReq` for a request that carries it, and the upstream request is known only there.
        if (req.headers.expect !== undefined) delete req.headers.expect
        const state: Metered = { exchange, upstream: undefined, answered: false, gone: false }
        metered.set(req, state)
        // The client gone: cancel the upstream request. With http-proxy 1.x nothing does before the
        // upstream has answered (nor after, when http-proxy-middleware's default plugins are ejected): the
        // provider would generate, and bill, the whole answer for nobody (docs/peer-bugs.md row 45).
        res.once('close', () => {
          if (res.writableFinished) return
          state.gone = true
          // With onAbort 'drain', an upstream that answered is read to its end instead (below).
          if (!(state.answered && exchange.drainsOnAbort)) state.upstream?.destroy()
        })
      } catch (error) {
        warn('could not wrap the response', error)
      }
    })

    proxyServer.on('proxyReq', (proxyReq: ClientRequest, req: IncomingMessage) => {
      const state = metered.get(req)
      if (!state) return
      if (state.gone) {
        proxyReq.destroy()
        return
      }
      state.upstream = proxyReq
      if (state.exchange.drainsOnAbort) keepWhenClientLeaves(proxyReq, req, state)
      // A gateway that translates what the provider answers (`selfHandleResponse`) has the provider's own
      // numbers only here: with the upstream tap installed, they enter the request's ledger.
      if (tapInstalled()) tapClientRequest(state.exchange, proxyReq)
      // An upstream that fails after it answered (a reset mid-stream) cut the body on its way: the proxy's
      // error handler then ends the response, which would otherwise read as a stream that merely stopped.
      proxyReq.on('error', (error: Error) => {
        if (state.answered) state.exchange.finish({ kind: 'cut', reason: `upstream: ${explain(error)}` })
      })
    })

    proxyServer.on('proxyRes', (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) => {
      const state = metered.get(req)
      if (!state) return
      state.answered = true
      // proxyRes is the provider's own response, before anything the gateway does to it: the upstream tap
      // (docs/architecture.md#what-plugs-in-where) attaches here, and a user's `on.proxyRes` handler can
      // reach the same Exchange with exchangeOf(req) to write truer numbers or hold the final usage event.
      if (selfHandled) return
      if (state.exchange.drainsOnAbort) drainOnAbort(state, proxyRes, req, res)
      // The upstream body broke off (a reset, a connection closed mid-body). http-proxy 1.x would leave the
      // client waiting for the rest forever, and either major's error handler may end the response as if
      // it were whole: the record says the body was cut, and a response still open is cut for the client.
      const brokeOff = (error?: Error): void => {
        if (proxyRes.complete) return
        const reason = error ? `upstream: ${explain(error)}` : 'the upstream response broke off before its end'
        state.exchange.finish({ kind: 'cut', reason })
        if (!res.writableEnded && !res.destroyed) res.destroy(new Error(reason))
      }
      proxyRes.on('error', brokeOff)
      proxyRes.once('close', () => brokeOff())
    })
  }
  return Object.assign(plugin, { stats: intercept.meter.stats })
}

/**
 * The path http-proxy sends upstream for `url` when the target has a path of its own
 * (`target: 'https://api.anthropic.com/v1'`, the client asking for `/messages`): the target's path, then
 * the request's. Undefined when the target has none.
 */
function joinTargetPath(target: unknown, url: string | undefined): string | undefined {
  if (url === undefined || target === undefined || target === null) return undefined
  let base: string | undefined
  if (typeof target === 'string') {
    try {
      base = new URL(target).pathname
    } catch {
      return undefined
    }
  } else if (typeof target === 'object') {
    const t = target as { pathname?: unknown; path?: unknown }
    base = typeof t.pathname === 'string' ? t.pathname : typeof t.path === 'string' ? t.path : undefined
  }
  if (!base || base === '/') return undefined
  const q = base.indexOf('?')
  if (q !== -1) base = base.slice(0, q)
  return base.replace(/\/+$/, '') + (url.startsWith('/') ? url : `/${url}`)
}

export default usagewire
