/**
 * The smallest useful LLM gateway: Express + usagewire + http-proxy-middleware.
 *
 * usagewire is mounted before the proxy so it sees the proxied response on its way out; it
 * rewrites the usage blocks the client reads and hands one record per request to `onUsage` and to the
 * Prometheus sink, whose metrics GET /metrics serves (docs/metrics.md).
 * Credentials are not the gateway's business: the client's own `x-api-key` / `authorization`
 * headers pass through to the provider unchanged.
 */
import express, { type Express } from 'express'
import { createProxyMiddleware, fixRequestBody } from 'http-proxy-middleware'
import type { IncomingMessage } from 'node:http'
import { Registry } from 'prom-client'
import { usagewire } from '@usagewire/express'
import { metricsHandler, prometheusSink } from '@usagewire/core/prometheus'
import { FORWARDED_PREFIXES, upstreamRouter, type GatewayOptions } from '../gateway-options.js'

export function createGateway(opts: GatewayOptions): Express {
  const { fallback, targetFor: route } = upstreamRouter(opts)
  const targetFor = (req: IncomingMessage): string => route(req.url ?? '')

  // A registry per gateway (the tests run several in one process); one gateway per process can use
  // prom-client's global register: prometheusSink() and metricsHandler() without arguments.
  const registry = new Registry()
  const sinks = [prometheusSink({ registry }), ...(opts.sinks ?? [])]

  const app = express()
  app.disable('x-powered-by')
  app.get('/metrics', metricsHandler(registry))
  app.use(
    [...FORWARDED_PREFIXES],
    usagewire({ onUsage: opts.onUsage, sinks, ...(opts.log ? { logger: opts.log } : {}) }),
  )
  // Mounted at the root with a pathFilter, not at the prefixes: Express strips a mount path from
  // req.url, and the upstream must see the full /v1/... path.
  app.use(
    createProxyMiddleware({
      pathFilter: FORWARDED_PREFIXES.map((prefix) => `${prefix}/`),
      target: fallback,
      router: targetFor,
      changeOrigin: true,
      ...(opts.log ? { logger: opts.log } : {}),
      // Re-sends a body that something before the proxy has already read and parsed.
      on: { proxyReq: fixRequestBody },
    }),
  )
  return app
}
