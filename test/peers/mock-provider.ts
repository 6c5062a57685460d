/**
 * What the mock providers of the peer tests share (test/peers/mock-anthropic.ts, test/peers/mock-openai.ts):
 * one `POST` route answered as JSON or as SSE, a prompt cache (each answer is chosen knowing how many earlier
 * requests had the same prompt), and every request recorded (path, headers, body) so a test can see what the
 * gateway sent. Binds 127.0.0.1 on a free port.
 */
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http'
import type { RequestContext, TrueUsage } from '../../examples/mock-upstream/types.js'
import { listen, shut } from '../matrix/upstream.js'
import { JSON_HEADERS, SSE_HEADERS } from '../wire-fixtures.js'

export interface RecordedRequest {
  method: string
  path: string
  headers: IncomingHttpHeaders
  body: any
  /** The provider's truth the mock answered with (absent for requests it refused). */
  usage?: TrueUsage
}

export interface MockAnswer {
  text: string
  /** In usagewire's disjoint buckets; each dialect sends it its own way. */
  usage: TrueUsage
}

export interface MockOptions {
  /** The answer to one request; `seen` is how many earlier requests had the same prompt. */
  answer?: (request: RecordedRequest, seen: number) => MockAnswer
  /** Pause between streamed events, so concurrent streams interleave. Default 0. */
  eventDelayMs?: number
  /** Awaited before each answer (e.g. a barrier that keeps every request in flight until all arrived). */
  before?: (request: RecordedRequest) => Promise<unknown>
}

export interface MockProvider {
  url: string
  requests: RecordedRequest[]
  close(): Promise<void>
}

/** How one dialect's provider answers. */
export interface MockDialect {
  /** The route it serves; anything else gets `notFound`. */
  path: string
  notFound(method: string, path: string): unknown
  /** What a prompt cache entry is keyed on. */
  promptOf(body: any): string
  /** The answer when the test gives none. */
  answer(request: RecordedRequest, seen: number): MockAnswer
  /** The headers of every answer, besides the content type. */
  headers?(ctx: RequestContext): OutgoingHttpHeaders
  json(ctx: RequestContext, answer: MockAnswer): unknown
  events(ctx: RequestContext, answer: MockAnswer): Iterable<string>
}

/**
 * A barrier for `n` concurrent requests: `arrive()` resolves once `n` have arrived, so all of them are in
 * flight at the same time (or after `timeoutMs`, so that a missing request fails an assertion, not the run).
 */
export function barrier(n: number, timeoutMs = 10_000): { arrive(): Promise<void> } {
  let arrived = 0
  let open!: () => void
  const all = new Promise<void>((resolve) => (open = resolve))
  const timer = setTimeout(() => open(), timeoutMs)
  timer.unref()
  return {
    arrive() {
      if (++arrived >= n) {
        clearTimeout(timer)
        open()
      }
      return all
    },
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export async function startMockProvider(
  dialect: MockDialect,
  { answer = dialect.answer, eventDelayMs = 0, before }: MockOptions = {},
): Promise<MockProvider> {
  const prompts = new Map<string, number>()
  let seq = 0
  const server = http.createServer(async (req, res) => {
    let raw = ''
    for await (const part of req) raw += part
    let body: any
    try {
      body = raw ? JSON.parse(raw) : undefined
    } catch {
      body = raw
    }
    const request: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body }
    mock.requests.push(request)
    if (req.method !== 'POST' || request.path.split('?')[0] !== dialect.path) {
      res.writeHead(404, JSON_HEADERS)
      res.end(JSON.stringify(dialect.notFound(request.method, request.path)))
      return
    }
    const prompt = dialect.promptOf(body)
    const seen = prompts.get(prompt) ?? 0
    prompts.set(prompt, seen + 1)
    const reply = answer(request, seen)
    request.usage = reply.usage
    await before?.(request)
    const ctx: RequestContext = {
      seq: seq++,
      requestedModel: String(body?.model ?? ''),
      includeUsage: false,
      includeObfuscation: false,
      created: 1_767_225_600,
    }
    const headers = dialect.headers?.(ctx)
    if (!body?.stream) {
      res.writeHead(200, { ...JSON_HEADERS, ...headers })
      res.end(JSON.stringify(dialect.json(ctx, reply)))
      return
    }
    res.writeHead(200, { ...SSE_HEADERS, ...headers })
    res.flushHeaders()
    for (const event of dialect.events(ctx, reply)) {
      if (res.destroyed) return
      await new Promise<void>((resolve) => res.write(event, () => resolve()))
      if (eventDelayMs > 0) await sleep(eventDelayMs)
    }
    res.end()
  })
  const mock: MockProvider = { url: await listen(server), requests: [], close: () => shut(server) }
  return mock
}
