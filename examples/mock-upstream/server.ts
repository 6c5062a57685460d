/**
 * An embedded mock LLM upstream on plain node:http. It answers each dialect's endpoints with the
 * bytes of the scenario the request selects (scenarios.ts), streaming when the request says
 * `"stream": true` (Bedrock and Gemini: when the path names the streaming method). Binds 127.0.0.1
 * on a free port unless told otherwise.
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
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:41234 (paths start with /v1, /v1beta or /model). */
  url: string
  port: number
  close(): Promise<void>
}

const ROUTES: Record<string, MockDialect> = {
  '/v1/messages': 'anthropic-messages',
  '/v1/chat/completions': 'openai-chat',
  '/v1/responses': 'openai-responses',
}

/** Bedrock InvokeModel(WithResponseStream): the model id is in the path, percent-encoded (`:` as %3A). */
const BEDROCK = /^\/model\/([^/]+)\/(invoke|invoke-with-response-stream)$/
/** The Gemini API: the model and the method in the path, `?alt=sse` for SSE. */
const GEMINI = /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)$/

interface Route {
  dialect: MockDialect
  /** Bedrock and Gemini: the model in the path; the others read the body's `model`. */
  model?: string
  /** Bedrock and Gemini: the method says it; the others read the body's `stream`. */
  streaming?: boolean
}

function routeOf(path: string): Route | undefined {
  const fixed = ROUTES[path]
  if (fixed) return { dialect: fixed }
  const bedrock = BEDROCK.exec(path)
  if (bedrock) {
    return {
      dialect: 'bedrock-invoke',
      model: decodeURIComponent(bedrock[1]!),
      streaming: bedrock[2] === 'invoke-with-response-stream',
    }
  }
  const gemini = GEMINI.exec(path)
  if (gemini)
    return { dialect: 'gemini', model: decodeURIComponent(gemini[1]!), streaming: gemini[2] !== 'generateContent' }
  return undefined
}

const STREAM_TYPE: Record<MockDialect, string> = {
  'anthropic-messages': 'text/event-stream; charset=utf-8',
  'openai-chat': 'text/event-stream; charset=utf-8',
  'openai-responses': 'text/event-stream; charset=utf-8',
  'bedrock-invoke': 'application/vnd.amazon.eventstream',
  gemini: 'text/event-stream',
}

const REQUEST_ID_HEADER: Record<MockDialect, string> = {
  'anthropic-messages': 'request-id',
  'openai-chat': 'x-request-id',
  'openai-responses': 'x-request-id',
  'bedrock-invoke': 'x-amzn-requestid',
  gemini: 'x-request-id',
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
  const [path = '/', query = ''] = (req.url ?? '/').split('?')
  const route = routeOf(path)
  if (!route) return sendJson(res, 404, { error: { type: 'not_found_error', message: `no route ${path}` } })
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

  const { dialect } = route
  const header = req.headers['x-mock-scenario']
  const model = route.model ?? (typeof requestBody.model === 'string' ? requestBody.model : '')
  const streaming = route.streaming ?? requestBody.stream === true
  const jsonArray = dialect === 'gemini' && streaming && new URLSearchParams(query).get('alt') !== 'sse'
  const scenario = findScenario(dialect, typeof header === 'string' ? header : model)
  const streamOptions = (requestBody.stream_options ?? {}) as Record<string, unknown>
  const ctx: RequestContext = {
    seq,
    requestedModel: model,
    includeUsage: streamOptions.include_usage === true,
    includeObfuscation: streamOptions.include_obfuscation !== false,
    jsonArray,
    created: 1_755_800_000 + seq,
  }
  const gzip = req.headers['x-mock-gzip'] === '1'
  const pieces = streaming ? scenario.stream(ctx) : [JSON.stringify(scenario.json(ctx))]

  res.statusCode = 200
  res.setHeader('content-type', streaming && !jsonArray ? STREAM_TYPE[dialect] : 'application/json')
  if (streaming) res.setHeader('cache-control', 'no-cache')
  res.setHeader(REQUEST_ID_HEADER[dialect], `req_mock_${seq}`)
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
      body: Buffer.concat(pieces.map((piece) => Buffer.from(piece))),
    })
  }
}

/** Writes the pieces one by one (gzip flushed after each, as a streaming server must); false if the client left. */
async function write(
  res: http.ServerResponse,
  pieces: Array<string | Uint8Array>,
  gzip: boolean,
  delayMs: number,
): Promise<boolean> {
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
