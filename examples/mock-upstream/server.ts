/**
 * An embedded mock LLM upstream on plain node:http. It answers the three dialects' endpoints
 * with the bytes of the scenario the request selects (scenarios.ts), streaming when the request
 * says `"stream": true`. Binds 127.0.0.1 on a free port unless told otherwise.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import zlib from 'node:zlib'
import { findScenario, type Scenario } from './scenarios.js'
import type { MockDialect, RequestContext } from './types.js'

export interface MockUpstreamOptions {
  /** Default 0 (a free port). */
  port?: number
  /** Default 127.0.0.1. */
  host?: string
  /** Pause between streamed events; default 0 (still one write, and one event-loop turn, per event). */
  eventDelayMs?: number
  /** Called once per answered request, after the last byte, with the bytes sent (before gzip). */
  onResponse?: (exchange: MockExchange) => void
}

export interface MockExchange {
  path: string
  dialect: MockDialect
  scenario: Scenario
  streaming: boolean
  gzip: boolean
  requestHeaders: http.IncomingHttpHeaders
  requestBody: Record<string, unknown>
  /** The body as generated, uncompressed: "the usage as the upstream sent it" is read from here. */
  body: Buffer
}

export interface MockUpstream {
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:41234 (paths start with /v1). */
  url: string
  port: number
  close(): Promise<void>
}

const ROUTES: Record<string, MockDialect> = {
  '/v1/messages': 'anthropic-messages',
  '/v1/chat/completions': 'openai-chat',
  '/v1/responses': 'openai-responses',
}

export async function startMockUpstream(opts: MockUpstreamOptions = {}): Promise<MockUpstream> {
  let seq = 0
  const server = http.createServer((req, res) => {
    handle(req, res, seq++, opts).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: { type: 'api_error', message: String(err) } })
      else res.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve())
  })
  const { port, address } = server.address() as AddressInfo
  return {
    url: `http://${address}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, seq: number, opts: MockUpstreamOptions) {
  const path = (req.url ?? '/').split('?')[0] ?? '/'
  const dialect = ROUTES[path]
  if (!dialect) return sendJson(res, 404, { error: { type: 'not_found_error', message: `no route ${path}` } })
  if (req.method !== 'POST')
    return sendJson(res, 405, { error: { type: 'invalid_request_error', message: 'POST only' } })

  let requestBody: Record<string, unknown>
  try {
    const parsed: unknown = JSON.parse((await readBody(req)).toString('utf8'))
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object')
    requestBody = parsed as Record<string, unknown>
  } catch {
    return sendJson(res, 400, { error: { type: 'invalid_request_error', message: 'body must be a JSON object' } })
  }

  const header = req.headers['x-mock-scenario']
  const model = typeof requestBody.model === 'string' ? requestBody.model : ''
  const scenario = findScenario(dialect, typeof header === 'string' ? header : model)
  const streamOptions = (requestBody.stream_options ?? {}) as Record<string, unknown>
  const ctx: RequestContext = {
    seq,
    requestedModel: model,
    includeUsage: streamOptions.include_usage === true,
    includeObfuscation: streamOptions.include_obfuscation !== false,
    created: 1_755_800_000 + seq,
  }
  const streaming = requestBody.stream === true
  const gzip = req.headers['x-mock-gzip'] === '1'
  const pieces = streaming ? scenario.stream(ctx) : [JSON.stringify(scenario.json(ctx))]

  res.statusCode = 200
  res.setHeader('content-type', streaming ? 'text/event-stream; charset=utf-8' : 'application/json')
  if (streaming) res.setHeader('cache-control', 'no-cache')
  res.setHeader(dialect === 'anthropic-messages' ? 'request-id' : 'x-request-id', `req_mock_${seq}`)
  if (gzip) res.setHeader('content-encoding', 'gzip')

  const sent = await write(res, pieces, gzip, streaming ? (opts.eventDelayMs ?? 0) : 0)
  if (sent) {
    opts.onResponse?.({
      path,
      dialect,
      scenario,
      streaming,
      gzip,
      requestHeaders: req.headers,
      requestBody,
      body: Buffer.from(pieces.join('')),
    })
  }
}

/** Writes the pieces one by one (gzip flushed after each, as a streaming server must); false if the client left. */
async function write(res: http.ServerResponse, pieces: string[], gzip: boolean, delayMs: number): Promise<boolean> {
  const gz = gzip ? zlib.createGzip() : undefined
  if (gz) gz.pipe(res)
  const out: NodeJS.WritableStream = gz ?? res
  for (const piece of pieces) {
    if (res.destroyed) return false
    out.write(piece)
    if (gz) await new Promise<void>((resolve) => gz.flush(() => resolve()))
    await (delayMs > 0 ? new Promise((r) => setTimeout(r, delayMs)) : new Promise((r) => setImmediate(r)))
  }
  if (res.destroyed) return false
  await new Promise<void>((resolve) => {
    res.once('finish', resolve)
    res.once('close', resolve)
    out.end()
  })
  return res.writableFinished
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify({ type: 'error', ...(body as object) })
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}
