/**
 * @usagewire/proxy: usagewire as a sidecar beside any gateway, in any language (docs/sidecar.md).
 *
 *   usagewire-proxy --listen 8080 --target http://127.0.0.1:4000 --provider-listen 8081 --provider https://api.anthropic.com
 */
export {
  startProxy,
  parseAddress,
  DEFAULT_CORRELATION_HEADER,
  DEFAULT_SIDECAR_WAIT_MS,
  type ProxyOptions,
  type ProviderRoute,
  type Sidecar,
} from './sidecar.js'
export { STRATEGIES, type Strategy } from './correlate.js'
export type { Resign } from './sigv4.js'
export { parseProxyArgs, runProxyCli } from './args.js'
export type { UsageRecord, RecordCorrelation } from '@usagewire/core'
