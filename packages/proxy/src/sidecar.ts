import { randomUUID } from 'node:crypto'
import http, { type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { Registry } from 'prom-client'
import type { UpstreamTap, UsageRecord, UsagewireOptions } from '@usagewire/core'
import { metricsHandler, prometheusSink } from '@usagewire/core/prometheus'
import { exchangeOf, narrowAcceptEncoding } from '@usagewire/core/node'
import { usagewire } from '@usagewire/http-proxy-middleware'
import { Correlator, STRATEGIES, type Strategy } from './correlate.js'
import { Reading } from './reading.js'
import { resigner, signedWithSigV4, type Resign } from './sigv4.js'
import { StreamUsage } from './stream-usage.js'

/** A provider the provider-facing listener forwards to: all of it, or the paths under `prefix`. */
export interface ProviderRoute {
  url: string
  /** A path prefix on the provider-facing listener (stripped before forwarding); default: every path. */
  prefix?: string
}

export interface ProxyOptions extends Pick<
  UsagewireOptions,
  'onUsage' | 'sinks' | 'routes' | 'maxEventBytes' | 'logger' | 'attributes' | 'prices' | 'maxHoldMs' | 'onAbort'
> {
  /** `[host:]port` of the client-facing listener; default host 127.0.0.1. */
  listen: string
  /** The gateway's URL: where client requests go. */
  target: string
  /** `[host:]port` of the provider-facing listener; with it the sidecar has two sides. */
  providerListen?: string
  /** Where the provider-facing listener forwards: a URL, or routes by path prefix. */
  provider?: string | ProviderRoute[]
  /**
   * How long the client-facing final usage event waits for the provider's usage, in ms (two-sided only).
   * Default 2000.
   */
  maxWaitMs?: number
  /** `'hold'` holds `message_start` until the provider's prompt counts are joined (docs/truth-sources.md#message_start-policies). */
  messageStart?: 'patch-final' | 'hold'
  /** Correlation strategies to use, strongest first. Default: header, content, single. */
  correlation?: Strategy[]
  /** The header added to each forwarded client request (and removed before the provider sees it). */
  correlationHeader?: string
  /**
   * Re-sign SigV4-signed provider requests (Bedrock) for the provider's real host with the default AWS
   * credential chain: needed when the gateway signs for the sidecar's address and the provider checks.
   */
  resignSigV4?: boolean | Resign
  /**
   * On the provider-facing listener, a streaming OpenAI Chat request without
   * `stream_options.include_usage` goes to the provider with it, and the usage-only chunk it brings is left
   * out of what the gateway gets (docs/sidecar.md#ensurestreamusage). Default true.
   */
  ensureStreamUsage?: boolean
  /** Serve Prometheus metrics at `/metrics` on the client-facing listener. Default true. */
  metrics?: boolean
}

export interface Sidecar {
  /** The client-facing URL: point clients' base URL here. */
  readonly url: string
  /** The provider-facing URL: point the gateway's provider base URL here (two-sided only). */
  readonly providerUrl: string | undefined
  /** Records of the client requests served, oldest first (the last 1000). */
  readonly records: UsageRecord[]
  /** The Prometheus registry behind `/metrics`. */
  readonly registry: Registry
  /** Stops accepting, waits for requests in flight (at most `graceMs`, default 10000), then closes. */
  close(graceMs?: number): Promise<void>
}

export const DEFAULT_CORRELATION_HEADER = 'x-usagewire-correlation'
export const DEFAULT_SIDECAR_WAIT_MS = 2000

/** `[host:]port` as host and port; the host defaults to loopback. */
export function parseAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':')
  const host = at === -1 ? '127.0.0.1' : address.slice(0, at).replace(/^\[|\]$/g, '') || '127.0.0.1'
  const port = Number(at === -1 ? address : address.slice(at + 1))
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new TypeError(`usagewire proxy: not an address: ${address}`)
  return { host, port }
}

async function serve(server: http.Server, address: string): Promise<string> {
  const { host, port } = parseAddress(address)
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve))
  const bound = server.address() as AddressInfo
  const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address
  return `http://${shown}:${bound.port}`
}

/** A provider-facing request whose body was read whole before it is forwarded. */
type ReadWhole = IncomingMessage & {
  rawBody?: Buffer
  /** `stream_options.include_usage` was added to the body (docs/sidecar.md#ensurestreamusage). */
  usageAsked?: boolean
}

/**
 * Connections to the gateway and to the provider are kept and reused: without an agent http-proxy sends
 * `connection: close`, and every request would pay for a new connection on both hops.
 */
const agentFor = (url: string): http.Agent =>
  url.startsWith('https:') ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true })

const answer = (res: ServerResponse, status: number, type: string, message: string): void => {
  if (res.headersSent) return void res.destroy()
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ error: { type, message } }))
}

/**
 * Starts usagewire as a sidecar (docs/sidecar.md): a client-facing listener in front of a gateway, and
 * optionally a provider-facing one behind it, sharing one ledger per request. Both are
 * http-proxy-middleware with the usagewire plugin; request bytes and headers pass unchanged (but for the
 * correlation header, added on the client side and removed on the provider side).
 */
/**
 * `Expect: 100-continue` was answered here already (node:http sends the 100 itself): it is not sent on.
 * http-proxy 1.x emits no `proxyReq` for a request that carries it, and the provider side does its
 * request-side work there (the body read whole, the upstream to cancel); on the client side the
 * http-proxy-middleware plugin does the same.
 */
function dropAnsweredExpect(req: IncomingMessage): void {
  if (req.headers.expect !== undefined) delete req.headers.expect
}

export async function startProxy(options: ProxyOptions): Promise<Sidecar> {
  const twoSided = options.providerListen !== undefined
  if (twoSided && !options.provider) throw new TypeError('usagewire proxy: providerListen needs provider')
  const header = (options.correlationHeader ?? DEFAULT_CORRELATION_HEADER).toLowerCase()
  const maxWaitMs = options.maxWaitMs ?? DEFAULT_SIDECAR_WAIT_MS
  const strategies = options.correlation ?? [...STRATEGIES]
  for (const strategy of strategies) {
    if (!STRATEGIES.includes(strategy)) throw new TypeError(`usagewire proxy: unknown correlation "${strategy}"`)
  }
  if (options.ensureStreamUsage !== undefined && typeof options.ensureStreamUsage !== 'boolean')
    throw new TypeError('usagewire proxy: ensureStreamUsage must be true or false')
  const correlator = twoSided ? new Correlator(strategies, maxWaitMs) : undefined
  const registry = new Registry()
  const records: UsageRecord[] = []
  const {
    listen: _listen,
    target,
    providerListen,
    provider,
    resignSigV4,
    ensureStreamUsage,
    metrics,
    correlation: _correlation,
    correlationHeader: _header,
    maxWaitMs: _wait,
    ...usage
  } = options

  // ---- the client-facing side: clients → sidecar → gateway ----------------------------------------
  const plugin = usagewire({
    ...usage,
    sinks: [prometheusSink({ registry }), ...(options.sinks ?? [])],
    onUsage: (record) => {
      records.push(record)
      if (records.length > 1000) records.shift()
      return options.onUsage?.(record)
    },
  })
  const ids = new WeakMap<IncomingMessage, string>()
  const agents: http.Agent[] = [agentFor(target)]
  const clientProxy = createProxyMiddleware<IncomingMessage, ServerResponse>({
    target,
    changeOrigin: true,
    agent: agents[0],
    plugins: [plugin],
    on: {
      proxyReq: (proxyReq, req, res) => {
        const exchange = exchangeOf(req)
        if (!exchange || !correlator) return
        const id = randomUUID()
        ids.set(req, id)
        if (strategies.includes('header')) proxyReq.setHeader(header, id)
        correlator.client(id, exchange)
        res.once('close', () => correlator.gone(id))
      },
      proxyRes: (proxyRes, req) => {
        const id = ids.get(req)
        if (id === undefined || !correlator) return
        const reading = new Reading(req.url ?? '/')
        reading.collectText = correlator.needsText(id)
        reading.observe(proxyRes)
        correlator.answered(id, reading)
      },
    },
  })
  const serveMetrics = metrics !== false ? metricsHandler(registry) : undefined
  const clientServer = http.createServer((req, res) => {
    if (serveMetrics && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) return serveMetrics(req, res)
    void clientProxy(req, res, (error?: unknown) =>
      answer(res, 502, 'usagewire_proxy_error', error ? String((error as Error).message ?? error) : 'not proxied'),
    )
  })

  // ---- the provider-facing side: gateway → sidecar → provider ---------------------------------------
  let providerServer: http.Server | undefined
  if (twoSided) {
    const routes: ProviderRoute[] = typeof provider === 'string' ? [{ url: provider }] : (provider ?? [])
    const resign = resignSigV4 ? await resigner(resignSigV4 === true ? {} : resignSigV4) : undefined
    const streamUsage = ensureStreamUsage !== false ? new StreamUsage(options.logger) : undefined
    const proxies = routes.map((route) => ({
      prefix: route.prefix?.replace(/\/+$/, '') ?? '',
      url: route.url,
      handler: createProxyMiddleware<ReadWhole, ServerResponse>({
        target: route.url,
        changeOrigin: true,
        agent: agents[agents.push(agentFor(route.url)) - 1],
        ...(route.prefix
          ? { pathRewrite: (path: string) => path.slice(route.prefix!.replace(/\/+$/, '').length) || '/' }
          : {}),
        on: {
          proxyReq: (proxyReq, req) => {
            const call = calls.get(req)
            if (call) {
              // The gateway left before the provider answered: the provider would generate, and bill, the
              // whole answer for nobody (docs/peer-bugs.md row 45).
              if (call.gone) return void proxyReq.destroy()
              call.upstream = proxyReq
            }
            proxyReq.removeHeader(header)
            // A body read whole (to be signed again, or to ask for the streamed usage) is written here; the
            // request stream has been read. It keeps the framing it came with unless its length changed.
            const body = req.rawBody
            if (body) {
              if (req.usageAsked || req.headers['content-length'] !== undefined) {
                proxyReq.removeHeader('transfer-encoding')
                proxyReq.setHeader('content-length', body.length)
              }
              proxyReq.write(body)
            }
          },
          proxyRes: (proxyRes, req, res) => {
            if (req.usageAsked) streamUsage!.refused(proxyRes.statusCode ?? 0, route.url)
            // The provider's body broke off (a reset mid-stream): http-proxy 1.x would leave the gateway
            // waiting for the rest for ever. Its response is cut, as the provider's was.
            const brokeOff = (): void => {
              if (!proxyRes.complete && !res.writableEnded && !res.destroyed) {
                res.destroy(new Error('the provider response broke off before its end'))
              }
            }
            proxyRes.on('error', brokeOff)
            proxyRes.once('close', brokeOff)
            const call = calls.get(req)
            if (!call) return
            call.answered = true
            const { reading, tap } = call
            const head = tap?.head(
              proxyRes.statusCode ?? 0,
              (name) => (name === 'content-encoding' ? undefined : proxyRes.headers[name]),
              [],
            )
            // A live tap reads the decoded body Reading hands over; the Reading itself always reads.
            reading.observe(proxyRes, tap && head?.read ? tap : undefined)
            if (tap && !head?.read) tap.fail()
          },
          error: (error, _req, res) => {
            if ('writeHead' in res) answer(res as ServerResponse, 502, 'usagewire_proxy_error', error.message)
            else res.destroy()
          },
        },
      }),
    }))
    // Longest prefix first.
    proxies.sort((a, b) => b.prefix.length - a.prefix.length)
    // Each provider call is registered as it arrives: only the client requests in flight then can own it.
    const calls = new WeakMap<
      IncomingMessage,
      { reading: Reading; tap: UpstreamTap | undefined; answered?: true; upstream?: ClientRequest; gone?: true }
    >()
    providerServer = http.createServer((req, res) => {
      const path = req.url ?? '/'
      const reading = new Reading(path)
      const id = req.headers[header]
      // The correlation header is the sidecar's own: not signed again (its removal after signing broke the
      // signature), not sent to the provider.
      delete req.headers[header]
      dropAnsweredExpect(req)
      // The provider's answer is read here: it must come in a coding the sidecar decodes.
      narrowAcceptEncoding(req)
      const tap = correlator!.call(reading, typeof id === 'string' ? id : undefined)
      // A call the header joined is the request's tap: its text is compared with nothing.
      reading.collectText = tap === undefined && correlator!.callsNeedText
      calls.set(req, { reading, tap })
      res.once('close', () => {
        const call = calls.get(req)
        // An answer that arrived is followed to its end by its Reading; one that never came is given up,
        // and so is the provider's work on it.
        if (call && !call.answered) {
          call.gone = true
          call.upstream?.destroy()
          call.reading.abandon()
          call.tap?.fail()
        }
      })
      const route = proxies.find((p) => p.prefix === '' || path === p.prefix || path.startsWith(`${p.prefix}/`))
      if (!route) return answer(res, 404, 'not_found_error', `no provider route for ${path}`)
      const forward = () =>
        void route.handler(req, res, (error?: unknown) =>
          answer(res, 502, 'usagewire_proxy_error', error ? String((error as Error).message ?? error) : 'not proxied'),
        )
      const forwarded = route.prefix === '' ? path : path.slice(route.prefix.length) || '/'
      const sign = resign?.wants(req) === true
      // A body signed with SigV4 changes only where it is signed again.
      const usage = streamUsage?.wants(req, forwarded) === true && (sign || !signedWithSigV4(req))
      if (!sign && !usage) return forward()
      // The body is read whole first: the usage asked for, then signed for the provider's host, then sent.
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        const read = Buffer.concat(chunks)
        const body = usage ? streamUsage!.apply(res, forwarded, read) : read
        const whole = req as ReadWhole
        whole.rawBody = body
        if (body !== read) whole.usageAsked = true
        if (!sign) return forward()
        resign!
          .sign(req, body, route.url, forwarded)
          .then(forward, (error: Error) =>
            answer(res, 502, 'usagewire_proxy_error', `could not re-sign the request: ${error.message}`),
          )
      })
    })
  }

  const url = await serve(clientServer, options.listen)
  let providerUrl: string | undefined
  try {
    providerUrl = providerServer ? await serve(providerServer, providerListen!) : undefined
  } catch (error) {
    clientServer.close()
    throw error
  }

  const closeServer = (server: http.Server, graceMs: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => server.closeAllConnections(), graceMs)
      timer.unref()
      server.close(() => {
        clearTimeout(timer)
        resolve()
      })
      server.closeIdleConnections()
    })

  return {
    url,
    providerUrl,
    records,
    registry,
    async close(graceMs = 10_000) {
      await Promise.all([closeServer(clientServer, graceMs), providerServer && closeServer(providerServer, graceMs)])
      for (const agent of agents) agent.destroy()
    },
  }
}
