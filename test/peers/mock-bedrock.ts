/**
 * A mock AWS Bedrock for gateways that run as real peers: the control plane's `ListInferenceProfiles`
 * (which Headroom calls at startup) and the four runtime routes a Bedrock client may call for an
 * Anthropic model, depending on the model id: `converse-stream` and `converse`
 * (docs/dialects/bedrock-converse.md; the id arrives URL-encoded, `%3A`), `invoke-with-response-stream`
 * and `invoke` (docs/dialects/bedrock-invoke.md; the id arrives with a raw `:`). Every answer reports the
 * same usage, each in its route's own convention, and says the same text unless the prompt asks for
 * another last word. Signatures are not checked.
 * Binds 127.0.0.1 on a free port; records every request it gets.
 */
import http, { type IncomingHttpHeaders } from 'node:http'
import { EventStreamCodec, type Message } from '@smithy/eventstream-codec'
import { listen, shut } from '../matrix/upstream.js'

/** What every answer costs, in disjoint buckets: `input` excludes the cache reads and writes. */
export const BEDROCK_TRUTH = { input: 1234, cacheRead: 3000, cacheWrite: 200, output: 56 } as const

/** The answer's text, streamed in these deltas (one text chunk each). */
export const BEDROCK_DELTAS = ['Hello', ' from', ' mock', ' Bedrock.'] as const
export const BEDROCK_TEXT = BEDROCK_DELTAS.join('')

/**
 * The deltas of the answer to a request whose prompt says `[reply:<word>]`: the same four, the last one
 * ` <word>.`, so requests in flight together get different texts. Without the marker, BEDROCK_DELTAS.
 */
export const deltasFor = (word?: string): string[] =>
  word === undefined ? [...BEDROCK_DELTAS] : [...BEDROCK_DELTAS.slice(0, -1), ` ${word}.`]

const replyWord = (body: string) => /\[reply:(\w+)\]/.exec(body)?.[1]

/**
 * The system-defined inference profiles the control plane lists: one dated Claude id. A client model the
 * list lacks (a bare alias, `claude-sonnet-4-6`) is sent by Headroom as `us.anthropic.<alias>-v1:0`.
 */
export const INFERENCE_PROFILES = ['us.anthropic.claude-haiku-4-5-20251001-v1:0']

export type BedrockRoute = 'converse-stream' | 'converse' | 'invoke-with-response-stream' | 'invoke'

export interface BedrockRequest {
  method: string
  /** The request target as it came (path and query, still URL-encoded). */
  path: string
  headers: IncomingHttpHeaders
  /** The JSON body, or the raw text when it is not JSON (empty for a GET). */
  body: unknown
  /** The runtime route, for the runtime calls. */
  route?: BedrockRoute
  /** The model id of a runtime call, decoded. */
  modelId?: string
}

export interface MockBedrock {
  url: string
  requests: BedrockRequest[]
  /** The runtime calls only (not the control plane). */
  runtime(): BedrockRequest[]
  /**
   * The next `n` runtime calls are answered together, once all of them came (or after `timeoutMs`), so
   * that many are in flight at once.
   */
  gather(n: number, timeoutMs?: number): void
  close(): Promise<void>
}

const codec = new EventStreamCodec(
  (bytes) => Buffer.from(bytes).toString('utf8'),
  (text) => Buffer.from(text, 'utf8'),
)

function frame(headers: Record<string, string>, payload: object): Uint8Array {
  const out: Message['headers'] = {}
  for (const [name, value] of Object.entries(headers)) out[name] = { type: 'string', value }
  return codec.encode({ headers: out, body: Buffer.from(JSON.stringify(payload)) })
}

/** `p`: the random-length padding Bedrock adds against length side channels; deterministic here. */
const pad = (i: number) => 'abcdefghijklmnop'.slice(0, 3 + ((i * 5) % 11))

/** One ConverseStream event, named after its member of the union. */
const converseEvent = (type: string, payload: object, i: number) =>
  frame(
    { ':message-type': 'event', ':event-type': type, ':content-type': 'application/json' },
    { ...payload, p: pad(i) },
  )

/** One InvokeModelWithResponseStream `chunk`: the Anthropic event in base64. */
const chunk = (event: object, i: number) =>
  frame(
    { ':message-type': 'event', ':event-type': 'chunk', ':content-type': 'application/json' },
    { bytes: Buffer.from(JSON.stringify(event)).toString('base64'), p: pad(i) },
  )

const t = BEDROCK_TRUTH

/** Bedrock's TokenUsage: disjoint input, the total counting every bucket. */
const tokenUsage = {
  inputTokens: t.input,
  outputTokens: t.output,
  totalTokens: t.input + t.cacheRead + t.cacheWrite + t.output,
  cacheReadInputTokens: t.cacheRead,
  cacheWriteInputTokens: t.cacheWrite,
}

/** Anthropic usage as Bedrock's Claude models report it on a complete message. */
const anthropicUsage = (output: number) => ({
  input_tokens: t.input,
  cache_creation_input_tokens: t.cacheWrite,
  cache_read_input_tokens: t.cacheRead,
  output_tokens: output,
})

function converseStream(deltas: string[]): Uint8Array[] {
  let i = 0
  return [
    converseEvent('messageStart', { role: 'assistant' }, i++),
    ...deltas.map((text) => converseEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text } }, i++)),
    converseEvent('contentBlockStop', { contentBlockIndex: 0 }, i++),
    converseEvent('messageStop', { stopReason: 'end_turn' }, i++),
    converseEvent('metadata', { usage: tokenUsage, metrics: { latencyMs: 412 } }, i++),
  ]
}

const converseBody = (deltas: string[]) => ({
  output: { message: { role: 'assistant', content: [{ text: deltas.join('') }] } },
  stopReason: 'end_turn',
  usage: tokenUsage,
  metrics: { latencyMs: 388 },
})

function invokeStream(model: string, deltas: string[]): Uint8Array[] {
  const events: object[] = [
    {
      type: 'message_start',
      message: {
        id: 'msg_bdrk_01MockBedrockStream',
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: anthropicUsage(1),
      },
    },
    { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
    ...deltas.map((text) => ({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } })),
    { type: 'content_block_stop', index: 0 },
    {
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { output_tokens: t.output },
    },
    {
      type: 'message_stop',
      'amazon-bedrock-invocationMetrics': {
        inputTokenCount: t.input,
        outputTokenCount: t.output,
        invocationLatency: 2210,
        firstByteLatency: 640,
        cacheReadInputTokenCount: t.cacheRead,
        cacheWriteInputTokenCount: t.cacheWrite,
      },
    },
  ]
  return events.map((event, i) => chunk(event, i))
}

const invokeBody = (model: string, deltas: string[]) => ({
  id: 'msg_bdrk_01MockBedrockJson',
  type: 'message',
  role: 'assistant',
  model,
  content: [{ type: 'text', text: deltas.join('') }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: anthropicUsage(t.output),
})

/** The control plane's answer: system-defined profiles for the Claude models the tests ask for. */
const profiles = () => ({
  inferenceProfileSummaries: INFERENCE_PROFILES.map((id) => ({
    inferenceProfileId: id,
    inferenceProfileName: `US ${id}`,
    inferenceProfileArn: `arn:aws:bedrock:us-east-1:000000000000:inference-profile/${id}`,
    models: [{ modelArn: `arn:aws:bedrock:us-east-1::foundation-model/${id.slice(3)}` }],
    status: 'ACTIVE',
    type: 'SYSTEM_DEFINED',
  })),
})

function json(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}) {
  const data = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(data),
    'x-amzn-requestid': 'req-mock-bedrock',
    ...headers,
  })
  res.end(data)
}

/** Writes each frame split in two, as a network would; chunked, as AWS does. */
async function stream(res: http.ServerResponse, frames: Uint8Array[]) {
  res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': 'req-mock-bedrock' })
  const write = (bytes: Uint8Array) => new Promise<void>((resolve) => res.write(bytes, () => resolve()))
  for (const f of frames) {
    if (res.destroyed) return
    const half = Math.ceil(f.length / 2)
    await write(f.subarray(0, half))
    await new Promise((r) => setImmediate(r))
    await write(f.subarray(half))
  }
  res.end()
}

const RUNTIME = /^\/model\/([^/]+)\/(converse-stream|converse|invoke-with-response-stream|invoke)$/

export async function startMockBedrock(): Promise<MockBedrock> {
  const requests: BedrockRequest[] = []
  let group: { left: number; open: () => void; opened: Promise<void> } | undefined
  /** Waits for the rest of the gathered group, when there is one. */
  const together = async () => {
    const current = group
    if (!current) return
    if (--current.left === 0) {
      group = undefined
      current.open()
    }
    await current.opened
  }
  const server = http.createServer(async (req, res) => {
    const parts: Buffer[] = []
    for await (const part of req) parts.push(part as Buffer)
    const text = Buffer.concat(parts).toString('utf8')
    let body: unknown = text
    try {
      if (text) body = JSON.parse(text)
    } catch {
      // Kept as text.
    }
    const target = req.url ?? '/'
    const path = target.split('?')[0]!
    const match = RUNTIME.exec(path)
    const record: BedrockRequest = { method: req.method ?? '', path: target, headers: req.headers, body }
    if (match) {
      record.route = match[2] as BedrockRoute
      record.modelId = decodeURIComponent(match[1]!)
    }
    requests.push(record)

    if (req.method === 'GET' && path === '/inference-profiles') return json(res, 200, profiles())
    if (req.method !== 'POST' || !match) {
      return json(
        res,
        404,
        { message: `mock Bedrock: no route for ${req.method} ${path}` },
        {
          'x-amzn-errortype': 'ResourceNotFoundException',
        },
      )
    }
    await together()
    const model = record.modelId!
    const deltas = deltasFor(replyWord(text))
    switch (record.route) {
      case 'converse-stream':
        return stream(res, converseStream(deltas))
      case 'converse':
        return json(res, 200, converseBody(deltas))
      case 'invoke-with-response-stream':
        return stream(res, invokeStream(model, deltas))
      case 'invoke':
        return json(res, 200, invokeBody(model, deltas), {
          'x-amzn-bedrock-input-token-count': String(t.input),
          'x-amzn-bedrock-output-token-count': String(t.output),
          'x-amzn-bedrock-cache-read-input-token-count': String(t.cacheRead),
          'x-amzn-bedrock-cache-write-input-token-count': String(t.cacheWrite),
        })
    }
  })
  const url = await listen(server)
  return {
    url,
    requests,
    runtime: () => requests.filter((r) => r.route !== undefined),
    gather(n, timeoutMs = 5_000) {
      let release!: () => void
      const opened = new Promise<void>((resolve) => (release = resolve))
      const current = { left: n, open: () => (clearTimeout(timer), release()), opened }
      const timer = setTimeout(() => {
        if (group === current) group = undefined
        release()
      }, timeoutMs)
      group = current
    },
    close: () => shut(server),
  }
}
