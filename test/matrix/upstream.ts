/**
 * The mock upstream the conformance matrix runs every driver against (generalised from
 * test/express/helpers.ts): one server per test file, replying with bytes the scenario chooses — a whole
 * body with its Content-Length, or a chunked stream written chunk by chunk (each write waits for Node's
 * callback, so a gateway that stops reading blocks it), optionally gzip/br/deflate-encoded and flushed
 * per chunk, optionally waiting on a gate before a chunk. It reports, per request, how far it got and
 * whether the gateway let go of it. Also the wire builders the scenarios share (Anthropic, Chat,
 * Responses streams and bodies). Everything binds 127.0.0.1; nothing here reaches the internet.
 */
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import zlib from 'node:zlib'

// ---------------------------------------------------------------------------------------------------------
// Small utilities

/** A promise the test opens by hand: the upstream waits on it to hold a stream part-way. */
export interface Gate {
  readonly promise: Promise<void>
  readonly opened: boolean
  open(): void
}

export function createGate(): Gate {
  let resolve!: () => void
  let opened = false
  const promise = new Promise<void>((r) => (resolve = r))
  return {
    promise,
    get opened() {
      return opened
    },
    open() {
      opened = true
      resolve()
    },
  }
}

/** Polls `probe` until it returns something other than undefined/false; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => T | undefined | false,
  what: string,
  { timeoutMs = 5_000, intervalMs = 2 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

/** Rejects with `message` if `promise` has not settled after `ms`: turns a deadlock into a readable failure. */
export function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

export async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return `http://127.0.0.1:${port}`
}

export async function shut(server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

// ---------------------------------------------------------------------------------------------------------
// Mock upstream

export type Encoding = 'gzip' | 'br' | 'deflate'

export interface UpstreamRequest {
  /** The `x-request-id` the client sent ('' without one): how a scenario finds its own request. */
  id: string
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: Buffer
}

export interface Reply {
  status?: number
  headers?: OutgoingHttpHeaders
  /** A whole body, sent in one write with its Content-Length (after encoding). */
  body?: string | Buffer
  /**
   * A streamed body without a Content-Length: each chunk is its own write (and, when encoded, its own
   * flush). An iterable may be lazy and long: a chunk is made only when the one before it was written.
   */
  chunks?: Iterable<string | Buffer>
  /** Content-encoding the upstream applies (and declares). */
  encoding?: Encoding
  /** Before writing chunk `index` (0-based), wait for what this returns (a gate), if anything. */
  before?: (index: number) => Promise<unknown> | undefined
  /** Do not end the response after the last chunk (it stays open until the peer goes away). */
  keepOpen?: boolean
}

/** What the upstream did with one reply, for scenarios that pin streaming and lifecycle behaviour. */
export interface ReplyProgress {
  /** Chunks whose write completed (Node called back: the bytes reached the socket). */
  sent: number
  /** Body bytes (before encoding) whose write completed. */
  bytes: number
  /** The index of the chunk waiting on `before`, if any. */
  waitingBefore: number | undefined
  /** A write was issued and Node has not called back yet: the gateway is not reading (backpressure). */
  writing: boolean
  ended: boolean
  /** The connection closed before the upstream ended the response: the gateway let go of it. */
  closedEarly: boolean
}

export interface Upstream {
  url: string
  requests: UpstreamRequest[]
  /** The reply for each request; a scenario sets it before calling. */
  reply: (req: UpstreamRequest) => Reply
  /** Progress of the reply to the request with this `x-request-id`. */
  progress(id: string): ReplyProgress | undefined
  /** The request that carried this `x-request-id`. */
  request(id: string): UpstreamRequest | undefined
  close(): Promise<void>
}

function encoder(encoding: Encoding): zlib.Gzip | zlib.BrotliCompress | zlib.Deflate {
  if (encoding === 'gzip') return zlib.createGzip()
  if (encoding === 'br') return zlib.createBrotliCompress()
  return zlib.createDeflate()
}

function encodeSync(encoding: Encoding | undefined, raw: Buffer): Buffer {
  if (encoding === 'gzip') return zlib.gzipSync(raw)
  if (encoding === 'br') return zlib.brotliCompressSync(raw)
  if (encoding === 'deflate') return zlib.deflateSync(raw)
  return raw
}

export async function startUpstream(): Promise<Upstream> {
  const progressById = new Map<string, ReplyProgress>()
  const upstream: Upstream = {
    url: '',
    requests: [],
    reply: () => ({ status: 500, body: 'no reply configured' }),
    progress: (id) => progressById.get(id),
    request: (id) => upstream.requests.find((r) => r.id === id),
    close: async () => {},
  }
  const server = http.createServer(async (req, res) => {
    const parts: Buffer[] = []
    for await (const part of req) parts.push(part as Buffer)
    const request: UpstreamRequest = {
      id: String(req.headers['x-request-id'] ?? ''),
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      body: Buffer.concat(parts),
    }
    upstream.requests.push(request)
    const progress: ReplyProgress = {
      sent: 0,
      bytes: 0,
      waitingBefore: undefined,
      writing: false,
      ended: false,
      closedEarly: false,
    }
    progressById.set(request.id, progress)
    res.on('close', () => {
      if (!progress.ended) progress.closedEarly = true
    })
    res.on('finish', () => (progress.ended = true))
    const reply = upstream.reply(request)
    const headers: OutgoingHttpHeaders = { ...reply.headers }
    if (reply.encoding) headers['content-encoding'] = reply.encoding

    if (reply.body !== undefined) {
      const raw = Buffer.from(reply.body)
      const encoded = encodeSync(reply.encoding, raw)
      headers['content-length'] = encoded.length
      res.writeHead(reply.status ?? 200, headers)
      res.end(encoded)
      progress.sent = 1
      progress.bytes = raw.length
      return
    }

    res.writeHead(reply.status ?? 200, headers)
    res.flushHeaders()
    // A write resolves when Node calls back, or when the response is gone (then the loop stops).
    const settled = (start: (done: () => void) => void) =>
      new Promise<void>((resolve) => {
        const done = () => {
          res.off('close', done)
          resolve()
        }
        res.once('close', done)
        start(done)
      })
    let write: (chunk: Buffer) => Promise<void>
    let end: () => void
    if (reply.encoding) {
      const z = encoder(reply.encoding)
      z.pipe(res)
      res.once('close', () => z.destroy())
      write = (chunk) =>
        settled((done) => {
          z.write(chunk)
          z.flush(done)
        })
      end = () => z.end()
    } else {
      write = (chunk) => settled((done) => res.write(chunk, () => done()))
      end = () => res.end()
    }
    let index = 0
    for (const item of reply.chunks ?? []) {
      if (res.destroyed) return
      const wait = reply.before?.(index)
      if (wait) {
        progress.waitingBefore = index
        await wait
        progress.waitingBefore = undefined
        if (res.destroyed) return
      }
      const chunk = Buffer.from(item)
      progress.writing = true
      await write(chunk)
      progress.writing = false
      if (res.destroyed) return
      progress.sent = ++index
      progress.bytes += chunk.length
    }
    if (!reply.keepOpen) end()
  })
  upstream.url = await listen(server)
  upstream.close = () => shut(server)
  return upstream
}

// ---------------------------------------------------------------------------------------------------------
// Wire builders

export const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' } as const
export const JSON_HEADERS = { 'content-type': 'application/json' } as const

/** One named SSE event (Anthropic, OpenAI Responses). */
export const sseEvent = (name: string, data: unknown): string => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`

/** One data-only SSE event (OpenAI Chat Completions). */
export const sseData = (data: unknown): string => `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`

export const ANTHROPIC_MODEL = 'claude-sonnet-4-6'
export const CHAT_MODEL = 'gpt-4o-2024-08-06'
export const RESPONSES_MODEL = 'gpt-5-2025-08-07'

export interface AnthropicStreamSpec {
  model?: string
  /** `message_start.message.usage` */
  start: Record<string, unknown>
  /** `message_delta.usage` */
  delta: Record<string, unknown>
  /** Text deltas of the single text block. */
  texts?: string[]
}

/** The events of one Anthropic Messages stream, each as its own string (so each can be its own write). */
export function anthropicStream({
  model = ANTHROPIC_MODEL,
  start,
  delta,
  texts = ['Hello', ', wörld ✓'],
}: AnthropicStreamSpec): string[] {
  return [
    sseEvent('message_start', {
      type: 'message_start',
      message: {
        id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: start,
      },
    }),
    sseEvent('content_block_start', {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'text', text: '' },
    }),
    sseEvent('ping', { type: 'ping' }),
    ...texts.map((text) =>
      sseEvent('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }),
    ),
    sseEvent('content_block_stop', { type: 'content_block_stop', index: 0 }),
    sseEvent('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: delta,
    }),
    sseEvent('message_stop', { type: 'message_stop' }),
  ]
}

/** A non-streaming Anthropic Messages body. */
export function anthropicMessage(usage: Record<string, unknown>, text = 'Héllo ✓'): Record<string, unknown> {
  return {
    id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
    type: 'message',
    role: 'assistant',
    model: ANTHROPIC_MODEL,
    content: [{ type: 'text', text }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage,
  }
}

/** An OpenAI chat stream ending with a usage-only chunk (`choices: []`) and `[DONE]`. */
export function chatStream(usage: Record<string, unknown>, texts = ['Hel', 'lo ✓']): string[] {
  const base = {
    id: 'chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG',
    object: 'chat.completion.chunk',
    created: 1741570283,
    model: CHAT_MODEL,
  }
  return [
    sseData({
      ...base,
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
      usage: null,
    }),
    ...texts.map((content) =>
      sseData({ ...base, choices: [{ index: 0, delta: { content }, finish_reason: null }], usage: null }),
    ),
    sseData({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: null }),
    sseData({ ...base, choices: [], usage }),
    sseData('[DONE]'),
  ]
}

/** A non-streaming chat completion body. */
export function chatCompletion(usage: Record<string, unknown>, content = 'Héllo ✓'): Record<string, unknown> {
  return {
    id: 'chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG',
    object: 'chat.completion',
    created: 1741570283,
    model: CHAT_MODEL,
    choices: [
      { index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' },
    ],
    usage,
  }
}

const RESPONSE_ID = 'resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b'
const RESPONSE_ITEM = {
  id: 'msg_67ccd2bf17f0819081ff3bb2cf6508e6',
  type: 'message',
  status: 'in_progress',
  role: 'assistant',
  content: [] as unknown[],
}

function responseObject(status: string, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    id: RESPONSE_ID,
    object: 'response',
    created_at: 1741476542,
    status,
    model: RESPONSES_MODEL,
    output: [],
    usage: null,
    ...extra,
  }
}

/** An OpenAI Responses stream ending in `response.completed` with `usage`. */
export function responsesStream(usage: Record<string, unknown>, text = 'Hello ✓'): string[] {
  const item = RESPONSE_ITEM
  const part = { type: 'output_text', text: '', annotations: [] }
  let seq = 0
  const ev = (type: string, data: Record<string, unknown>) => sseEvent(type, { type, sequence_number: seq++, ...data })
  const done = { ...item, status: 'completed', content: [{ ...part, text }] }
  return [
    ev('response.created', { response: responseObject('in_progress', {}) }),
    ev('response.in_progress', { response: responseObject('in_progress', {}) }),
    ev('response.output_item.added', { output_index: 0, item }),
    ev('response.content_part.added', { item_id: item.id, output_index: 0, content_index: 0, part }),
    ev('response.output_text.delta', { item_id: item.id, output_index: 0, content_index: 0, delta: text }),
    ev('response.output_text.done', { item_id: item.id, output_index: 0, content_index: 0, text }),
    ev('response.content_part.done', { item_id: item.id, output_index: 0, content_index: 0, part: { ...part, text } }),
    ev('response.output_item.done', { output_index: 0, item: done }),
    ev('response.completed', { response: responseObject('completed', { output: [done], usage }) }),
  ]
}

/** A non-streaming Responses body. */
export function responsesBody(usage: Record<string, unknown>, text = 'Héllo ✓'): Record<string, unknown> {
  const output = [{ ...RESPONSE_ITEM, status: 'completed', content: [{ type: 'output_text', text, annotations: [] }] }]
  return responseObject('completed', { output, usage })
}
