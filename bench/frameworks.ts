/**
 * The other adapters' gateways for the end-to-end comparison (row 4g), each bare and with usagewire in
 * its framework's own idiom, in front of the same upstream over a keep-alive connection pool:
 *
 *   koa                  koa 3, a forwarding handler that sets ctx.status, the upstream's headers and
 *                        ctx.body = the upstream response (node:http, keep-alive agent);
 *                        usagewire: `app.use(usagewire({ onUsage }))` first
 *   fastify              fastify 5 + @fastify/http-proxy (undici pool);
 *                        usagewire: `app.register(usagewire, { onUsage })` first
 *   http-proxy-middleware  a plain node:http server with createProxyMiddleware (keep-alive agent);
 *                        usagewire: `plugins: [usagewire({ onUsage })]`
 *
 * Each returns the listening node:http server.
 */
import http from 'node:http'
import Koa from 'koa'
import Fastify from 'fastify'
import httpProxy from '@fastify/http-proxy'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { usagewire as koaUsagewire } from '@usagewire/koa'
import fastifyUsagewire from '@usagewire/fastify'
import { usagewire as hpmUsagewire } from '@usagewire/http-proxy-middleware'

export type Framework = 'koa' | 'fastify' | 'http-proxy-middleware'
export const FRAMEWORKS: readonly Framework[] = ['koa', 'fastify', 'http-proxy-middleware']

/** Headers that describe one hop, not the response: the gateway's own server sets its own. */
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length'])

export async function frameworkGateway(
  framework: Framework,
  withUsagewire: boolean,
  target: string,
  onUsage: (record: { status: string }) => void,
): Promise<http.Server> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 })
  if (framework === 'koa') {
    const app = new Koa()
    if (withUsagewire) app.use(koaUsagewire({ onUsage }))
    const base = new URL(target)
    app.use(async (ctx) => {
      const upstream = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = http.request(
          {
            host: base.hostname,
            port: base.port,
            method: ctx.method,
            path: ctx.url,
            headers: { ...ctx.headers, host: base.host },
            agent,
          },
          resolve,
        )
        req.on('error', reject)
        ctx.req.pipe(req)
      })
      ctx.status = upstream.statusCode ?? 502
      for (const [name, value] of Object.entries(upstream.headers))
        if (value !== undefined && !HOP.has(name)) ctx.set(name, value)
      ctx.body = upstream
    })
    return listen(http.createServer(app.callback()))
  }
  if (framework === 'fastify') {
    const app = Fastify()
    if (withUsagewire) await app.register(fastifyUsagewire, { onUsage })
    await app.register(httpProxy, { upstream: target })
    await app.listen({ port: 0, host: '127.0.0.1' })
    return app.server
  }
  const proxy = createProxyMiddleware({
    target,
    changeOrigin: true,
    agent,
    plugins: withUsagewire ? [hpmUsagewire({ onUsage })] : [],
  })
  return listen(http.createServer((req, res) => void proxy(req, res, () => res.writeHead(404).end())))
}

async function listen(server: http.Server): Promise<http.Server> {
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server
}
