/**
 * A mock OpenAI Responses API (`POST /v1/responses`, streaming and not) for gateways that bridge to it
 * (docs/dialects/openai-responses.md). It keeps a prompt cache like the real one: the first call with a
 * prompt is cold (input 1234, nothing cached), every later call with the same prompt reads 1024 of its
 * 1234 input tokens from the cache; output 56 (sent the Responses way: `input_tokens` includes the cache).
 * `answer` replaces that rule. Every request is recorded (path, headers, body) so a test can see what the
 * gateway sent.
 */
import { responsesBody, responsesStream, responsesUsage } from '../../examples/mock-upstream/openai-responses.js'
import type { TrueUsage } from '../../examples/mock-upstream/types.js'
import { startMockProvider, type MockDialect, type MockOptions, type MockProvider } from './mock-provider.js'

export { barrier, type RecordedRequest } from './mock-provider.js'
export type MockOpenAI = MockProvider

/** The provider's truth for a prompt it has not cached yet, and for one it has. */
export const COLD: TrueUsage = { input: 1234, cacheRead: 0, cacheWrite: 0, output: 56, reasoning: 0 }
export const CACHED: TrueUsage = { input: 210, cacheRead: 1024, cacheWrite: 0, output: 56, reasoning: 0 }
export const RESPONSES_TEXT = 'The cache answers quickly.'

/** What a prompt cache entry is keyed on (a cache is per model): the model, the instructions and the input. */
export const promptOf = (body: any): string =>
  JSON.stringify([body?.model ?? null, body?.instructions ?? null, body?.input ?? null])

const RESPONSES: MockDialect = {
  path: '/v1/responses',
  notFound: (method, path) => ({ error: { message: `no route ${method} ${path}`, type: 'not_found' } }),
  promptOf,
  answer: (_request, seen) => ({ text: RESPONSES_TEXT, usage: seen === 0 ? COLD : CACHED }),
  json: (ctx, { text, usage }) => responsesBody(ctx, { text, usage: responsesUsage(usage) }),
  events: (ctx, { text, usage }) => responsesStream(ctx, { text, usage: responsesUsage(usage) }),
}

export const startMockOpenAI = (options?: MockOptions): Promise<MockOpenAI> => startMockProvider(RESPONSES, options)
