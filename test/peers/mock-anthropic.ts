/**
 * A mock Anthropic Messages API (`POST /v1/messages`, streaming and not) answering as the first-party API
 * does (docs/dialects/anthropic-messages.md): the full usage on `message_start` (output 1 there), the
 * cumulative totals on `message_delta`. It keeps a prompt cache: the first call with a prompt writes it
 * (input 7, cache write 1802), later calls with the same prompt read it (input 7, cache read 1802); output
 * 16. `answer` replaces that rule. Every request is recorded (path, headers, body).
 */
import http from 'node:http'
import {
  anthropicMessage,
  anthropicStream,
  deltaUsage,
  fullUsage,
  startUsage,
} from '../../examples/mock-upstream/anthropic.js'
import type { TrueUsage } from '../../examples/mock-upstream/types.js'
import { listen, shut } from '../matrix/upstream.js'
import { JSON_HEADERS, SSE_HEADERS } from '../wire-fixtures.js'
import type { RecordedRequest } from './mock-openai.js'

export type { RecordedRequest } from './mock-openai.js'

export interface MessagesAnswer {
  text: string
  usage: TrueUsage
}

/** The first call with a long cached system prompt, and the calls after it. */
export const CACHE_WRITE: TrueUsage = { input: 7, cacheRead: 0, cacheWrite: 1802, output: 16, reasoning: 0 }
export const CACHE_HIT: TrueUsage = { input: 7, cacheRead: 1802, cacheWrite: 0, output: 16, reasoning: 0 }
export const MESSAGES_TEXT = 'Static legal text, analyzed.'

/** What a prompt cache entry is keyed on (a cache is per model): the model, the system and the messages. */
export const promptOf = (body: any): string =>
  JSON.stringify([body?.model ?? null, body?.system ?? null, body?.messages ?? null])

export interface MockAnthropicOptions {
  /** The answer to one request; `seen` is how many earlier requests had the same prompt. */
  answer?: (request: RecordedRequest, seen: number) => MessagesAnswer
  /** Pause between streamed events, so concurrent streams interleave. Default 0. */
  eventDelayMs?: number
  /** Awaited before each answer (e.g. a barrier that keeps every request in flight until all arrived). */
  before?: (request: RecordedRequest) => Promise<unknown>
}

export interface MockAnthropic {
  url: string
  requests: RecordedRequest[]
  close(): Promise<void>
}

const writeThenHit = (_request: RecordedRequest, seen: number): MessagesAnswer => ({
  text: MESSAGES_TEXT,
  usage: seen === 0 ? CACHE_WRITE : CACHE_HIT,
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export async function startMockAnthropic({
  answer = writeThenHit,
  eventDelayMs = 0,
  before,
}: MockAnthropicOptions = {}): Promise<MockAnthropic> {
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
    if (req.method !== 'POST' || request.path.split('?')[0] !== '/v1/messages') {
      res.writeHead(404, JSON_HEADERS)
      res.end(
        JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: `no route ${request.path}` } }),
      )
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
    if (!body?.stream) {
      res.writeHead(200, { ...JSON_HEADERS, 'request-id': `req_mock_${ctx.seq}` })
      res.end(JSON.stringify(anthropicMessage(ctx, { text, usage: fullUsage(usage) })))
      return
    }
    res.writeHead(200, { ...SSE_HEADERS, 'request-id': `req_mock_${ctx.seq}` })
    res.flushHeaders()
    for (const event of anthropicStream(ctx, { text, usage: startUsage(usage), deltaUsages: [deltaUsage(usage)] })) {
      if (res.destroyed) return
      await new Promise<void>((resolve) => res.write(event, () => resolve()))
      if (eventDelayMs > 0) await sleep(eventDelayMs)
    }
    res.end()
  })
  const mock: MockAnthropic = { url: await listen(server), requests: [], close: () => shut(server) }
  return mock
}
