/**
 * The same gateway as ../express-gateway, in Fastify: usagewire registered as a plugin, then
 * @fastify/http-proxy for everything under /v1, /v1beta and /model.
 *
 * usagewire meets each response in Fastify's `onSend` hook, before it is sent: it rewrites the
 * usage blocks the client reads and hands one record per request to `onUsage`. Credentials are not
 * the gateway's business: the client's own `x-api-key` / `authorization` headers pass through to
 * the provider unchanged.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import proxy from '@fastify/http-proxy'
import { Registry } from 'prom-client'
import { usagewire } from '@usagewire/fastify'
import { metricsHandler, prometheusSink } from '@usagewire/core/prometheus'
import { FORWARDED_PREFIXES, upstreamRouter, type GatewayOptions } from '../gateway-options.js'

/** The gateway as a Fastify instance, not yet listening: `await createGateway(…).listen({ port, host })`. */
export function createGateway(opts: GatewayOptions): FastifyInstance {
  const { fallback, targetFor } = upstreamRouter(opts)

  // Streams still open at shutdown (a client mid-answer) must not keep close() waiting.
  const app = Fastify({ forceCloseConnections: true })
  // A registry per gateway (the tests run several in one process); one gateway per process can use
  // prom-client's global register: prometheusSink() and metricsHandler() without arguments.
  const registry = new Registry()
  const metrics = metricsHandler(registry)
  app.get('/metrics', (request, reply) => {
    reply.hijack() // the handler writes reply.raw itself
    metrics(request.raw, reply.raw)
  })
  // Registered before the proxies' routes, so its hooks are theirs too (fastify-plugin: no new scope).
  void app.register(usagewire, {
    onUsage: opts.onUsage,
    sinks: [prometheusSink({ registry }), ...(opts.sinks ?? [])],
    ...(opts.log ? { logger: opts.log } : {}),
  })
  // One proxy per upstream, each under the paths it serves; paths are forwarded as they are.
  const routes: Array<[path: string, upstream: string]> = [
    ['/v1/messages', targetFor('/v1/messages')],
    ['/v1/chat/completions', targetFor('/v1/chat/completions')],
    ['/v1/responses', targetFor('/v1/responses')],
    // Bedrock (/model) and Gemini (/v1beta) and any other path under the prefixes.
    ...FORWARDED_PREFIXES.map((prefix): [string, string] => [prefix, fallback]),
  ]
  for (const [path, upstream] of routes) void app.register(proxy, { upstream, prefix: path, rewritePrefix: path })
  return app
}
