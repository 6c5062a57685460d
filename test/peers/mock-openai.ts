/**
 * A mock OpenAI Responses API (`POST /v1/responses`, streaming and not) for gateways that bridge to it
 * (docs/dialects/openai-responses.md). It keeps a prompt cache like the real one: the first call with a
 * prompt is cold (input 1234, nothing cached), every later call with the same prompt reads 1024 of its
 * 1234 input tokens from the cache; output 56. `answer` replaces that rule. Every request is recorded
 * (path, headers, body) so a test can see what the gateway sent.
 */
import http, { type IncomingHttpHeaders } from 'node:http'
import { responsesBody, responsesStream, type ResponsesUsage } from '../../examples/mock-upstream/openai-responses.js'
import type { TrueUsage } from '../../examples/mock-upstream/types.js'
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

export interface ResponsesAnswer {
  text: string
  /** In usagewire's disjoint buckets; sent the Responses way (`input_tokens` includes the cache). */
  usage: TrueUsage
}

/** The provider's truth for a prompt it has not cached yet, and for one it has. */
export const COLD: TrueUsage = { input: 1234, cacheRead: 0, cacheWrite: 0, output: 56, reasoning: 0 }
export const CACHED: TrueUsage = { input: 210, cacheRead: 1024, cacheWrite: 0, output: 56, reasoning: 0 }
export const RESPONSES_TEXT = 'The cache answers quickly.'

/** The Responses usage object of `truth`: `input_tokens` 1234 with `cached_tokens` 1024 for CACHED. */
export function wireUsage(truth: TrueUsage): ResponsesUsage {
  const input = truth.input + truth.cacheRead + truth.cacheWrite
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: truth.cacheRead },
    output_tokens: truth.output,
    output_tokens_details: { reasoning_tokens: truth.reasoning },
    total_tokens: input + truth.output,
  }
}

/** What a prompt cache entry is keyed on (a cache is per model): the model, the instructions and the input. */
export const promptOf = (body: any): string =>
  JSON.stringify([body?.model ?? null, body?.instructions ?? null, body?.input ?? null])

export interface MockOpenAIOptions {
  /** The answer to one request; `seen` is how many earlier requests had the same prompt. */
  answer?: (request: RecordedRequest, seen: number) => ResponsesAnswer
  /** Pause between streamed events, so concurrent streams interleave. Default 0. */
  eventDelayMs?: number
  /** Awaited before each answer (e.g. a barrier that keeps every request in flight until all arrived). */
  before?: (request: RecordedRequest) => Promise<unknown>
}

export interface MockOpenAI {
  url: string
  requests: RecordedRequest[]
  close(): Promise<void>
}

const coldThenCached = (_request: RecordedRequest, seen: number): ResponsesAnswer => ({
  text: RESPONSES_TEXT,
  usage: seen === 0 ? COLD : CACHED,
})

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

export async function startMockOpenAI({
  answer = coldThenCached,
  eventDelayMs = 0,
  before,
}: MockOpenAIOptions = {}): Promise<MockOpenAI> {
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
    if (req.method !== 'POST' || request.path.split('?')[0] !== '/v1/responses') {
      res.writeHead(404, JSON_HEADERS)
      res.end(JSON.stringify({ error: { message: `no route ${req.method} ${request.path}`, type: 'not_found' } }))
      return
    }
    const prompt = promptOf(body)
    const seen = prompts.get(prompt) ?? 0
    prompts.set(prompt, seen + 1)
    const { text, usage } = answer(request, seen)
    request.usage = usage
    await before?.(request)
    const ctx = {
      seq: seq++,
      requestedModel: String(body?.model ?? ''),
      includeUsage: false,
      includeObfuscation: false,
      created: 1_767_225_600,
    }
    const reply = { text, usage: wireUsage(usage) }
    if (!body?.stream) {
      res.writeHead(200, JSON_HEADERS)
      res.end(JSON.stringify(responsesBody(ctx, reply)))
      return
    }
    res.writeHead(200, SSE_HEADERS)
    res.flushHeaders()
    for (const event of responsesStream(ctx, reply)) {
      if (res.destroyed) return
      await new Promise<void>((resolve) => res.write(event, () => resolve()))
      if (eventDelayMs > 0) await sleep(eventDelayMs)
    }
    res.end()
  })
  const mock: MockOpenAI = { url: await listen(server), requests: [], close: () => shut(server) }
  return mock
}
