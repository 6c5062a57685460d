/**
 * The same gateway as ../express-gateway, in Koa: `app.use(usagewire(...))`, then koa-proxies for
 * everything under /v1, /v1beta and /model.
 *
 * usagewire is mounted before the proxy so it sees the proxied response on its way out (koa-proxies
 * writes it straight to `ctx.res`); it rewrites the usage blocks the client reads and hands one record
 * per request to `onUsage`. A gateway that sets `ctx.body` to the upstream's response instead needs
 * nothing else: usagewire carries `ctx.body` the same way. Credentials are not the gateway's business:
 * the client's own `x-api-key` / `authorization` headers pass through to the provider unchanged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import Koa from 'koa'
import proxy from 'koa-proxies'
import { Registry } from 'prom-client'
import { usagewire } from '@usagewire/koa'
import { metricsHandler, prometheusSink } from '@usagewire/core/prometheus'
import { FORWARDED_PREFIXES, upstreamRouter, type GatewayOptions } from '../gateway-options.js'

/**
 * http-proxy keeps reading an upstream response whose client went away: destroy it, so the provider
 * stops generating (usagewire has recorded the usage known when the client left).
 */
function letGoWhenClientLeaves(proxyRes: IncomingMessage, _req: IncomingMessage, res: ServerResponse): void {
  res.once('close', () => {
    if (!res.writableEnded) proxyRes.destroy()
  })
}

/** The gateway as a Koa app, not yet listening: `createGateway(…).listen(port, host)`. */
export function createGateway(opts: GatewayOptions): Koa {
  const { targetFor } = upstreamRouter(opts)

  // A registry per gateway (the tests run several in one process); one gateway per process can use
  // prom-client's global register: prometheusSink() and metricsHandler() without arguments.
  const registry = new Registry()
  const metrics = metricsHandler(registry)

  const app = new Koa()
  const log = opts.log ?? console
  // A client that leaves mid-stream makes koa-proxies reject; Koa reports it here instead of on stderr.
  app.on('error', (error: Error) => log.warn(`gateway: ${error.message}`))
  app.use(async (ctx, next) => {
    if (ctx.path !== '/metrics') return next()
    ctx.respond = false // the handler writes ctx.res itself
    metrics(ctx.req, ctx.res)
  })
  app.use(
    usagewire({
      onUsage: opts.onUsage,
      sinks: [prometheusSink({ registry }), ...(opts.sinks ?? [])],
      ...(opts.log ? { logger: opts.log } : {}),
    }),
  )
  // One proxy per prefix: koa-proxies matches whole path segments, so '/v1' does not take '/v1beta/…'.
  for (const prefix of FORWARDED_PREFIXES) {
    app.use(
      proxy(prefix, (_params, ctx) => ({
        target: targetFor(ctx.path),
        changeOrigin: true,
        events: { proxyRes: letGoWhenClientLeaves },
      })),
    )
  }
  return app
}
