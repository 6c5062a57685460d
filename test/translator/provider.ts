/**
 * A mock provider speaking the three upstream wires the translators call, with usage in each wire's own
 * convention (docs/dialects/bedrock-converse.md, openai-responses.md, openai-chat.md).
 */
import http from 'node:http'
import { EventStreamCodec } from '@smithy/eventstream-codec'
import { listen, shut } from '../matrix/upstream.js'
import { FAULT_MODELS, TEXT, TEXT_DELTAS, type Truth } from './common.js'

const codec = new EventStreamCodec(
  (bytes) => Buffer.from(bytes).toString('utf8'),
  (text) => Buffer.from(text, 'utf8'),
)

/** One ConverseStream event: an AWS event stream message named after its member of the union. */
export function converseFrame(eventType: string, payload: object): Uint8Array {
  const header = (value: string) => ({ type: 'string' as const, value })
  return codec.encode({
    headers: {
      ':message-type': header('event'),
      ':event-type': header(eventType),
      ':content-type': header('application/json'),
    },
    // `p` pads each payload against length side channels, as Bedrock does.
    body: Buffer.from(JSON.stringify({ ...payload, p: 'abcdefghij'.slice(0, 3 + (eventType.length % 7)) })),
  })
}

/** Bedrock's TokenUsage: `inputTokens` excludes the cache; the total counts every bucket. */
const bedrockUsage = (t: Truth) => ({
  inputTokens: t.input,
  outputTokens: t.output,
  totalTokens: t.input + t.cacheRead + t.cacheWrite + t.output,
  cacheReadInputTokens: t.cacheRead,
  cacheWriteInputTokens: t.cacheWrite,
})

/** OpenAI Responses usage: `input_tokens` includes the cache. */
const responsesUsage = (t: Truth) => ({
  input_tokens: t.input + t.cacheRead + t.cacheWrite,
  input_tokens_details: { cached_tokens: t.cacheRead, cache_write_tokens: t.cacheWrite },
  output_tokens: t.output,
  output_tokens_details: { reasoning_tokens: 0 },
  total_tokens: t.input + t.cacheRead + t.cacheWrite + t.output,
})

/** OpenAI Chat usage: `prompt_tokens` includes the cache. */
const chatUsage = (t: Truth) => ({
  prompt_tokens: t.input + t.cacheRead + t.cacheWrite,
  completion_tokens: t.output,
  total_tokens: t.input + t.cacheRead + t.cacheWrite + t.output,
  prompt_tokens_details: { cached_tokens: t.cacheRead, cache_write_tokens: t.cacheWrite, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
})

const sse = (data: unknown, event?: string): string =>
  (event ? `event: ${event}\n` : '') + `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`

/**
 * A streamed answer: its pieces in order, and where a fault cuts it. `firstDelta` is the index of the
 * piece with the first text delta, `usage` the index of the first piece that carries usage.
 */
interface Stream {
  type: string
  pieces: Array<string | Uint8Array>
  firstDelta: number
  usage: number
}

function converseStream(truth: Truth): Stream {
  const pieces = [
    converseFrame('messageStart', { role: 'assistant' }),
    ...TEXT_DELTAS.map((text) => converseFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text } })),
    converseFrame('contentBlockStop', { contentBlockIndex: 0 }),
    converseFrame('messageStop', { stopReason: 'end_turn' }),
    converseFrame('metadata', { usage: bedrockUsage(truth), metrics: { latencyMs: 412 } }),
  ]
  return { type: 'application/vnd.amazon.eventstream', pieces, firstDelta: 1, usage: pieces.length - 1 }
}

const RESPONSES_MODEL = 'gpt-5-mini-2025-08-07'
const CHAT_MODEL = 'gpt-4.1-2025-04-14'

function responseObject(status: string, text: string | null, usage: unknown) {
  const output =
    text === null
      ? []
      : [
          {
            id: 'msg_01',
            type: 'message',
            status: 'completed',
            role: 'assistant',
            content: [{ type: 'output_text', annotations: [], text }],
          },
        ]
  return { id: 'resp_01', object: 'response', created_at: 1764500000, status, model: RESPONSES_MODEL, output, usage }
}

function responsesStream(truth: Truth): Stream {
  let seq = 0
  const event = (type: string, fields: object) => sse({ type, sequence_number: seq++, ...fields }, type)
  const where = { item_id: 'msg_01', output_index: 0, content_index: 0 }
  const pieces = [
    event('response.created', { response: responseObject('in_progress', null, null) }),
    event('response.in_progress', { response: responseObject('in_progress', null, null) }),
    event('response.output_item.added', {
      output_index: 0,
      item: { id: 'msg_01', type: 'message', status: 'in_progress', role: 'assistant', content: [] },
    }),
    event('response.content_part.added', { ...where, part: { type: 'output_text', annotations: [], text: '' } }),
    ...TEXT_DELTAS.map((delta) => event('response.output_text.delta', { ...where, delta, logprobs: [] })),
    event('response.output_text.done', { ...where, text: TEXT, logprobs: [] }),
    event('response.output_item.done', { output_index: 0, item: responseObject('completed', TEXT, null).output[0] }),
    event('response.completed', { response: responseObject('completed', TEXT, responsesUsage(truth)) }),
  ]
  return { type: 'text/event-stream; charset=utf-8', pieces, firstDelta: 4, usage: pieces.length - 1 }
}

function chatStream(truth: Truth, includeUsage: boolean): Stream {
  const chunk = (choices: unknown[], usage: unknown) =>
    sse({
      id: 'chatcmpl-01',
      object: 'chat.completion.chunk',
      created: 1764500000,
      model: CHAT_MODEL,
      choices,
      ...(includeUsage ? { usage } : {}),
    })
  const choice = (delta: object, finish: string | null) => ({ index: 0, delta, logprobs: null, finish_reason: finish })
  const pieces = [
    chunk([choice({ role: 'assistant', content: '' }, null)], null),
    ...TEXT_DELTAS.map((content) => chunk([choice({ content }, null)], null)),
    chunk([choice({}, 'stop')], null),
    ...(includeUsage ? [chunk([], chatUsage(truth))] : []),
    sse('[DONE]'),
  ]
  // Without `include_usage` no chunk carries usage: a `beforeUsage` fault then cuts before `[DONE]`.
  return {
    type: 'text/event-stream; charset=utf-8',
    pieces,
    firstDelta: 1,
    usage: pieces.length - (includeUsage ? 2 : 1),
  }
}

/** Writes `chunk` and waits until it has reached the socket. */
const send = (res: http.ServerResponse, chunk: string | Uint8Array) =>
  new Promise<void>((resolve) => res.write(chunk, () => resolve()))

/**
 * Streams `stream` piece by piece, a binary frame split in two writes as a network would; with a fault,
 * destroys the socket where the fault says, with the pieces before it delivered.
 */
async function play(res: http.ServerResponse, stream: Stream, model: string): Promise<void> {
  const aws = stream.type.includes('eventstream') ? { 'x-amzn-requestid': 'req-provider-01' } : {}
  res.writeHead(200, { 'content-type': stream.type, ...aws })
  const cutAt =
    model === FAULT_MODELS.afterFirstDelta
      ? stream.firstDelta + 1
      : model === FAULT_MODELS.beforeUsage
        ? stream.usage
        : undefined
  for (const [i, piece] of stream.pieces.entries()) {
    if (i === cutAt) {
      await new Promise((r) => setTimeout(r, 20))
      res.socket?.destroy()
      return
    }
    if (res.destroyed) return
    if (typeof piece === 'string') await send(res, piece)
    else {
      const half = Math.ceil(piece.length / 2)
      await send(res, piece.subarray(0, half))
      await new Promise((r) => setImmediate(r))
      await send(res, piece.subarray(half))
    }
    await new Promise((r) => setImmediate(r))
  }
  res.end()
}

function json(res: http.ServerResponse, body: unknown): void {
  const data = JSON.stringify(body)
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) })
  res.end(data)
}

type Body = { model?: string; stream?: boolean; stream_options?: { include_usage?: boolean } }

/**
 * A mock provider speaking the three upstream wires (Bedrock ConverseStream and Converse at
 * /model/{id}/converse-stream and /model/{id}/converse; OpenAI Responses at /v1/responses; OpenAI Chat at
 * /v1/chat/completions, streaming and not), answering every call with the text "Hello from the provider."
 * in 4 deltas and usage equal to `truth` in that wire's own convention. A model of FAULT_MODELS cuts the
 * connection part-way.
 */
export async function startProvider(
  truth: Truth,
): Promise<{ url: string; requests: { path: string; body: unknown }[]; close(): Promise<void> }> {
  const requests: { path: string; body: unknown }[] = []
  const server = http.createServer(async (req, res) => {
    const parts: Buffer[] = []
    for await (const part of req) parts.push(part as Buffer)
    const path = req.url ?? '/'
    let body: Body = {}
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8') || '{}') as Body
    } catch {
      // Not JSON: the route below answers 400 if it needed it.
    }
    requests.push({ path, body })
    const converse = /^\/model\/([^/]+)\/(converse|converse-stream)$/.exec(path.split('?')[0]!)
    if (req.method !== 'POST') return void res.writeHead(405).end()
    if (converse) {
      const model = decodeURIComponent(converse[1]!)
      if (converse[2] === 'converse-stream') return void (await play(res, converseStream(truth), model))
      return json(res, {
        output: { message: { role: 'assistant', content: [{ text: TEXT }] } },
        stopReason: 'end_turn',
        usage: bedrockUsage(truth),
        metrics: { latencyMs: 412 },
      })
    }
    const model = String(body.model ?? '')
    if (path === '/v1/responses') {
      if (body.stream) return void (await play(res, responsesStream(truth), model))
      return json(res, responseObject('completed', TEXT, responsesUsage(truth)))
    }
    if (path === '/v1/chat/completions') {
      if (body.stream) return void (await play(res, chatStream(truth, !!body.stream_options?.include_usage), model))
      return json(res, {
        id: 'chatcmpl-01',
        object: 'chat.completion',
        created: 1764500000,
        model: CHAT_MODEL,
        choices: [{ index: 0, message: { role: 'assistant', content: TEXT }, logprobs: null, finish_reason: 'stop' }],
        usage: chatUsage(truth),
      })
    }
    res.writeHead(404, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { message: `no route ${path}` } }))
  })
  const url = await listen(server)
  return { url, requests, close: () => shut(server) }
}
