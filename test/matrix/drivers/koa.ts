/**
 * Matrix rows for @usagewire/koa: the two ways Koa gateways hand back an upstream's response. Most set
 * `ctx.body` to the upstream's response stream (the forwarding middleware below, what a hand-written Koa
 * proxy does); http-proxy based ones (koa-proxies) write `ctx.res` themselves and tell Koa to keep out of
 * it with `ctx.respond = false`. With `compress`, koa-compress is mounted first, as its users do.
 */
import http, { type IncomingMessage } from 'node:http'
import { createRequire } from 'node:module'
import Koa from 'koa'
import compress from 'koa-compress'
import { usagewire } from '@usagewire/koa'
import type { Driver, Gateway, GatewayOptions } from '../driver.js'
import { listen, shut } from '../upstream.js'

const require = createRequire(import.meta.url)
/** Koa 2, installed under the alias `koa2`; its API used here is Koa 3's. */
const Koa2 = require('koa2') as typeof Koa

/** koa-proxies ships no types: the part used here. */
type ProxyResHandler = (proxyRes: IncomingMessage, req: IncomingMessage, res: http.ServerResponse) => void
type KoaProxies = (
  path: string,
  options: { target: string; changeOrigin?: boolean; events?: { proxyRes?: ProxyResHandler } },
) => Koa.Middleware
const proxy = require('koa-proxies') as KoaProxies

/** Headers that describe one connection, not the message: never copied from the upstream's response. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'trailer', 'te'])

/**
 * A forwarding middleware, the way Koa gateways commonly proxy: the request goes to `upstream` with its
 * path, method, headers and body (re-sent as JSON when a body parser already read it), and the upstream's
 * status, headers and body stream become `ctx.status`, the response headers and `ctx.body`.
 */
export function forwardTo(upstream: string): Koa.Middleware {
  const base = new URL(upstream)
  return async (ctx) => {
    const parsed = (ctx.request as { body?: unknown }).body
    const headers: http.OutgoingHttpHeaders = { ...ctx.headers, host: base.host }
    const resent = parsed === undefined ? undefined : JSON.stringify(parsed)
    if (resent !== undefined) headers['content-length'] = Buffer.byteLength(resent)
    const outgoing = http.request({
      protocol: base.protocol,
      hostname: base.hostname,
      port: base.port,
      method: ctx.method,
      path: ctx.originalUrl,
      headers,
    })
    // The client left before the upstream finished: let go of the upstream too.
    ctx.res.once('close', () => {
      if (!ctx.res.writableFinished) outgoing.destroy()
    })
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      outgoing.once('response', resolve)
      outgoing.once('error', reject)
      if (resent !== undefined) outgoing.end(resent)
      else ctx.req.pipe(outgoing)
    })
    ctx.status = response.statusCode ?? 502
    for (const [name, value] of Object.entries(response.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) ctx.set(name, value)
    }
    ctx.body = response
  }
}

/**
 * http-proxy keeps reading an upstream response whose client went away; a gateway destroys it, as
 * http-proxy-middleware does by default.
 */
const letGoWhenClientLeaves: ProxyResHandler = (proxyRes, _req, res) => {
  res.once('close', () => {
    if (!res.writableEnded) proxyRes.destroy()
  })
}

/** koa-proxies in front of `upstream`, with Koa told not to answer the request itself. */
function proxied(upstream: string): Koa.Middleware[] {
  return [
    async (ctx, next) => {
      ctx.respond = false
      await next()
    },
    proxy('/', { target: upstream, changeOrigin: true, events: { proxyRes: letGoWhenClientLeaves } }),
  ]
}

function starter(App: typeof Koa, handlers: (upstream: string) => Koa.Middleware[]) {
  return async (options: GatewayOptions): Promise<Gateway> => {
    const app = new App()
    // The matrix asserts records, not logs: Koa's default error logger would print every client abort.
    app.silent = true
    if (options.compress) app.use(compress())
    app.use(usagewire(options.usagewire))
    for (const handler of handlers(options.upstream)) app.use(handler)
    const server = http.createServer(app.callback())
    const url = await listen(server)
    return { url, close: () => shut(server) }
  }
}

export const drivers: Driver[] = [
  { name: 'koa 3 (ctx.body stream)', adapter: 'koa', start: starter(Koa, (upstream) => [forwardTo(upstream)]) },
  { name: 'koa 3 (koa-proxies, ctx.respond = false)', adapter: 'koa', start: starter(Koa, proxied), compresses: false },
  { name: 'koa 2 (ctx.body stream)', adapter: 'koa', start: starter(Koa2, (upstream) => [forwardTo(upstream)]) },
]
