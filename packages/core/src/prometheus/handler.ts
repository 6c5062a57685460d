import type { IncomingMessage, ServerResponse } from 'node:http'
import { register as globalRegistry, type Registry } from 'prom-client'
import { describeError } from '../log.js'

/**
 * A `GET /metrics` handler for node:http, and so for anything built on it (Express, Koa's `ctx.req` /
 * `ctx.res`, Fastify's `request.raw` / `reply.raw`): the registry's exposition, with its own content type.
 * HEAD gets the headers only; other methods 405. A registry that fails to collect answers 500, never throws.
 */
export function metricsHandler(
  registry: Registry = globalRegistry,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' })
      res.end('method not allowed\n')
      return
    }
    let collecting: Promise<string>
    try {
      collecting = registry.metrics()
    } catch (error) {
      collecting = Promise.reject(error)
    }
    collecting.then(
      (body) => {
        if (res.destroyed || res.headersSent) return
        res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' })
        res.end(req.method === 'HEAD' ? undefined : body)
      },
      (error: unknown) => {
        if (res.destroyed) return
        if (res.headersSent) return void res.destroy()
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
        res.end(`metrics collection failed: ${describeError(error)}\n`)
      },
    )
  }
}
