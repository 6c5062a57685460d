/**
 * Matrix rows for @usagewire/express: the gateway an Express user writes (examples/express-gateway/gateway.ts),
 * on Express 5 and on Express 4 (installed under the alias `express4`): `compression()` first when asked,
 * then `app.use(usagewire(options))`, then http-proxy-middleware 3 in front of the upstream.
 */
import http from 'node:http'
import compression from 'compression'
import express from 'express'
import express4 from 'express4'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { usagewire } from '@usagewire/express'
import type { Driver, Gateway, GatewayOptions } from '../driver.js'
import { listen, shut } from '../upstream.js'

function expressDriver(name: string, createApp: () => express.Express): Driver {
  return {
    name,
    adapter: 'express',
    async start({ upstream, usagewire: options, compress }: GatewayOptions): Promise<Gateway> {
      const app = createApp()
      if (compress) app.use(compression())
      app.use(usagewire(options))
      app.use(createProxyMiddleware({ target: upstream, changeOrigin: true }))
      const server = http.createServer(app)
      return { url: await listen(server), close: () => shut(server) }
    },
  }
}

export const drivers: Driver[] = [
  expressDriver('express 5', () => express()),
  expressDriver('express 4', () => express4()),
]
