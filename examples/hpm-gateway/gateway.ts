/**
 * The same gateway as ../express-gateway, with no framework: a plain node:http server and
 * http-proxy-middleware, with usagewire as one of the proxy's plugins.
 *
 * The plugin sees each proxied response on its way out and streams it through, rewriting the
 * usage blocks the client reads and handing one record per request to `onUsage`. Credentials are
 * not the gateway's business: the client's own `x-api-key` / `authorization` headers pass through
 * to the provider unchanged.
 */
import http, { type IncomingMessage } from 'node:http'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { Registry } from 'prom-client'
import { usagewire } from '@usagewire/http-proxy-middleware'
import { metricsHandler, prometheusSink } from '@usagewire/core/prometheus'
import { FORWARDED_PREFIXES, upstreamRouter, type GatewayOptions } from '../gateway-options.js'

/** The gateway as a node:http server, not yet listening: `createGateway(…).listen(port, host)`. */
export function createGateway(opts: GatewayOptions): http.Server {
  const { fallback, targetFor: route } = upstreamRouter(opts)
  const targetFor = (req: IncomingMessage): string => route(req.url ?? '')
  // A registry per gateway (the tests run several in one process); one gateway per process can use
  // prom-client's global register: prometheusSink() and metricsHandler() without arguments.
  const registry = new Registry()
  const metrics = metricsHandler(registry)

  const proxy = createProxyMiddleware({
    pathFilter: FORWARDED_PREFIXES.map((prefix) => `${prefix}/`),
    target: fallback,
    router: targetFor,
    changeOrigin: true,
    ...(opts.log ? { logger: opts.log } : {}),
    plugins: [
      usagewire({
        onUsage: opts.onUsage,
        sinks: [prometheusSink({ registry }), ...(opts.sinks ?? [])],
        ...(opts.log ? { logger: opts.log } : {}),
      }),
    ],
  })

  // Without a framework there is no `next` to fall through to: answer what the proxy does not take.
  return http.createServer((req, res) => {
    if (req.url?.split('?')[0] === '/metrics') return metrics(req, res)
    void proxy(req, res, (error?: unknown) => {
      if (res.headersSent) return void res.destroy()
      res.writeHead(error ? 502 : 404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { type: error ? 'gateway_error' : 'not_found_error' } }))
    })
  })
}
