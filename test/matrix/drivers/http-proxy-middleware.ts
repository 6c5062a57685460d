/**
 * Matrix rows for @usagewire/http-proxy-middleware: `createProxyMiddleware({ plugins: [usagewire(options)] })`
 * served by a plain node:http server (http-proxy-middleware 3 and 4) and by connect (3). With `compress`,
 * `compression()` runs first: mounted with connect's `use`, or, on plain node:http, called around the
 * proxy as a connect-style middleware, as plain-node users do.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import compression from 'compression'
import connect from 'connect'
import { createProxyMiddleware as hpm3 } from 'http-proxy-middleware'
import { createProxyMiddleware as hpm4 } from 'http-proxy-middleware4'
import { usagewire } from '@usagewire/http-proxy-middleware'
import type { Driver, Gateway, GatewayOptions } from '../driver.js'
import { listen, shut } from '../upstream.js'

/** http-proxy-middleware 4 takes the options of 3 that these gateways use. */
type CreateProxy = typeof hpm3
type Serve = 'node:http' | 'connect'

/** compression(), typed as what it is outside Express: a connect-style middleware over node's req/res. */
const compress = compression as unknown as () => (
  req: IncomingMessage,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void

function hpmDriver(name: string, create: CreateProxy, serve: Serve): Driver {
  return {
    name,
    adapter: 'http-proxy-middleware',
    async start({ upstream, usagewire: options, compress: compressed }: GatewayOptions): Promise<Gateway> {
      const proxy = create({ target: upstream, changeOrigin: true, plugins: [usagewire(options)] })
      let handler: http.RequestListener
      if (serve === 'connect') {
        const app = connect()
        if (compressed) app.use(compress())
        app.use(proxy)
        handler = app
      } else if (compressed) {
        const gzip = compress()
        handler = (req, res) => gzip(req, res, () => void proxy(req, res))
      } else {
        handler = (req, res) => void proxy(req, res)
      }
      const server = http.createServer(handler)
      return { url: await listen(server), close: () => shut(server) }
    },
  }
}

export const drivers: Driver[] = [
  hpmDriver('http-proxy-middleware 3 (node:http)', hpm3, 'node:http'),
  hpmDriver('http-proxy-middleware 3 (connect)', hpm3, 'connect'),
  hpmDriver('http-proxy-middleware 4 (node:http)', hpm4 as unknown as CreateProxy, 'node:http'),
]
