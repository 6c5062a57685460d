import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { ProviderRoute, ProxyOptions } from './sidecar.js'
import { startProxy } from './sidecar.js'
import type { Strategy } from './correlate.js'

export const USAGE = `usage: usagewire proxy --listen [HOST:]PORT --target URL [options]

  --listen [HOST:]PORT           client-facing listener (host 127.0.0.1 unless given)
  --target URL                   the gateway clients' requests go to
  --provider-listen [HOST:]PORT  provider-facing listener: point the gateway's provider base URL here
  --provider [PREFIX=]URL        where the provider-facing listener forwards (repeat, with path prefixes, for several)
  --max-wait-ms N                how long the final usage event waits for the provider's usage (default 2000)
  --message-start POLICY         patch-final (default) or hold
  --max-hold-ms N                how long a held message_start waits (default 5000)
  --correlation LIST             strategies, strongest first (default header,content,single)
  --correlation-header NAME      the header added to forwarded requests (default x-usagewire-correlation)
  --resign-sigv4                 re-sign SigV4 (Bedrock) requests for the provider's host, default AWS credentials
  --no-ensure-stream-usage       do not add stream_options.include_usage to the gateway's streaming Chat requests
                                 (--ensure-stream-usage, the default, does)
  --on-abort cancel|drain        a client that leaves early (default cancel)
  --no-metrics                   do not serve /metrics on the client-facing listener
  --records                      print each usage record as a line of JSON on stdout
  --config FILE                  options as JSON (the same names, camelCase); flags win
`

/** Flags (and a JSON config file) as proxy options; throws a TypeError with what is wrong. */
export function parseProxyArgs(argv: string[]): ProxyOptions & { records?: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string' },
      target: { type: 'string' },
      'provider-listen': { type: 'string' },
      provider: { type: 'string', multiple: true },
      'max-wait-ms': { type: 'string' },
      'message-start': { type: 'string' },
      'max-hold-ms': { type: 'string' },
      correlation: { type: 'string' },
      'correlation-header': { type: 'string' },
      'resign-sigv4': { type: 'boolean' },
      'ensure-stream-usage': { type: 'boolean' },
      'no-ensure-stream-usage': { type: 'boolean' },
      'on-abort': { type: 'string' },
      'no-metrics': { type: 'boolean' },
      records: { type: 'boolean' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) throw Object.assign(new TypeError(USAGE), { help: true })
  const file: Partial<ProxyOptions> & { records?: boolean } = values.config
    ? (JSON.parse(readFileSync(values.config, 'utf8')) as Partial<ProxyOptions>)
    : {}
  const number = (flag: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined
    const n = Number(value)
    if (!Number.isFinite(n) || n < 0) throw new TypeError(`usagewire proxy: --${flag} needs a number of milliseconds`)
    return n
  }
  const providers: ProviderRoute[] | undefined = values.provider?.map((spec) => {
    const eq = spec.indexOf('=')
    return eq > 0 && spec.startsWith('/') ? { prefix: spec.slice(0, eq), url: spec.slice(eq + 1) } : { url: spec }
  })
  const options = { ...file } as ProxyOptions & { records?: boolean }
  if (values.listen !== undefined) options.listen = values.listen
  if (values.target !== undefined) options.target = values.target
  if (values['provider-listen'] !== undefined) options.providerListen = values['provider-listen']
  if (providers) options.provider = providers.length === 1 && !providers[0]!.prefix ? providers[0]!.url : providers
  const wait = number('max-wait-ms', values['max-wait-ms'])
  if (wait !== undefined) options.maxWaitMs = wait
  const hold = number('max-hold-ms', values['max-hold-ms'])
  if (hold !== undefined) options.maxHoldMs = hold
  const policy = values['message-start']
  if (policy !== undefined) {
    if (policy !== 'hold' && policy !== 'patch-final')
      throw new TypeError('usagewire proxy: --message-start is hold or patch-final')
    options.messageStart = policy
  }
  if (values.correlation !== undefined)
    options.correlation = values.correlation.split(',').map((s) => s.trim()) as Strategy[]
  if (values['correlation-header'] !== undefined) options.correlationHeader = values['correlation-header']
  if (values['resign-sigv4']) options.resignSigV4 = true
  if (values['ensure-stream-usage'] && values['no-ensure-stream-usage'])
    throw new TypeError('usagewire proxy: --ensure-stream-usage or --no-ensure-stream-usage, not both')
  if (values['ensure-stream-usage']) options.ensureStreamUsage = true
  if (values['no-ensure-stream-usage']) options.ensureStreamUsage = false
  const abort = values['on-abort']
  if (abort !== undefined) {
    if (abort !== 'cancel' && abort !== 'drain') throw new TypeError('usagewire proxy: --on-abort is cancel or drain')
    options.onAbort = abort
  }
  if (values['no-metrics']) options.metrics = false
  if (values.records) options.records = true
  if (!options.listen || !options.target)
    throw new TypeError(`usagewire proxy: --listen and --target are needed\n\n${USAGE}`)
  return options
}

/** `usagewire proxy …`: runs until SIGINT or SIGTERM, then drains what is in flight and exits. */
export async function runProxyCli(argv: string[]): Promise<void> {
  let options: ProxyOptions & { records?: boolean }
  try {
    options = parseProxyArgs(argv)
  } catch (error) {
    const help = (error as { help?: boolean }).help === true
    ;(help ? process.stdout : process.stderr).write(`${(error as Error).message}\n`)
    process.exit(help ? 0 : 2)
  }
  const { records, ...proxy } = options
  const sidecar = await startProxy({
    ...proxy,
    logger: proxy.logger ?? { warn: (message: string) => process.stderr.write(`${message}\n`) },
    ...(records ? { onUsage: (record) => void process.stdout.write(`${JSON.stringify(record)}\n`) } : {}),
  })
  process.stderr.write(
    `usagewire proxy: clients → ${sidecar.url} → ${proxy.target}` +
      (sidecar.providerUrl ? `; gateway → ${sidecar.providerUrl} → provider` : '') +
      `\n`,
  )
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    process.stderr.write(`usagewire proxy: ${signal}, finishing requests in flight\n`)
    void sidecar.close().then(() => process.exit(0))
  }
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
}
