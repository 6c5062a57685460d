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
import { ANTHROPIC_MODEL, CHAT_MODEL } from '../wire-fixtures.js'

// ---------------------------------------------------------------------------------------------------------
// Wire fixtures: shared with the conformance matrix

export * from '../wire-fixtures.js'

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
