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
// Wire builders: shared with the Express integration tests

export * from '../wire-fixtures.js'
