import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
/**
 * Shared rig for the Express integration tests: a local mock upstream that replies with bytes a test
 * chooses (SSE or JSON, optionally gzip/br, optionally held part-way), and a gateway that is exactly what
 * a user writes: `app.use(usagewire(...))` in front of `createProxyMiddleware({ target })`.
 * Everything binds 127.0.0.1 on an ephemeral port; nothing here reaches the internet.
 */
import { createHash } from 'node:crypto'
import http, { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import zlib from 'node:zlib'
import { afterEach, beforeEach } from 'vitest'
import express from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { usagewire, type UsageRecord, type UsagewireOptions } from '@usagewire/express'

// ---------------------------------------------------------------------------------------------------------
// Small utilities

export const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex')

// Gates, polling and servers on 127.0.0.1: the same as the conformance matrix's.
export { createGate, listen, shut, waitFor, within, type Gate } from '../matrix/upstream.js'
import { listen, shut, waitFor } from '../matrix/upstream.js'

// ---------------------------------------------------------------------------------------------------------
// Wire fixtures

/** One named SSE event (Anthropic, OpenAI Responses). */
export const sseEvent = (name: string, data: unknown): string => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`

/** One data-only SSE event (OpenAI Chat Completions). */
export const sseData = (data: unknown): string => `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`

export interface AnthropicStreamSpec {
  model?: string
  /** `message_start.message.usage` */
  start: Record<string, unknown>
  /** `message_delta.usage` */
  delta: Record<string, unknown>
  /** Text deltas of the single text block. */
  texts?: string[]
}

export const ANTHROPIC_MODEL = 'claude-sonnet-4-6'

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
export function anthropicMessage(
  usage: Record<string, unknown>,
  text = 'Héllo ✓',
  model = ANTHROPIC_MODEL,
): Record<string, unknown> {
  return {
    id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
    type: 'message',
    role: 'assistant',
    model,
    content: [{ type: 'text', text }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage,
  }
}

export const CHAT_MODEL = 'gpt-4o-2024-08-06'

/** An OpenAI chat stream ending with a usage-only chunk (`choices: []`) and `[DONE]`. */
export function chatStream(usage: Record<string, unknown>, texts = ['Hel', 'lo ✓'], model = CHAT_MODEL): string[] {
  const base = {
    id: 'chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG',
    object: 'chat.completion.chunk',
    created: 1741570283,
    model,
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
export function chatCompletion(
  usage: Record<string, unknown>,
  content = 'Héllo ✓',
  model = CHAT_MODEL,
): Record<string, unknown> {
  return {
    id: 'chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG',
    object: 'chat.completion',
    created: 1741570283,
    model,
    choices: [
      { index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' },
    ],
    usage,
  }
}

export const RESPONSES_MODEL = 'gpt-5-2025-08-07'

/** An OpenAI Responses stream ending in `response.completed` with `usage`. */
export function responsesStream(usage: Record<string, unknown>, text = 'Hello ✓', model = RESPONSES_MODEL): string[] {
  const response = (status: string, extra: Record<string, unknown>) => ({
    id: 'resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b',
    object: 'response',
    created_at: 1741476542,
    status,
    model,
    output: [],
    usage: null,
    ...extra,
  })
  const item = {
    id: 'msg_67ccd2bf17f0819081ff3bb2cf6508e6',
    type: 'message',
    status: 'in_progress',
    role: 'assistant',
    content: [],
  }
  const part = { type: 'output_text', text: '', annotations: [] }
  let seq = 0
  const ev = (type: string, data: Record<string, unknown>) => sseEvent(type, { type, sequence_number: seq++, ...data })
  const done = { ...item, status: 'completed', content: [{ ...part, text }] }
  return [
    ev('response.created', { response: response('in_progress', {}) }),
    ev('response.in_progress', { response: response('in_progress', {}) }),
    ev('response.output_item.added', { output_index: 0, item }),
    ev('response.content_part.added', { item_id: item.id, output_index: 0, content_index: 0, part }),
    ev('response.output_text.delta', { item_id: item.id, output_index: 0, content_index: 0, delta: text }),
    ev('response.output_text.done', { item_id: item.id, output_index: 0, content_index: 0, text }),
    ev('response.content_part.done', { item_id: item.id, output_index: 0, content_index: 0, part: { ...part, text } }),
    ev('response.output_item.done', { output_index: 0, item: done }),
    ev('response.completed', { response: response('completed', { output: [done], usage }) }),
  ]
}

/** Cuts an SSE body into `{ name, data }` events (enough for the bodies these tests produce). */
export function parseSse(text: string): Array<{ name: string | undefined; data: string }> {
  return text
    .split(/\r?\n\r?\n/)
    .filter((block) => block.trim() !== '')
    .map((block) => {
      let name: string | undefined
      const data: string[] = []
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith('event:')) name = line.slice(6).trim()
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
      }
      return { name, data: data.join('\n') }
    })
}

// ---------------------------------------------------------------------------------------------------------
// Mock upstream

export interface UpstreamRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: Buffer
}

export interface Reply {
  status?: number
  headers?: OutgoingHttpHeaders
  /** A whole body, sent with its Content-Length (after encoding). */
  body?: string | Buffer
  /** A streamed body: each chunk is its own write (and, when encoded, its own flush). */
  chunks?: Array<string | Buffer>
  /** Content-encoding the upstream applies (and declares). */
  encoding?: 'gzip' | 'br'
  /** Pause before each chunk. */
  delayMs?: number
  /** Before writing chunk number `holdBefore` (0-based), wait for `hold`. */
  holdBefore?: number
  hold?: Promise<unknown>
  /** Do not end the response after the last chunk (the stream stays open until the peer goes away). */
  keepOpen?: boolean
  /** Reset the connection after the last chunk instead of ending the response (a provider's reset). */
  reset?: boolean
}

/** What the upstream did with the current reply, for tests that pin streaming behaviour. */
export interface ReplyProgress {
  /** Chunks written (and flushed) so far. */
  sent: number
  /** True while the upstream waits on `hold`. */
  holding: boolean
  ended: boolean
  /** The connection closed before the upstream ended the response. */
  closedEarly: boolean
}

export interface Upstream {
  url: string
  requests: UpstreamRequest[]
  /** Progress of the most recent reply. */
  progress: ReplyProgress
  /** The reply for each request; tests set it before calling. */
  reply: (req: UpstreamRequest) => Reply
  close(): Promise<void>
}

export async function startUpstream(): Promise<Upstream> {
  const upstream: Upstream = {
    url: '',
    requests: [],
    progress: { sent: 0, holding: false, ended: false, closedEarly: false },
    reply: () => ({ status: 500, body: 'no reply configured' }),
    close: async () => {},
  }
  const server = http.createServer(async (req, res) => {
    const parts: Buffer[] = []
    for await (const part of req) parts.push(part as Buffer)
    const request: UpstreamRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      body: Buffer.concat(parts),
    }
    upstream.requests.push(request)
    const progress: ReplyProgress = { sent: 0, holding: false, ended: false, closedEarly: false }
    upstream.progress = progress
    res.on('close', () => {
      if (!progress.ended) progress.closedEarly = true
    })
    const reply = upstream.reply(request)
    const headers: OutgoingHttpHeaders = { ...reply.headers }
    if (reply.encoding) headers['content-encoding'] = reply.encoding

    if (reply.body !== undefined) {
      const raw = Buffer.from(reply.body)
      const encoded =
        reply.encoding === 'gzip' ? zlib.gzipSync(raw) : reply.encoding === 'br' ? zlib.brotliCompressSync(raw) : raw
      headers['content-length'] = encoded.length
      res.writeHead(reply.status ?? 200, headers)
      res.end(encoded, () => (progress.ended = true))
      progress.sent = 1
      return
    }

    res.writeHead(reply.status ?? 200, headers)
    res.flushHeaders()
    let write: (chunk: Buffer) => Promise<void>
    let end: () => void
    if (reply.encoding) {
      const z = reply.encoding === 'gzip' ? zlib.createGzip() : zlib.createBrotliCompress()
      z.pipe(res)
      write = (chunk) =>
        new Promise<void>((resolve) => {
          z.write(chunk)
          z.flush(() => resolve())
        })
      end = () => z.end()
    } else {
      write = (chunk) => new Promise<void>((resolve) => res.write(chunk, () => resolve()))
      end = () => res.end()
    }
    res.on('finish', () => (progress.ended = true))
    const chunks = reply.chunks ?? []
    for (let i = 0; i < chunks.length; i++) {
      if (res.destroyed) return
      if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs))
      if (reply.hold && i === reply.holdBefore) {
        progress.holding = true
        await reply.hold
        progress.holding = false
        if (res.destroyed) return
      }
      await write(Buffer.from(chunks[i]!))
      progress.sent = i + 1
    }
    if (reply.reset) res.socket?.resetAndDestroy()
    else if (!reply.keepOpen) end()
  })
  upstream.url = await listen(server)
  upstream.close = () => shut(server)
  return upstream
}

// ---------------------------------------------------------------------------------------------------------
// Gateway: Express + usagewire + http-proxy-middleware

export interface Gateway {
  url: string
  records: UsageRecord[]
  /** Resolves with the `n`-th record (1-based), polling. */
  record(n?: number): Promise<UsageRecord>
  close(): Promise<void>
}

export async function startGateway(target: string, options: UsagewireOptions = {}): Promise<Gateway> {
  const records: UsageRecord[] = []
  const app = express()
  app.use(
    usagewire({
      ...options,
      onUsage: (record) => {
        records.push(record)
        options.onUsage?.(record)
      },
    }),
  )
  app.use(createProxyMiddleware({ target }))
  const server = http.createServer(app)
  const url = await listen(server)
  return {
    url,
    records,
    record: (n = 1) => waitFor(() => records[n - 1], `usage record #${n}`),
    close: () => shut(server),
  }
}

// ---------------------------------------------------------------------------------------------------------
// Raw client: the bytes exactly as the gateway sent them (no automatic decoding)

export interface RawResponse {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

export function rawRequest(
  url: string,
  {
    method = 'GET',
    headers = {},
    body,
  }: { method?: string; headers?: OutgoingHttpHeaders; body?: string | Buffer } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res: IncomingMessage) => {
      const parts: Buffer[] = []
      res.on('data', (part: Buffer) => parts.push(part))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** The body decoded per the Content-Encoding the response declares (what any correct client does). */
export function decodeBody(res: RawResponse): Buffer {
  const encoding = String(res.headers['content-encoding'] ?? 'identity').toLowerCase()
  if (encoding === 'gzip' || encoding === 'x-gzip') return zlib.gunzipSync(res.body)
  if (encoding === 'br') return zlib.brotliDecompressSync(res.body)
  if (encoding === 'deflate') return zlib.inflateSync(res.body)
  if (encoding === 'identity') return res.body
  throw new Error(`unexpected content-encoding ${encoding}`)
}

// ---------------------------------------------------------------------------------------------------------
// Per-test rig

/** The official SDK clients as the tests use them: a dummy key, no retries. */
export const anthropicClient = (baseURL: string) => new Anthropic({ apiKey: 'x', baseURL, maxRetries: 0 })
export const openaiClient = (gatewayUrl: string) =>
  new OpenAI({ apiKey: 'x', baseURL: `${gatewayUrl}/v1`, maxRetries: 0 })

/** The requests the tests send: the mock upstreams answer whatever is asked. */
export const anthropicRequest = {
  model: ANTHROPIC_MODEL,
  max_tokens: 64,
  messages: [{ role: 'user' as const, content: 'hi' }],
}
export const chatRequest = { model: CHAT_MODEL, messages: [{ role: 'user' as const, content: 'hi' }] }

export const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' } as const
export const JSON_HEADERS = { 'content-type': 'application/json' } as const

export interface Rig {
  upstream: Upstream
  gateway: Gateway
}

/** A fresh upstream and gateway for every test of the calling file (records never leak between tests). */
export function useRig(options: UsagewireOptions = {}): Rig {
  const rig = {} as Rig
  beforeEach(async () => {
    rig.upstream = await startUpstream()
    rig.gateway = await startGateway(rig.upstream.url, options)
  })
  afterEach(async () => {
    await rig.gateway.close()
    await rig.upstream.close()
  })
  return rig
}
