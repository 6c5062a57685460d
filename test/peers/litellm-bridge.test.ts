/**
 * Seed 002, on a real LiteLLM: its `/v1/messages` bridge to an OpenAI Responses upstream. In 1.83.10 it
 * reads the cache count from `usage.cache_read_input_tokens`, a name only Anthropic uses; the Responses API
 * reports it at `usage.input_tokens_details.cached_tokens` (docs/dialects/openai-responses.md#fields-and-inclusion),
 * so every cache read becomes 0 and stays inside `input_tokens` (docs/peer-bugs.md row 6). 1.108.7, the
 * newest that installs, reads it, but its `message_start` still says 0 for everything.
 *
 *   Anthropic SDK → LiteLLM (`openai/` model) → mock Responses                         (without usagewire)
 *   Anthropic SDK → sidecar → LiteLLM → sidecar's provider-facing listener → mock       (with usagewire)
 *
 * The mock answers a prompt it has not seen cold (input 1234, nothing cached) and every repeat with input
 * 1234 of which 1024 cached, output 56: in usagewire's buckets input 210, cache read 1024. What a client
 * reads of a cached call (input/cache read/output; – where the field is absent; "start" is `message_start`,
 * "delta" the final `message_delta`, "held" the sidecar with `messageStart: 'hold'`):
 *
 * | version | client               | without usagewire                    | with the sidecar                       |
 * | ------- | -------------------- | ------------------------------------ | -------------------------------------- |
 * | 1.83.10 | SDK JSON             | 1234/–/56                            | 210/1024/56                            |
 * | 1.83.10 | raw stream           | start 0/0/0 (twice); delta 1234/–/56 | start 0/0/0 (twice); delta 210/1024/56 |
 * | 1.83.10 |                      |                                      | held: both starts 210/1024             |
 * | 1.83.10 | SDK event iterator   | delta 1234/–/56                      | delta 210/1024/56                      |
 * | 1.83.10 | SDK `finalMessage()` | throws (event order)                 | still throws                           |
 * | 1.108.7 | SDK JSON             | 210/1024/56                          | 210/1024/56                            |
 * | 1.108.7 | raw stream           | start 0/0/0; delta 210/1024/56       | start 0/0/0; delta 210/1024/56         |
 * | 1.108.7 |                      |                                      | held: start 210/1024                   |
 * | 1.108.7 | SDK event iterator   | delta 210/1024/56                    | delta 210/1024/56                      |
 * | 1.108.7 | SDK `finalMessage()` | 210/1024/56                          | 210/1024/56                            |
 *
 * The cold call reads 1234/0/56 everywhere, with or without usagewire. So in 1.108.7 only `message_start`
 * is wrong: a client that takes the prompt's count from it alone reads 0. The sidecar puts the provider's
 * numbers into the `message_delta` and the JSON body (and, with `messageStart: 'hold'`, into
 * `message_start`); it never adds or removes an event, so 1.83.10's duplicated `message_start` stays, and
 * `finalMessage()` still throws there: clients that iterate the events read the right numbers, the SDK's
 * accumulating helper cannot be repaired from the wire.
 *
 * With `forward_client_headers_to_llm_api`, 1.108.7 passes the sidecar's correlation header on to the
 * Responses upstream and the sidecar joins each call by it; 1.83.10's Responses path sends the provider only
 * a deployment's `extra_headers`, never forwarded client headers, so there the sidecar joins these calls
 * without its header.
 */
import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy, type Sidecar, type UsageRecord } from '@usagewire/proxy'
import { waitFor } from '../matrix/upstream.js'
import { startLiteLLM, startRelay, type LiteLLM, type Relay } from './litellm.js'
import { CACHED, COLD, RESPONSES_TEXT, startMockOpenAI, type MockOpenAI } from './mock-openai.js'
import { peerOrSkip, PEERS, type PeerSpec } from './python.js'
import { anthropicHeaders, postSse, textOf, type SseEvent } from './sse.js'

/** What LiteLLM's bridge puts on every `message_start` event. */
const ZERO_START = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }
/** The record of a cached call: the provider's numbers, in usagewire's disjoint buckets. */
const CACHED_RECORD = { input: 210, cacheRead: 1024, cacheWrite: 0, output: 56 }
const COLD_RECORD = { input: 1234, cacheRead: 0, cacheWrite: 0, output: 56 }
/** The usage an Anthropic client should read of a cold call and of a cached one. */
const COLD_USAGE = { input_tokens: 1234, output_tokens: 56 }
const CACHED_USAGE = { input_tokens: 210, cache_read_input_tokens: 1024, output_tokens: 56 }

/** What one LiteLLM version's bridge sends its client, without usagewire. */
interface Version {
  peer: PeerSpec
  /** `message_start` events per stream: 1.83.10 sends two, both before the text. */
  starts: number
  /** The JSON answer's usage, cold and cached. */
  json: { cold: Record<string, number>; cached: Record<string, number> }
  /** The final `message_delta`'s usage, cold and cached. */
  delta: { cold: Record<string, number>; cached: Record<string, number> }
  /** What the SDK's `finalMessage()` gives for a cached call: its usage, or the error it throws. */
  finalMessage: { usage: Record<string, number> } | { throws: string }
  /**
   * How the sidecar may join one request at a time to LiteLLM's call: by its header where LiteLLM passes
   * it on, else by the text, or as the single request in flight (test/peers/litellm-crosstalk.test.ts pins
   * concurrent ones).
   */
  joins: ReadonlyArray<'header' | 'content' | 'single'>
}

const EVENT_ORDER = 'Unexpected event order, got message_start before receiving "message_stop"'

const VERSIONS: Version[] = [
  {
    peer: PEERS.litellm,
    starts: 2,
    json: {
      cold: { input_tokens: 1234, output_tokens: 56, total_tokens: 1290 },
      // The provider read 1024 of the 1234 from its cache; the client is told nothing about it.
      cached: { input_tokens: 1234, output_tokens: 56, total_tokens: 1290 },
    },
    delta: { cold: COLD_USAGE, cached: COLD_USAGE },
    finalMessage: { throws: EVENT_ORDER },
    joins: ['content', 'single'],
  },
  {
    peer: PEERS.litellmNewest,
    starts: 1,
    json: { cold: COLD_USAGE, cached: CACHED_USAGE },
    delta: { cold: COLD_USAGE, cached: CACHED_USAGE },
    finalMessage: { usage: { ...CACHED_USAGE, cache_creation_input_tokens: 0 } },
    joins: ['header'],
  },
]

/** The event names of one bridged stream: `message_start` once or twice, the text in four deltas. */
const eventNames = (version: Version) => [
  ...Array.from({ length: version.starts }, () => 'message_start'),
  'content_block_start',
  'content_block_delta',
  'content_block_delta',
  'content_block_delta',
  'content_block_delta',
  'content_block_stop',
  'message_delta',
  'message_stop',
]
const zeroStarts = (version: Version) => Array.from({ length: version.starts }, () => ZERO_START)

/** A request with a system prompt of its own, so that the mock's prompt cache is cold for its first call. */
const request = (model: string, name: string) => ({
  model,
  max_tokens: 64,
  system: `Case "${name}". You are a careful, methodical engineer. Respond with short factual statements.`,
  messages: [{ role: 'user' as const, content: 'hi' }],
})

/** The `message_start` and final `message_delta` usage of a raw stream. */
function usagesOf(events: SseEvent[]) {
  return {
    starts: events.filter((e) => e.event === 'message_start').map((e) => e.data.message.usage),
    delta: events.filter((e) => e.event === 'message_delta').at(-1)?.data.usage,
  }
}

/** Reads a stream with the SDK's event iterator: every `message_start` usage and the final `message_delta` usage. */
async function iterate(client: Anthropic, body: ReturnType<typeof request>) {
  const stream = await client.messages.create({ ...body, stream: true })
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

function expectTapped(
  record: UsageRecord,
  usage: typeof CACHED_RECORD,
  streaming: boolean,
  joins: Version['joins'],
): void {
  expect(record).toMatchObject({ status: 'complete', streaming, final: true, route: '/v1/messages' })
  expect(record.usage).toMatchObject(usage)
  expect(record.sources.input).toMatch(/^tap:/)
  expect(record.sources.cacheRead).toMatch(/^tap:/)
  expect(record.correlation?.reason).toBeUndefined()
  expect(joins).toContain(record.correlation?.by)
}

describe.each(VERSIONS.map((version) => [version.peer.version, version] as const))('LiteLLM %s', (_, version) => {
  let unavailable = 'not started'
  let mock: MockOpenAI | undefined
  let litellm: LiteLLM | undefined
  let sidecar: Sidecar | undefined
  let held: Sidecar | undefined
  let relay: Relay | undefined

  beforeAll(async () => {
    const peer = await peerOrSkip(version.peer)
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
    console.log(`LiteLLM ${version.peer.version} ready in ${litellm.startMs} ms`)
  }, 15 * 60_000)

  afterAll(async () => {
    await litellm?.stop()
    await sidecar?.close()
    await held?.close()
    await relay?.close()
    await mock?.close()
  })

  const client = (baseURL: string) => new Anthropic({ apiKey: litellm!.masterKey, baseURL, maxRetries: 0 })

  describe('without usagewire: Anthropic SDK → LiteLLM → OpenAI Responses', () => {
    it('JSON: the usage LiteLLM states, on the cold call and on the cached one', async ({ skip }) => {
      skip(!litellm, unavailable)
      const body = request('gpt-direct', 'direct json')
      const cold = await client(litellm!.url).messages.create(body)
      const cached = await client(litellm!.url).messages.create(body)

      const sent = mock!.requests.slice(-2)
      expect(sent.map((r) => [r.path, r.body.stream ?? false, r.usage])).toEqual([
        ['/v1/responses', false, COLD],
        ['/v1/responses', false, CACHED],
      ])
      expect(cold.content).toEqual([{ type: 'text', text: RESPONSES_TEXT }])
      expect(cold.usage).toEqual(version.json.cold)
      expect(cached.usage).toEqual(version.json.cached)
    })

    it('stream: every message_start all zeros; message_delta as LiteLLM states it', async ({ skip }) => {
      skip(!litellm, unavailable)
      const body = { ...request('gpt-direct', 'direct sse'), stream: true }
      const url = `${litellm!.url}/v1/messages`
      for (const [truth, expected] of [
        [COLD, version.delta.cold],
        [CACHED, version.delta.cached],
      ] as const) {
        const answer = await postSse(url, anthropicHeaders(litellm!.masterKey), body)
        expect(mock!.requests.at(-1)!.usage).toEqual(truth)
        expect(answer.status).toBe(200)
        expect(answer.events.map((e) => e.event)).toEqual(eventNames(version))
        expect(textOf(answer.events)).toBe(RESPONSES_TEXT)
        const { starts, delta } = usagesOf(answer.events)
        expect(starts).toEqual(zeroStarts(version))
        expect(delta).toEqual(expected)
      }
    })

    it('stream, SDK: finalMessage() and the event iterator', async ({ skip }) => {
      skip(!litellm, unavailable)
      const body = request('gpt-direct', 'direct sdk')
      await client(litellm!.url).messages.create(body) // warms the mock's cache
      const final = client(litellm!.url).messages.stream(body).finalMessage()
      if ('throws' in version.finalMessage) await expect(final).rejects.toThrow(version.finalMessage.throws)
      else expect((await final).usage).toEqual(version.finalMessage.usage)
      const read = await iterate(client(litellm!.url), body)
      expect(mock!.requests.at(-1)!.usage).toEqual(CACHED)
      expect(read.text).toBe(RESPONSES_TEXT)
      expect(read.starts).toEqual(zeroStarts(version))
      expect(read.delta).toEqual(version.delta.cached)
    })
  })

  describe('with the usagewire sidecar on both sides of LiteLLM', () => {
    it('JSON: input_tokens 210 and cache_read_input_tokens 1024 once cached; the record from the tap', async ({
      skip,
    }) => {
      skip(!litellm, unavailable)
      const body = request('gpt-tapped', 'tapped json')
      const coldRecord = nextRecord(sidecar!)
      const cold = await client(sidecar!.url).messages.create(body)
      expectTapped(await coldRecord(), COLD_RECORD, false, version.joins)
      const cachedRecord = nextRecord(sidecar!)
      const cached = await client(sidecar!.url).messages.create(body)
      expectTapped(await cachedRecord(), CACHED_RECORD, false, version.joins)

      expect(mock!.requests.slice(-2).map((r) => r.usage)).toEqual([COLD, CACHED])
      expect(cold.content).toEqual([{ type: 'text', text: RESPONSES_TEXT }])
      expect(cold.usage).toMatchObject(COLD_USAGE)
      expect(cold.usage.cache_read_input_tokens ?? 0).toBe(0)
      expect(cached.usage).toMatchObject(CACHED_USAGE)
      expect(cached.usage.cache_creation_input_tokens ?? 0).toBe(0)
      // The provider never sees the sidecar's correlation header.
      expect(mock!.requests.every((r) => r.headers['x-usagewire-correlation'] === undefined)).toBe(true)
    })

    it('stream: message_delta carries input 210 and cache read 1024; every message_start stays', async ({ skip }) => {
      skip(!litellm, unavailable)
      const body = { ...request('gpt-tapped', 'tapped sse'), stream: true }
      const url = `${sidecar!.url}/v1/messages`
      const cases = [
        { truth: COLD, record: COLD_RECORD, delta: COLD_USAGE },
        { truth: CACHED, record: CACHED_RECORD, delta: CACHED_USAGE },
      ]
      for (const { truth, record, delta } of cases) {
        const next = nextRecord(sidecar!)
        const answer = await postSse(url, anthropicHeaders(litellm!.masterKey), body)
        expect(mock!.requests.at(-1)!.usage).toEqual(truth)
        expect(answer.status).toBe(200)
        // usagewire adds and removes no event: a translator's second message_start reaches the client.
        expect(answer.events.map((e) => e.event)).toEqual(eventNames(version))
        expect(textOf(answer.events)).toBe(RESPONSES_TEXT)
        const { starts, delta: final } = usagesOf(answer.events)
        expect(final).toMatchObject(delta)
        expect(final.cache_read_input_tokens ?? 0).toBe(truth.cacheRead)
        // 'patch-final' (the default): every message_start left before the provider's usage existed.
        expect(starts).toEqual(zeroStarts(version))
        expectTapped(await next(), record, true, version.joins)
      }
    })

    it('stream, SDK: the event iterator reads cache 1024; finalMessage() as the event order allows', async ({
      skip,
    }) => {
      skip(!litellm, unavailable)
      const body = request('gpt-tapped', 'tapped sdk')
      await client(sidecar!.url).messages.create(body) // warms the mock's cache
      const next = nextRecord(sidecar!)
      const read = await iterate(client(sidecar!.url), body)
      expect(mock!.requests.at(-1)!.usage).toEqual(CACHED)
      expect(read.text).toBe(RESPONSES_TEXT)
      expect(read.starts).toEqual(zeroStarts(version))
      expect(read.delta).toMatchObject(CACHED_USAGE)
      expectTapped(await next(), CACHED_RECORD, true, version.joins)

      // The event order is the translator's; usagewire rewrites usage, never the sequence of events.
      const final = client(sidecar!.url).messages.stream(body).finalMessage()
      if ('throws' in version.finalMessage) await expect(final).rejects.toThrow(version.finalMessage.throws)
      else expect((await final).usage).toMatchObject(CACHED_USAGE)
    })

    it("messageStart: 'hold': every message_start carries input 210 and cache read 1024", async ({ skip }) => {
      skip(!litellm, unavailable)
      const body = { ...request('gpt-held', 'held sse'), stream: true }
      const url = `${held!.url}/v1/messages`
      await postSse(url, anthropicHeaders(litellm!.masterKey), body) // warms the mock's cache
      const next = nextRecord(held!)
      const answer = await postSse(url, anthropicHeaders(litellm!.masterKey), body)
      expect(mock!.requests.at(-1)!.usage).toEqual(CACHED)
      expect(answer.events.map((e) => e.event)).toEqual(eventNames(version))
      expect(textOf(answer.events)).toBe(RESPONSES_TEXT)
      const { starts, delta } = usagesOf(answer.events)
      // Readers of message_start alone (SDKs ≤ 0.49, dashboards that count prompts as they start) get the
      // provider's prompt counts.
      expect(starts.length).toBe(version.starts)
      for (const start of starts) expect(start).toMatchObject({ input_tokens: 210, cache_read_input_tokens: 1024 })
      expect(delta).toMatchObject(CACHED_USAGE)
      expectTapped(await next(), CACHED_RECORD, true, version.joins)
    })
  })
})
