import http from 'node:http'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { startProxy, type ProxyOptions, type Sidecar } from '@usagewire/proxy'
import { listen, shut } from '../express/helpers.js'

/**
 * A two-sided sidecar around the gateway `handler` makes: `provider()` is the sidecar's provider-facing
 * URL, where the gateway must send its calls (known once the sidecar listens). `open` collects what to close.
 */
export async function aroundGateway(
  handler: (provider: () => string) => http.RequestListener,
  providerUrl: string,
  open: Array<{ close(): unknown }>,
  options: Partial<ProxyOptions> = {},
): Promise<Sidecar> {
  let sidecarProvider = ''
  const gateway = http.createServer(handler(() => sidecarProvider))
  const gatewayUrl = await listen(gateway)
  open.push({ close: () => shut(gateway) })
  const sidecar = await startProxy({
    listen: '127.0.0.1:0',
    target: gatewayUrl,
    providerListen: '127.0.0.1:0',
    provider: providerUrl,
    ...options,
  })
  open.push(sidecar)
  sidecarProvider = sidecar.providerUrl!
  return sidecar
}

/**
 * A two-sided sidecar around a pass-through gateway that passes every client header and byte on to the
 * provider (so the correlation header reaches the sidecar's provider side).
 */
export function aroundPassThrough(
  providerUrl: string,
  open: Array<{ close(): unknown }>,
  options: Partial<ProxyOptions> = {},
): Promise<Sidecar> {
  return aroundGateway(
    (provider) => createProxyMiddleware({ router: provider, changeOrigin: true }) as unknown as http.RequestListener,
    providerUrl,
    open,
    options,
  )
}
