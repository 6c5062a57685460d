/**
 * A mock Anthropic Messages API (`POST /v1/messages`, streaming and not) answering as the first-party API
 * does (docs/dialects/anthropic-messages.md): the full usage on `message_start` (output 1 there), the
 * cumulative totals on `message_delta`. It keeps a prompt cache: the first call with a prompt writes it
 * (input 7, cache write 1802), later calls with the same prompt read it (input 7, cache read 1802); output
 * 16. `answer` replaces that rule. Every request is recorded (path, headers, body).
 */
import {
  anthropicMessage,
  anthropicStream,
  deltaUsage,
  fullUsage,
  startUsage,
} from '../../examples/mock-upstream/anthropic.js'
import type { TrueUsage } from '../../examples/mock-upstream/types.js'
import { startMockProvider, type MockDialect, type MockOptions, type MockProvider } from './mock-provider.js'

export type { RecordedRequest } from './mock-provider.js'
export type MockAnthropic = MockProvider

/** The first call with a long cached system prompt, and the calls after it. */
export const CACHE_WRITE: TrueUsage = { input: 7, cacheRead: 0, cacheWrite: 1802, output: 16, reasoning: 0 }
export const CACHE_HIT: TrueUsage = { input: 7, cacheRead: 1802, cacheWrite: 0, output: 16, reasoning: 0 }
export const MESSAGES_TEXT = 'Static legal text, analyzed.'

/** What a prompt cache entry is keyed on (a cache is per model): the model, the system and the messages. */
export const promptOf = (body: any): string =>
  JSON.stringify([body?.model ?? null, body?.system ?? null, body?.messages ?? null])

const MESSAGES: MockDialect = {
  path: '/v1/messages',
  notFound: (_method, path) => ({ type: 'error', error: { type: 'not_found_error', message: `no route ${path}` } }),
  promptOf,
  answer: (_request, seen) => ({ text: MESSAGES_TEXT, usage: seen === 0 ? CACHE_WRITE : CACHE_HIT }),
  headers: (ctx) => ({ 'request-id': `req_mock_${ctx.seq}` }),
  json: (ctx, { text, usage }) => anthropicMessage(ctx, { text, usage: fullUsage(usage) }),
  events: (ctx, { text, usage }) =>
    anthropicStream(ctx, { text, usage: startUsage(usage), deltaUsages: [deltaUsage(usage)] }),
}

export const startMockAnthropic = (options?: MockOptions): Promise<MockAnthropic> =>
  startMockProvider(MESSAGES, options)
