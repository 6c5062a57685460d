/**
 * Seed 002, on a real LiteLLM 1.83.10: its `/v1/messages` bridge to an OpenAI Responses upstream reads the
 * cache count from `usage.cache_read_input_tokens`, a name only Anthropic uses; the Responses API reports it
 * at `usage.input_tokens_details.cached_tokens` (docs/dialects/openai-responses.md#fields-and-inclusion), so
 * every cache read becomes 0 and stays inside `input_tokens` (docs/peer-bugs.md row 6).
 *
 *   Anthropic SDK → LiteLLM (`openai/` model) → mock Responses                         (without usagewire)
 *   Anthropic SDK → sidecar → LiteLLM → sidecar's provider-facing listener → mock       (with usagewire)
 *
 * The mock answers a prompt it has not seen cold (input 1234, nothing cached) and every repeat with input
 * 1234 of which 1024 cached, output 56: in usagewire's buckets input 210, cache read 1024.
 *
 * What LiteLLM 1.83.10 sends its client: a streamed answer with two `message_start` events, both all zeros,
 * and `message_delta` with `input_tokens` 1234 (cache included) and no cache fields; a JSON answer with
 * `input_tokens` 1234 and no cache fields. The SDK's `finalMessage()` throws on the second `message_start`.
 * The sidecar puts the provider's numbers into the `message_delta` and the JSON body (and, with
 * `messageStart: 'hold'`, into `message_start`); it never adds or removes an event, so the duplicated
 * `message_start` stays, and `finalMessage()` still throws: clients that iterate the events read the
 * right numbers, the SDK's accumulating helper cannot be repaired from the wire.
 *
 * LiteLLM's Responses path sends the provider only a deployment's `extra_headers`, never forwarded client
 * headers (even with `forward_client_headers_to_llm_api`), so the sidecar joins these calls without its
 * header.
 */
import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy, type Sidecar, type UsageRecord } from '@usagewire/proxy'
import { waitFor } from '../matrix/upstream.js'
import {
  anthropicHeaders,
  postSse,
  startLiteLLM,
  startRelay,
  textOf,
  type LiteLLM,
  type Relay,
  type SseEvent,
} from './litellm.js'
import { CACHED, COLD, RESPONSES_TEXT, startMockOpenAI, type MockOpenAI } from './mock-openai.js'
import { peerOrSkip, PEERS } from './python.js'

/** What LiteLLM's bridge puts on both of its `message_start` events. */
const ZERO_START = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }
/** The event names of one bridged stream: `message_start` twice, the text in four deltas. */
const BRIDGED_EVENTS = [
  'message_start',
  'message_start',
  'content_block_start',
  'content_block_delta',
  'content_block_delta',
  'content_block_delta',
  'content_block_delta',
  'content_block_stop',
  'message_delta',
  'message_stop',
]
/** The record of a cached call: the provider's numbers, in usagewire's disjoint buckets. */
const CACHED_RECORD = { input: 210, cacheRead: 1024, cacheWrite: 0, output: 56 }
const COLD_RECORD = { input: 1234, cacheRead: 0, cacheWrite: 0, output: 56 }

let unavailable = 'not started'
let mock: MockOpenAI
let litellm: LiteLLM | undefined
let sidecar: Sidecar
let held: Sidecar
let relay: Relay

beforeAll(async () => {
  const peer = await peerOrSkip(PEERS.litellm)
  if ('skip' in peer) {
    unavailable = peer.skip
    return
  }
  // The provider takes a while, as a real one does: its usage arrives after LiteLLM's message_start left.
  mock = await startMockOpenAI({ eventDelayMs: 30 })
  // The sidecars' provider-facing URLs go into LiteLLM's config, and LiteLLM is their target (via the relay).
  relay = await startRelay()
  const sides = { listen: '127.0.0.1:0', target: relay.url, providerListen: '127.0.0.1:0', provider: mock.url }
  sidecar = await startProxy(sides)
  held = await startProxy({ ...sides, messageStart: 'hold' })
  const deployment = (apiBase: string) => ({
    model: 'openai/gpt-5-mini',
    api_base: `${apiBase}/v1`,
    api_key: 'sk-mock',
  })
  litellm = await startLiteLLM(peer, {
    model_list: [
      { model_name: 'gpt-direct', litellm_params: deployment(mock.url) },
      { model_name: 'gpt-tapped', litellm_params: deployment(sidecar.providerUrl!) },
      { model_name: 'gpt-held', litellm_params: deployment(held.providerUrl!) },
    ],
    general_settings: { forward_client_headers_to_llm_api: true },
  })
  relay.pointAt(litellm.url)
  console.log(`LiteLLM ${PEERS.litellm.version} ready in ${litellm.startMs} ms`)
}, 15 * 60_000)

afterAll(async () => {
  await litellm?.stop()
  await sidecar?.close()
  await held?.close()
  await relay?.close()
  await mock?.close()
})

/** A request with a system prompt of its own, so that the mock's prompt cache is cold for its first call. */
const request = (model: string, name: string) => ({
  model,
  max_tokens: 64,
  system: `Case "${name}". You are a careful, methodical engineer. Respond with short factual statements.`,
  messages: [{ role: 'user' as const, content: 'hi' }],
})

const client = (baseURL: string) => new Anthropic({ apiKey: litellm!.masterKey, baseURL, maxRetries: 0 })

/** The `message_start` and final `message_delta` usage of a raw stream. */
function usagesOf(events: SseEvent[]) {
  return {
    starts: events.filter((e) => e.event === 'message_start').map((e) => e.data.message.usage),
    delta: events.filter((e) => e.event === 'message_delta').at(-1)?.data.usage,
  }
}

/** Reads a stream with the SDK's event iterator: every `message_start` usage and the final `message_delta` usage. */
async function iterate(baseURL: string, body: ReturnType<typeof request>) {
  const stream = await client(baseURL).messages.create({ ...body, stream: true })
  const starts: Anthropic.Usage[] = []
  let delta: Anthropic.MessageDeltaUsage | undefined
  let text = ''
  for await (const event of stream) {
    if (event.type === 'message_start') starts.push(event.message.usage)
    if (event.type === 'message_delta') delta = event.usage
    if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') text += event.delta.text
  }
  return { starts, delta, text }
}

/** The record of the next request through `side`. */
function nextRecord(side: Sidecar): () => Promise<UsageRecord> {
  const n = side.records.length
  return () => waitFor(() => side.records[n], `usage record #${n + 1}`)
}

function expectTapped(record: UsageRecord, usage: typeof CACHED_RECORD, streaming: boolean): void {
  expect(record).toMatchObject({ status: 'complete', streaming, final: true, route: '/v1/messages' })
  expect(record.usage).toMatchObject(usage)
  expect(record.sources.input).toMatch(/^tap:/)
  expect(record.sources.cacheRead).toMatch(/^tap:/)
  // No client header reaches the provider on LiteLLM's Responses path. One request at a time is joined by its
  // text, or as the single one in flight (test/peers/litellm-crosstalk.test.ts pins concurrent ones).
  expect(record.correlation?.reason).toBeUndefined()
  expect(['content', 'single']).toContain(record.correlation?.by)
}

describe('without usagewire: Anthropic SDK → LiteLLM → OpenAI Responses', () => {
  it('JSON: input_tokens 1234 and no cache fields, on the cold call and on the cached one', async ({ skip }) => {
    skip(!litellm, unavailable)
    const body = request('gpt-direct', 'direct json')
    const cold = await client(litellm!.url).messages.create(body)
    const cached = await client(litellm!.url).messages.create(body)

    const sent = mock.requests.slice(-2)
    expect(sent.map((r) => [r.path, r.body.stream ?? false, r.usage])).toEqual([
      ['/v1/responses', false, COLD],
      ['/v1/responses', false, CACHED],
    ])
    expect(cold.content).toEqual([{ type: 'text', text: RESPONSES_TEXT }])
    expect(cold.usage).toEqual({ input_tokens: 1234, output_tokens: 56, total_tokens: 1290 })
    // The provider read 1024 of the 1234 from its cache; the client is told nothing about it.
    expect(cached.usage).toEqual({ input_tokens: 1234, output_tokens: 56, total_tokens: 1290 })
  })

  it('stream: two message_start events, both zeros; message_delta input 1234 with no cache fields', async ({
    skip,
  }) => {
    skip(!litellm, unavailable)
    const body = { ...request('gpt-direct', 'direct sse'), stream: true }
    const url = `${litellm!.url}/v1/messages`
    for (const truth of [COLD, CACHED]) {
      const answer = await postSse(url, anthropicHeaders(litellm!.masterKey), body)
      expect(mock.requests.at(-1)!.usage).toEqual(truth)
      expect(answer.status).toBe(200)
      expect(answer.events.map((e) => e.event)).toEqual(BRIDGED_EVENTS)
      expect(textOf(answer.events)).toBe(RESPONSES_TEXT)
      const { starts, delta } = usagesOf(answer.events)
      expect(starts).toEqual([ZERO_START, ZERO_START])
      expect(delta).toEqual({ input_tokens: 1234, output_tokens: 56 })
    }
  })

  it('stream, SDK: finalMessage() throws "Unexpected event order"; the event iterator reads cache 0', async ({
    skip,
  }) => {
    skip(!litellm, unavailable)
    const body = request('gpt-direct', 'direct sdk')
    await client(litellm!.url).messages.create(body) // warms the mock's cache
    await expect(client(litellm!.url).messages.stream(body).finalMessage()).rejects.toThrow(
      'Unexpected event order, got message_start before receiving "message_stop"',
    )
    const read = await iterate(litellm!.url, body)
    expect(mock.requests.at(-1)!.usage).toEqual(CACHED)
    expect(read.text).toBe(RESPONSES_TEXT)
    expect(read.starts).toEqual([ZERO_START, ZERO_START])
    expect(read.delta).toEqual({ input_tokens: 1234, output_tokens: 56 })
  })
})

describe('with the usagewire sidecar on both sides of LiteLLM', () => {
  it('JSON: input_tokens 210 and cache_read_input_tokens 1024 once cached; the record from the tap', async ({
    skip,
  }) => {
    skip(!litellm, unavailable)
    const body = request('gpt-tapped', 'tapped json')
    const coldRecord = nextRecord(sidecar)
    const cold = await client(sidecar.url).messages.create(body)
    expectTapped(await coldRecord(), COLD_RECORD, false)
    const cachedRecord = nextRecord(sidecar)
    const cached = await client(sidecar.url).messages.create(body)
    expectTapped(await cachedRecord(), CACHED_RECORD, false)

    expect(mock.requests.slice(-2).map((r) => r.usage)).toEqual([COLD, CACHED])
    expect(cold.content).toEqual([{ type: 'text', text: RESPONSES_TEXT }])
    expect(cold.usage).toMatchObject({ input_tokens: 1234, output_tokens: 56 })
    expect(cold.usage.cache_read_input_tokens ?? 0).toBe(0)
    expect(cached.usage).toMatchObject({ input_tokens: 210, cache_read_input_tokens: 1024, output_tokens: 56 })
    expect(cached.usage.cache_creation_input_tokens ?? 0).toBe(0)
    // The provider never sees the sidecar's correlation header.
    expect(mock.requests.every((r) => r.headers['x-usagewire-correlation'] === undefined)).toBe(true)
  })

  it('stream: message_delta carries input 210 and cache read 1024; both message_start events stay', async ({
    skip,
  }) => {
    skip(!litellm, unavailable)
    const body = { ...request('gpt-tapped', 'tapped sse'), stream: true }
    const url = `${sidecar.url}/v1/messages`
    const cases = [
      { truth: COLD, record: COLD_RECORD, delta: { input_tokens: 1234, output_tokens: 56 } },
      {
        truth: CACHED,
        record: CACHED_RECORD,
        delta: { input_tokens: 210, cache_read_input_tokens: 1024, output_tokens: 56 },
      },
    ]
    for (const { truth, record, delta } of cases) {
      const next = nextRecord(sidecar)
      const answer = await postSse(url, anthropicHeaders(litellm!.masterKey), body)
      expect(mock.requests.at(-1)!.usage).toEqual(truth)
      expect(answer.status).toBe(200)
      // usagewire adds and removes no event: the translator's second message_start reaches the client.
      expect(answer.events.map((e) => e.event)).toEqual(BRIDGED_EVENTS)
      expect(textOf(answer.events)).toBe(RESPONSES_TEXT)
      const { starts, delta: final } = usagesOf(answer.events)
      expect(final).toMatchObject(delta)
      expect(final.cache_read_input_tokens ?? 0).toBe(truth.cacheRead)
      // 'patch-final' (the default): both message_start events left before the provider's usage existed.
      expect(starts).toEqual([ZERO_START, ZERO_START])
      expectTapped(await next(), record, true)
    }
  })

  it('stream, SDK: the event iterator reads cache 1024; finalMessage() still throws on the second message_start', async ({
    skip,
  }) => {
    skip(!litellm, unavailable)
    const body = request('gpt-tapped', 'tapped sdk')
    await client(sidecar.url).messages.create(body) // warms the mock's cache
    const next = nextRecord(sidecar)
    const read = await iterate(sidecar.url, body)
    expect(mock.requests.at(-1)!.usage).toEqual(CACHED)
    expect(read.text).toBe(RESPONSES_TEXT)
    expect(read.starts).toEqual([ZERO_START, ZERO_START])
    expect(read.delta).toMatchObject({ input_tokens: 210, cache_read_input_tokens: 1024, output_tokens: 56 })
    expectTapped(await next(), CACHED_RECORD, true)

    // The event order is the translator's; usagewire rewrites usage, never the sequence of events.
    await expect(client(sidecar.url).messages.stream(body).finalMessage()).rejects.toThrow(
      'Unexpected event order, got message_start before receiving "message_stop"',
    )
  })

  it("messageStart: 'hold': both message_start events carry input 210 and cache read 1024", async ({ skip }) => {
    skip(!litellm, unavailable)
    const body = { ...request('gpt-held', 'held sse'), stream: true }
    const url = `${held.url}/v1/messages`
    await postSse(url, anthropicHeaders(litellm!.masterKey), body) // warms the mock's cache
    const next = nextRecord(held)
    const answer = await postSse(url, anthropicHeaders(litellm!.masterKey), body)
    expect(mock.requests.at(-1)!.usage).toEqual(CACHED)
    expect(answer.events.map((e) => e.event)).toEqual(BRIDGED_EVENTS)
    expect(textOf(answer.events)).toBe(RESPONSES_TEXT)
    const { starts, delta } = usagesOf(answer.events)
    // Readers of message_start alone (Claude Code, SDKs ≤ 0.49) get the provider's prompt counts.
    for (const start of starts) expect(start).toMatchObject({ input_tokens: 210, cache_read_input_tokens: 1024 })
    expect(delta).toMatchObject({ input_tokens: 210, cache_read_input_tokens: 1024, output_tokens: 56 })
    expectTapped(await next(), CACHED_RECORD, true)
  })
})
