/**
 * Shared rig for the upstream tap tests: a provider with a known truth, a broken translating gateway in
 * front of it (test/translator), and the clients that read the translated answer (the official Anthropic
 * SDK, or fetch and an SSE parser for the raw events).
 */
import Anthropic from '@anthropic-ai/sdk'
import { createParser } from 'eventsource-parser'
import { afterAll, beforeAll } from 'vitest'
import type { UsageRecord, UsagewireOptions } from '@usagewire/core'
import {
  GATEWAY_ADAPTERS,
  UPSTREAMS,
  startProvider,
  startTranslator,
  type GatewayAdapter,
  type Truth,
  type UpstreamKind,
} from '../translator/index.js'
import { waitFor } from '../matrix/upstream.js'

export { waitFor, within } from '../matrix/upstream.js'

/** Bedrock reports cache reads and writes; the OpenAI wires here report a cache read only. */
export const TRUTHS: Record<UpstreamKind, Truth> = {
  'bedrock-converse': { input: 1234, cacheRead: 3000, cacheWrite: 200, output: 56 },
  'openai-responses': { input: 210, cacheRead: 1024, cacheWrite: 0, output: 56 },
  'openai-chat': { input: 210, cacheRead: 1024, cacheWrite: 0, output: 56 },
}

/** The model a client names, passed on by the translator (in the Bedrock path, in the OpenAI body). */
export const MODELS: Record<UpstreamKind, string> = {
  'bedrock-converse': 'us.anthropic.claude-sonnet-4-5-20250929-v1:0',
  'openai-responses': 'gpt-5-mini',
  'openai-chat': 'gpt-4.1',
}

/** Every adapter × every upstream, for `describe.each`. */
export const CASES: Array<{ adapter: GatewayAdapter; upstream: UpstreamKind }> = GATEWAY_ADAPTERS.flatMap((adapter) =>
  UPSTREAMS.map((upstream) => ({ adapter, upstream })),
)

export const messagesRequest = (model: string) => ({
  model,
  max_tokens: 64,
  messages: [{ role: 'user' as const, content: 'Say hello.' }],
})

export interface Stack {
  provider: Awaited<ReturnType<typeof startProvider>>
  translator: Awaited<ReturnType<typeof startTranslator>>
  client: Anthropic
  truth: Truth
  model: string
  /** The record of the next request: waits for the one after the records there are now. */
  nextRecord(): () => Promise<UsageRecord>
}

/** A provider and a translator in front of it for the calling `describe`, closed after it. */
export function useStack(adapter: GatewayAdapter, upstream: UpstreamKind, usagewire?: UsagewireOptions): Stack {
  const stack = { truth: TRUTHS[upstream], model: MODELS[upstream] } as Stack
  beforeAll(async () => {
    stack.provider = await startProvider(stack.truth)
    stack.translator = await startTranslator({ adapter, upstream, providerUrl: stack.provider.url, usagewire })
    stack.client = new Anthropic({ apiKey: 'x', baseURL: stack.translator.url, maxRetries: 0 })
  })
  afterAll(async () => {
    await stack.translator?.close()
    await stack.provider?.close()
  })
  stack.nextRecord = () => {
    const n = stack.translator.records.length
    return () => waitFor(() => stack.translator.records[n], `usage record #${n + 1}`)
  }
  return stack
}

export interface RawEvent {
  event: string
  data: Record<string, any>
}

export interface RawAnswer {
  status: number
  contentType: string | null
  events: RawEvent[]
  /** From sending the request to the end of the body. */
  ms: number
}

/** A streaming request sent with fetch, its SSE read with eventsource-parser: every event as it came. */
export async function rawStream(url: string, model: string): Promise<RawAnswer> {
  const started = Date.now()
  const response = await fetch(`${url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'x', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ ...messagesRequest(model), stream: true }),
  })
  const events: RawEvent[] = []
  const parser = createParser({
    // A data line that is not JSON fails the test here: the answer must stay valid SSE.
    onEvent: (event) => events.push({ event: event.event ?? '', data: JSON.parse(event.data) }),
  })
  const decoder = new TextDecoder()
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    parser.feed(decoder.decode(chunk, { stream: true }))
  }
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    events,
    ms: Date.now() - started,
  }
}

/** The text of the `content_block_delta` events, in the order they came. */
export const textOf = (events: RawEvent[]): string =>
  events
    .filter((e) => e.event === 'content_block_delta')
    .map((e) => e.data.delta?.text ?? '')
    .join('')
