/**
 * The four example gateways behind one start function, for `pnpm demo`, `pnpm start` and the tests:
 * each framework listens its own way (an Express or Koa app on a node:http server, Fastify's own
 * `listen`, a node:http server around http-proxy-middleware).
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createGateway as expressGateway } from './express-gateway/gateway.js'
import { createGateway as fastifyGateway } from './fastify-gateway/gateway.js'
import type { GatewayOptions } from './gateway-options.js'
import { createGateway as hpmGateway } from './hpm-gateway/gateway.js'
import { createGateway as koaGateway } from './koa-gateway/gateway.js'

export const ADAPTERS = ['express', 'koa', 'fastify', 'http-proxy-middleware'] as const
export type Adapter = (typeof ADAPTERS)[number]

/** What each gateway is, for the demo's and start's first line. */
export const DESCRIPTION: Record<Adapter, string> = {
  express: 'express + usagewire + http-proxy-middleware',
  koa: 'koa + usagewire + koa-proxies',
  fastify: 'fastify + usagewire + @fastify/http-proxy',
  'http-proxy-middleware': 'node:http + http-proxy-middleware with the usagewire plugin',
}

export interface RunningGateway {
  /** http://host:port */
  url: string
  close(): Promise<void>
}

export function isAdapter(name: string | undefined): name is Adapter {
  return (ADAPTERS as readonly string[]).includes(name ?? '')
}

async function serve(server: http.Server, port: number, host: string): Promise<RunningGateway> {
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve))
  return {
    url: `http://${host}:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** Starts the example gateway of `adapter` on `host:port` (port 0: any free one). */
export async function startGateway(
  adapter: Adapter,
  options: GatewayOptions,
  port = 0,
  host = '127.0.0.1',
): Promise<RunningGateway> {
  switch (adapter) {
    case 'express':
      return serve(http.createServer(expressGateway(options)), port, host)
    case 'koa':
      return serve(http.createServer(koaGateway(options).callback()), port, host)
    case 'http-proxy-middleware':
      return serve(hpmGateway(options), port, host)
    case 'fastify': {
      const app = fastifyGateway(options)
      const url = await app.listen({ port, host })
      return { url, close: () => app.close() }
    }
  }
}
