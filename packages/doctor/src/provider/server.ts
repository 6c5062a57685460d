/**
 * The doctor's provider: one node:http listener that answers every dialect usagewire reads, honestly and
 * with known usage, the scenario chosen by the marker in each request's prompt (scenarios.ts). Anthropic
 * Messages (`…/v1/messages`, Vertex `:rawPredict` / `:streamRawPredict`), OpenAI Chat and Responses (any
 * path ending in `/chat/completions` or `/responses`), Bedrock Runtime (`/model/{id}/converse`,
 * `converse-stream`, `invoke`, `invoke-with-response-stream`) with the control plane's
 * `ListInferenceProfiles` and `ListFoundationModels`, and Gemini (`…/models/{m}:generateContent`,
 * `:streamGenerateContent`, with or without `alt=sse`). Every call is logged with what its answer stated.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  answer,
  DOCTOR_SCENARIOS,
  findMarker,
  type Answer,
  type ProviderDialect,
  type ScenarioName,
} from './scenarios.js'
import type { RequestContext, TrueUsage } from './types.js'

export interface ProviderCall {
  /** Order of arrival on this provider. */
  seq: number
  method: string
  /** The request target as it came (path and query). */
  path: string
  dialect: ProviderDialect | undefined
  streaming: boolean
  /** The scenario the marker chose (`plain` when the prompt had none). */
  scenario: ScenarioName
  /** The marker's tag: which of the doctor's requests this call serves ('' without a marker). */
  tag: string
  model: string
  /**
   * The request's JSON body as the gateway sent it (what it asked the provider for: `stream_options`,
   * the tools, the prompt with its marker); none when it was not a JSON object.
   */
  body?: Record<string, unknown>
  status: number
  /** What the answer stated, in canonical buckets; none for errors and control-plane calls. */
  stated?: TrueUsage
  /** The answer was written to its end. */
  completed: boolean
  /** The caller went away before the answer's end (a gateway that cancels its upstream call). */
  callerLeft: boolean
}

export interface DoctorProviderOptions {
  /** `[host:]port`; default 127.0.0.1 on a free port. */
  listen?: string
  /** How long the abort scenario's answer waits, part-way, for the caller to leave; default 1500 ms. */
  pauseMs?: number
}

export interface DoctorProvider {
  /** http://host:port, without a trailing slash. */
  readonly url: string
  readonly host: string
  readonly port: number
  /** Every call, in order of arrival. */
  readonly calls: ProviderCall[]
  /** The calls that carried the marker tag `tag`. */
  callsFor(tag: string): ProviderCall[]
  close(): Promise<void>
}

/** `[host:]port` as host and port, loopback unless given; a bare host is not an address. */
export function parseListen(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':')
  const host = at === -1 ? '127.0.0.1' : address.slice(0, at).replace(/^\[|\]$/g, '') || '127.0.0.1'
  const text = at === -1 ? address : address.slice(at + 1)
  const port = Number(text)
  if (text === '' || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new TypeError(`not an address: ${address} (expected [HOST:]PORT)`)
  return { host, port }
}

interface Route {
  dialect: ProviderDialect
  /** The method in the path says it (Bedrock, Gemini, Vertex); else the body's `stream`. */
  streaming?: boolean
  /** The model in the path (Bedrock, Gemini, Vertex). */
  model?: string
}

const BEDROCK = /^\/model\/(.+)\/(converse|converse-stream|invoke|invoke-with-response-stream)$/
const VERTEX_ANTHROPIC = /\/publishers\/anthropic\/models\/([^/:]+):(rawPredict|streamRawPredict)$/
const GEMINI = /\/models\/([^/:]+):(generateContent|streamGenerateContent)$/

function routeOf(path: string): Route | undefined {
  const bedrock = BEDROCK.exec(path)
  if (bedrock) {
    const method = bedrock[2]!
    return {
      dialect: method.startsWith('converse') ? 'bedrock-converse' : 'bedrock-invoke',
      streaming: method.endsWith('stream'),
      model: decodeURIComponent(bedrock[1]!),
    }
  }
  const vertex = VERTEX_ANTHROPIC.exec(path)
  if (vertex) return { dialect: 'anthropic-messages', streaming: vertex[2] === 'streamRawPredict', model: vertex[1]! }
  const gemini = GEMINI.exec(path)
  if (gemini)
    return {
      dialect: 'gemini',
      streaming: gemini[2] === 'streamGenerateContent',
      model: decodeURIComponent(gemini[1]!),
    }
  if (path.endsWith('/messages') || path.endsWith('/messages/count_tokens')) return { dialect: 'anthropic-messages' }
  if (path.endsWith('/chat/completions')) return { dialect: 'openai-chat' }
  if (path.endsWith('/responses')) return { dialect: 'openai-responses' }
  return undefined
}

/** The request id header each provider names its answers with. */
const REQUEST_ID: Record<ProviderDialect, string> = {
  'anthropic-messages': 'request-id',
  'openai-chat': 'x-request-id',
  'openai-responses': 'x-request-id',
  'bedrock-converse': 'x-amzn-requestid',
  'bedrock-invoke': 'x-amzn-requestid',
  gemini: 'x-request-id',
}

const PROFILES = ['us.anthropic.claude-sonnet-4-5-20250929-v1:0', 'us.anthropic.claude-haiku-4-5-20251001-v1:0']

/** The control plane and model lists some gateways call at start-up. */
function controlPlane(method: string, path: string): unknown {
  if (method !== 'GET') return undefined
  if (path === '/inference-profiles')
    return {
      inferenceProfileSummaries: PROFILES.map((id) => ({
        inferenceProfileId: id,
        inferenceProfileName: `US ${id}`,
        inferenceProfileArn: `arn:aws:bedrock:us-east-1:000000000000:inference-profile/${id}`,
        models: [{ modelArn: `arn:aws:bedrock:us-east-1::foundation-model/${id.slice(3)}` }],
        status: 'ACTIVE',
        type: 'SYSTEM_DEFINED',
      })),
    }
  if (path === '/foundation-models')
    return {
      modelSummaries: PROFILES.map((id) => ({
        modelId: id.slice(3),
        modelArn: `arn:aws:bedrock:us-east-1::foundation-model/${id.slice(3)}`,
        providerName: 'Anthropic',
        inputModalities: ['TEXT'],
        outputModalities: ['TEXT'],
        responseStreamingSupported: true,
        inferenceTypesSupported: ['INFERENCE_PROFILE'],
      })),
    }
  if (path.endsWith('/models'))
    return {
      object: 'list',
      data: ['gpt-4.1', 'gpt-5-mini', 'claude-sonnet-4-5'].map((id) => ({
        id,
        object: 'model',
        created: 1755800000,
        owned_by: 'doctor',
      })),
    }
  return undefined
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

/** Writes `piece` and waits until it reached the socket; false when the caller has gone. */
const send = (res: http.ServerResponse, piece: string | Uint8Array) =>
  new Promise<boolean>((resolve) => {
    if (res.destroyed) return resolve(false)
    res.write(piece, (error) => resolve(!error))
  })

/** Waits `ms`, or less when the caller leaves first. */
function pause(res: http.ServerResponse, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve()
    const timer = setTimeout(done, ms)
    res.once('close', done)
    function done() {
      clearTimeout(timer)
      res.off('close', done)
      resolve()
    }
  })
}

/** Writes the answer piece by piece, one event-loop turn each; true when it reached its end. */
async function play(res: http.ServerResponse, reply: Answer, streaming: boolean, pauseMs: number): Promise<boolean> {
  const headers: Record<string, string> = { 'content-type': reply.contentType, ...reply.headers }
  if (!streaming) headers['content-length'] = String(reply.pieces.reduce((n, p) => n + Buffer.byteLength(p), 0))
  else headers['cache-control'] = 'no-cache'
  res.writeHead(reply.status, headers)
  for (const [i, piece] of reply.pieces.entries()) {
    if (reply.pauseAfter === i) await pause(res, pauseMs)
    if (!(await send(res, piece))) return false
    if (streaming) await new Promise((resolve) => setImmediate(resolve))
  }
  if (res.destroyed) return false
  await new Promise<void>((resolve) => res.end(resolve))
  return true
}

/** Starts the doctor's provider. */
export async function startDoctorProvider(options: DoctorProviderOptions = {}): Promise<DoctorProvider> {
  const { host, port } = parseListen(options.listen ?? '127.0.0.1:0')
  const pauseMs = options.pauseMs ?? 1500
  const calls: ProviderCall[] = []
  let seq = 0

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: { type: 'api_error', message: String(error) } })
      else res.destroy()
    })
  })

  async function handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const target = req.url ?? '/'
    const [path = '/', query = ''] = target.split('?')
    const method = req.method ?? 'GET'
    const raw = await readBody(req)
    const listed = controlPlane(method, path)
    if (listed !== undefined) return sendJson(res, 200, listed, { 'x-amzn-requestid': `req-doctor-${seq}` })
    if (method === 'GET' || method === 'HEAD') {
      res.writeHead(200, { 'content-type': 'text/plain' })
      return void res.end(method === 'HEAD' ? undefined : 'usagewire doctor provider\n')
    }
    const route = routeOf(path)
    if (!route) return sendJson(res, 404, { error: { type: 'not_found_error', message: `no route ${path}` } })

    const text = raw.toString('utf8')
    let body: Record<string, unknown> = {}
    let parsedBody = false
    try {
      const parsed: unknown = text ? JSON.parse(text) : {}
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
        body = parsed as Record<string, unknown>
        parsedBody = text !== ''
      }
    } catch {
      return sendJson(res, 400, { error: { type: 'invalid_request_error', message: 'body must be JSON' } })
    }
    const found = findMarker(text)
    const scenario: ScenarioName = found?.scenario ?? 'plain'
    const model = route.model ?? (typeof body.model === 'string' ? body.model : '')

    if (route.dialect === 'anthropic-messages' && path.endsWith('/count_tokens')) {
      const truth = DOCTOR_SCENARIOS[scenario].truth
      return sendJson(res, 200, { input_tokens: truth ? truth.input + truth.cacheRead + truth.cacheWrite : 0 })
    }

    const streaming = route.streaming ?? body.stream === true
    const streamOptions = (body.stream_options ?? {}) as Record<string, unknown>
    const n = seq++
    const ctx: RequestContext = {
      seq: n,
      requestedModel: model,
      includeUsage: streamOptions.include_usage === true,
      includeObfuscation: streamOptions.include_obfuscation !== false,
      jsonArray: route.dialect === 'gemini' && streaming && new URLSearchParams(query).get('alt') !== 'sse',
      created: 1_755_800_000 + n,
    }
    const mark = found ? `[usagewire-doctor:${found.scenario}#${found.tag}]` : '[usagewire-doctor:plain]'
    const reply = answer(route.dialect, scenario, mark, ctx, streaming, model)
    reply.headers = { [REQUEST_ID[route.dialect]]: `req_doctor_${n}`, ...reply.headers }
    const call: ProviderCall = {
      seq: n,
      method,
      path: target,
      dialect: route.dialect,
      streaming,
      scenario,
      tag: found?.tag ?? '',
      model,
      ...(parsedBody && { body }),
      status: reply.status,
      ...(reply.stated && { stated: reply.stated }),
      completed: false,
      callerLeft: false,
    }
    calls.push(call)
    res.once('close', () => {
      if (!res.writableFinished) call.callerLeft = true
    })
    call.completed = await play(res, reply, streaming && reply.status < 400, pauseMs)
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  const bound = server.address() as AddressInfo
  const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address
  return {
    url: `http://${shown}:${bound.port}`,
    host: bound.address,
    port: bound.port,
    calls,
    callsFor: (tag) => calls.filter((call) => call.tag === tag),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
