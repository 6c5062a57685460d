/**
 * Seed 001, on a real LiteLLM with `callbacks: [prometheus]` and the seed's `cache_metrics` group:
 * `litellm_cached_tokens_metric` never gets a series however many prompt-cache reads the provider reports,
 * because it counts hits of LiteLLM's own response cache (adding the cached response's total tokens), never
 * provider prompt-cache reads. usagewire's `usagewire_cache_read_input_tokens_total` (docs/metrics.md)
 * counts exactly those reads. Run on 1.83.10 and on 1.108.7, the newest that installs; 1.108.7 adds a
 * counter of its own, `litellm_provider_cache_read_input_tokens_metric` (here in a group of its own), that
 * does count them, and wants the master key on `/metrics/` (`require_auth_for_metrics_endpoint` defaults
 * to true there; Prometheus sends it).
 *
 *   Anthropic SDK / OpenAI SDK → sidecar → LiteLLM (`anthropic/` model) → sidecar's provider side → mock Anthropic
 *   Anthropic SDK / OpenAI SDK → LiteLLM (`anthropic/` model, the "direct" one) → mock Anthropic
 *   Prometheus scrapes LiteLLM's `/metrics/` and the sidecar's `/metrics`.
 *
 * The mock answers as the seed's provider did: the first call with a prompt writes the cache (input 7, cache
 * write 1802), later ones read it (input 7, cache read 1802); output 16. What each client and counter read
 * (input/cache read/cache write/output of a cache hit; the same with usagewire or without, for both
 * versions, unless said):
 *
 * | version | client / counter                              | without usagewire | with the sidecar  |
 * | ------- | --------------------------------------------- | ----------------- | ----------------- |
 * | both    | Anthropic SDK `/v1/messages`, JSON and stream | 7/1802/0/16       | 7/1802/0/16       |
 * | both    | OpenAI SDK chat: prompt, `cached_tokens`      | 1809, 1802        | 1809, 1802        |
 * | both    | `litellm_cached_tokens_metric`                | no series         | no series         |
 * | 1.83.10 | LiteLLM's count of provider cache reads       | none exists       | none exists       |
 * | 1.108.7 | `litellm_provider_cache_read_input_…`         | every read        | every read        |
 * | both    | `usagewire_cache_read_input_tokens_total`     | –                 | every read via it |
 *
 * So the seed's other claim, that LiteLLM leaves `prompt_tokens_details.cached_tokens` unset, does not hold
 * for `/v1/chat/completions` in either version, and from 1.108 LiteLLM counts provider cache reads itself,
 * under a name of its own; `litellm_cached_tokens_metric` stays what it was.
 *
 * Prometheus comes from the system (`apt-get install prometheus`). Without it, or without the LiteLLM peer,
 * the tests are skipped locally with the reason printed, and fail in CI (CI=true).
 */
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy, type Sidecar, type UsageRecord } from '@usagewire/proxy'
import { waitFor } from '../matrix/upstream.js'
import { sampleSum } from '../prometheus/exposition.js'
import {
  pollValue,
  PROMETHEUS_BIN as binary,
  query,
  startPrometheus,
  type Prometheus,
} from '../prometheus/prometheus.js'
import { startLiteLLM, startRelay, type LiteLLM, type Relay } from './litellm.js'
import { CACHE_HIT, CACHE_WRITE, MESSAGES_TEXT, startMockAnthropic, type MockAnthropic } from './mock-anthropic.js'
import { peerOrSkip, PEERS, type PeerSpec } from './python.js'

const inCI = process.env.CI === 'true'
if (!binary && !inCI)
  console.warn(
    'test/peers/litellm-metrics.test.ts skipped: no `prometheus` binary on PATH (apt-get install -y prometheus)',
  )

/** The model LiteLLM asks the provider for through the sidecar, and the one it asks for directly. */
const TAPPED_MODEL = 'claude-sonnet-4-5-20250929'
const DIRECT_MODEL = 'claude-sonnet-4-5'

/** Asserts that `promql` reaches `expected` (the first samples take a few scrapes to appear). */
async function until(url: string, promql: string, expected: number, log: () => string): Promise<void> {
  const seen = await pollValue(url, promql, expected)
  expect(seen, `${promql}; Prometheus log:\n${log().slice(-2000)}`).toBe(expected)
}

/** What differs between the LiteLLM versions here. */
interface Version {
  peer: PeerSpec
  /** `/metrics/` refuses a scrape without the master key (`require_auth_for_metrics_endpoint`, true from 1.108). */
  metricsNeedKey: boolean
  /** LiteLLM has `litellm_provider_cache_read_input_tokens_metric` and its cache-write twin (1.108+). */
  providerCacheCounters: boolean
}

const VERSIONS: Version[] = [
  { peer: PEERS.litellm, metricsNeedKey: false, providerCacheCounters: false },
  { peer: PEERS.litellmNewest, metricsNeedKey: true, providerCacheCounters: true },
]

const SYSTEM = 'You are an analyzer of static legal text. '.repeat(200)

/** Non-streaming, then streaming with `include_usage`: the usage each answer carried. */
async function chatTwice(openai: OpenAI, model: string) {
  const messages = [
    { role: 'system' as const, content: SYSTEM },
    { role: 'user' as const, content: 'ok' },
  ]
  const first = await openai.chat.completions.create({ model, max_tokens: 16, messages })
  const stream = await openai.chat.completions.create({
    model,
    max_tokens: 16,
    messages,
    stream: true,
    stream_options: { include_usage: true },
  })
  let text = ''
  let usage: OpenAI.CompletionUsage | undefined
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? ''
    if (chunk.usage) usage = chunk.usage
  }
  return { first: first.usage, firstText: first.choices[0]?.message.content, second: usage, secondText: text }
}

/** Anthropic SDK on `/v1/messages`: a cache write, a hit, and a streamed hit. */
async function messagesThrice(anthropic: Anthropic, model: string, user: string) {
  const body = { model, max_tokens: 16, system: SYSTEM, messages: [{ role: 'user' as const, content: user }] }
  const write = await anthropic.messages.create(body)
  const hit = await anthropic.messages.create(body)
  const streamed = await anthropic.messages.stream(body).finalMessage()
  return { write, hit, streamed }
}

/** What an Anthropic client reads of the three: write 7 + 1802 written, then 7 + 1802 read; output 16. */
function expectMessagesUsage({ write, hit, streamed }: Awaited<ReturnType<typeof messagesThrice>>) {
  expect(write.content).toEqual([{ type: 'text', text: MESSAGES_TEXT }])
  expect(write.usage).toMatchObject({ input_tokens: 7, cache_creation_input_tokens: 1802, output_tokens: 16 })
  expect(write.usage.cache_read_input_tokens ?? 0).toBe(0)
  for (const message of [hit, streamed]) {
    expect(message.content).toEqual([{ type: 'text', text: MESSAGES_TEXT }])
    expect(message.usage).toMatchObject({ input_tokens: 7, cache_read_input_tokens: 1802, output_tokens: 16 })
    expect(message.usage.cache_creation_input_tokens ?? 0).toBe(0)
  }
}

/** The chat usage LiteLLM gives for a cache write and for a cache hit (the provider's 7 + 1802, output 16). */
const CHAT_WRITE = {
  prompt_tokens: 1809,
  completion_tokens: 16,
  total_tokens: 1825,
  prompt_tokens_details: { cached_tokens: 0 },
}
const CHAT_HIT = {
  prompt_tokens: 1809,
  completion_tokens: 16,
  total_tokens: 1825,
  prompt_tokens_details: { cached_tokens: 1802 },
}

describe.each(VERSIONS.map((version) => [version.peer.version, version] as const))(
  'LiteLLM %s: its Prometheus callback and usagewire’s counters, over provider prompt-cache reads',
  (_, version) => {
    let unavailable = 'not started'
    let mock: MockAnthropic
    let relay: Relay
    let sidecar: Sidecar
    let litellm: LiteLLM | undefined
    let prometheus: Prometheus | undefined

    beforeAll(async () => {
      if (!binary) {
        unavailable = 'no `prometheus` binary on PATH'
        if (inCI) throw new Error(`CI=true: ${unavailable}`)
        return
      }
      const peer = await peerOrSkip(version.peer)
      if ('skip' in peer) {
        unavailable = peer.skip
        return
      }
      mock = await startMockAnthropic()
      relay = await startRelay()
      sidecar = await startProxy({
        listen: '127.0.0.1:0',
        target: relay.url,
        providerListen: '127.0.0.1:0',
        provider: mock.url,
      })
      const deployment = (model: string, apiBase: string) => ({
        model: `anthropic/${model}`,
        api_base: apiBase,
        api_key: 'sk-ant-mock',
      })
      litellm = await startLiteLLM(peer, {
        model_list: [
          { model_name: 'claude', litellm_params: deployment(TAPPED_MODEL, sidecar.providerUrl!) },
          { model_name: 'claude-direct', litellm_params: deployment(DIRECT_MODEL, mock.url) },
        ],
        litellm_settings: {
          callbacks: ['prometheus'],
          // The seed's group, and LiteLLM's token counters to show that its scrape carries what it counted.
          prometheus_metrics_config: [
            {
              group: 'cache_metrics',
              metrics: ['litellm_cache_hits_metric', 'litellm_cache_misses_metric', 'litellm_cached_tokens_metric'],
              include_labels: ['model', 'team_alias'],
            },
            {
              group: 'token_metrics',
              metrics: ['litellm_input_tokens_metric', 'litellm_output_tokens_metric'],
              include_labels: ['model'],
            },
            ...(version.providerCacheCounters
              ? [
                  {
                    group: 'provider_cache_metrics',
                    metrics: [
                      'litellm_provider_cache_read_input_tokens_metric',
                      'litellm_provider_cache_creation_input_tokens_metric',
                    ],
                    include_labels: ['model'],
                  },
                ]
              : []),
          ],
        },
        // x- headers (the sidecar's correlation header among them) reach the provider.
        general_settings: { forward_client_headers_to_llm_api: true },
      })
      relay.pointAt(litellm.url)
      console.log(`LiteLLM ${version.peer.version} ready in ${litellm.startMs} ms`)
      prometheus = await startPrometheus(binary, [
        { name: 'litellm', path: '/metrics/', target: new URL(litellm.url).host, bearer: litellm.masterKey },
        { name: 'usagewire', path: '/metrics', target: new URL(sidecar.url).host },
      ])
    }, 15 * 60_000)

    afterAll(async () => {
      await prometheus?.stop()
      await litellm?.stop()
      await sidecar?.close()
      await relay?.close()
      await mock?.close()
    })

    const anthropic = (baseURL: string) => new Anthropic({ apiKey: litellm!.masterKey, baseURL, maxRetries: 0 })
    const openai = (baseURL: string) =>
      new OpenAI({ apiKey: litellm!.masterKey, baseURL: `${baseURL}/v1`, maxRetries: 0 })

    it('/v1/messages: the SDK sees the provider’s cache counts through LiteLLM alone and through the sidecar; the records come from the tap', async ({
      skip,
    }) => {
      skip(!litellm || !prometheus, unavailable)
      // A prompt of its own (the user turn), so that the chat test below starts with a cache write.
      expectMessagesUsage(await messagesThrice(anthropic(litellm!.url), 'claude-direct', 'ok, directly'))

      const n = sidecar.records.length
      expectMessagesUsage(await messagesThrice(anthropic(sidecar.url), 'claude', 'ok'))

      expect(mock.requests.map((r) => [r.body.model, r.usage])).toEqual([
        [DIRECT_MODEL, CACHE_WRITE],
        [DIRECT_MODEL, CACHE_HIT],
        [DIRECT_MODEL, CACHE_HIT],
        [TAPPED_MODEL, CACHE_WRITE],
        [TAPPED_MODEL, CACHE_HIT],
        [TAPPED_MODEL, CACHE_HIT],
      ])
      const [first, second, third] = await waitFor(
        () => sidecar.records.length >= n + 3 && sidecar.records.slice(n, n + 3),
        'the three usage records',
      )
      expect(first!.usage).toMatchObject({ input: 7, cacheRead: 0, cacheWrite: 1802, output: 16 })
      for (const record of [second!, third!]) {
        expect(record.usage).toMatchObject({ input: 7, cacheRead: 1802, cacheWrite: 0, output: 16 })
      }
      for (const record of [first!, second!, third!]) {
        expect(record.status).toBe('complete')
        expect(record.sources.cacheRead).toMatch(/^tap:/)
        // LiteLLM passes x- headers on to Anthropic: each call is joined by the sidecar's header.
        expect(record.correlation).toEqual({ by: 'header' })
      }
      expect(mock.requests.every((r) => r.headers['x-usagewire-correlation'] === undefined)).toBe(true)
    })

    it('/v1/chat/completions (OpenAI client, Anthropic upstream): cached_tokens 1802 on the wire, with or without usagewire', async ({
      skip,
    }) => {
      skip(!litellm || !prometheus, unavailable)
      const direct = await chatTwice(openai(litellm!.url), 'claude-direct')
      const before = sidecar.records.length
      const viaSidecar = await chatTwice(openai(sidecar.url), 'claude')
      const chatRecords = await waitFor(
        () => sidecar.records.length >= before + 2 && sidecar.records.slice(before, before + 2),
        'the two chat records',
      )

      expect(mock.requests.slice(-4).map((r) => [r.body.model, r.usage])).toEqual([
        [DIRECT_MODEL, CACHE_WRITE],
        [DIRECT_MODEL, CACHE_HIT],
        [TAPPED_MODEL, CACHE_WRITE],
        [TAPPED_MODEL, CACHE_HIT],
      ])
      for (const seen of [direct, viaSidecar]) {
        expect(seen.firstText).toBe(MESSAGES_TEXT)
        expect(seen.secondText).toBe(MESSAGES_TEXT)
        expect(seen.first).toMatchObject(CHAT_WRITE)
        expect(seen.second).toMatchObject(CHAT_HIT)
      }
      expect(
        chatRecords.map((r) => [r.route, r.streaming, r.usage.input, r.usage.cacheRead, r.usage.cacheWrite]),
      ).toEqual([
        ['/v1/chat/completions', false, 7, 0, 1802],
        ['/v1/chat/completions', true, 7, 1802, 0],
      ])
      for (const record of chatRecords) expect(record.correlation).toEqual({ by: 'header' })
    })

    it('Prometheus: usagewire’s cache-read counter equals the provider’s reads; litellm_cached_tokens_metric has no series', async ({
      skip,
    }) => {
      skip(!litellm || !prometheus, unavailable)
      // The provider's answers to the two tests above, which run first.
      const sum = (requests: typeof mock.requests, field: 'cacheRead' | 'cacheWrite' | 'output') =>
        requests.reduce((total, r) => total + r.usage![field], 0)
      const tapped = mock.requests.filter((r) => r.body.model === TAPPED_MODEL)
      const reads = sum(tapped, 'cacheRead')
      const writes = sum(tapped, 'cacheWrite')
      const outputs = sum(mock.requests, 'output')
      expect(reads).toBe(3 * 1802)
      expect(writes).toBe(2 * 1802)
      // Every call went through LiteLLM: these are what a counter of provider cache reads in it would say.
      expect(sum(mock.requests, 'cacheRead')).toBe(6 * 1802)
      expect(sum(mock.requests, 'cacheWrite')).toBe(4 * 1802)

      const key = { authorization: `Bearer ${litellm!.masterKey}` }
      const bare = await fetch(`${litellm!.url}/metrics/`)
      await bare.arrayBuffer()
      expect(bare.status).toBe(version.metricsNeedKey ? 401 : 200)
      // LiteLLM logs asynchronously: wait until its own exposition has counted every call's output.
      const exposition = async () => (await fetch(`${litellm!.url}/metrics/`, { headers: key })).text()
      const deadline = Date.now() + 10_000
      while (sampleSum(await exposition(), 'litellm_output_tokens_metric_total') !== outputs && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      const text = await exposition()
      expect(sampleSum(text, 'litellm_output_tokens_metric_total')).toBe(outputs)
      // The seed's group is live: the counter is registered and LiteLLM counts misses of its response cache.
      expect(text).toContain('# TYPE litellm_cached_tokens_metric_total counter')
      expect(sampleSum(text, 'litellm_cache_misses_metric_total')).toBeGreaterThan(0)
      expect(sampleSum(text, 'litellm_cached_tokens_metric_total')).toBeUndefined()
      expect(sampleSum(text, 'litellm_cache_hits_metric_total')).toBeUndefined()
      if (version.providerCacheCounters) {
        // Per model, every read and write the provider reported, whichever route the call came in on.
        for (const model of [TAPPED_MODEL, DIRECT_MODEL]) {
          const calls = mock.requests.filter((r) => r.body.model === model)
          expect(sampleSum(text, 'litellm_provider_cache_read_input_tokens_metric_total', { model })).toBe(
            sum(calls, 'cacheRead'),
          )
          expect(sampleSum(text, 'litellm_provider_cache_creation_input_tokens_metric_total', { model })).toBe(
            sum(calls, 'cacheWrite'),
          )
        }
      } else {
        expect(text).not.toContain('litellm_provider_cache_read_input_tokens_metric')
      }

      const log = prometheus!.output
      await until(prometheus!.url, 'sum(usagewire_cache_read_input_tokens_total)', reads, log)
      await until(prometheus!.url, 'sum(usagewire_cache_write_input_tokens_total)', writes, log)
      await until(prometheus!.url, 'sum(litellm_output_tokens_metric_total)', outputs, log)
      if (version.providerCacheCounters) {
        const all = sum(mock.requests, 'cacheRead')
        await until(prometheus!.url, 'sum(litellm_provider_cache_read_input_tokens_metric_total)', all, log)
      }
      // Both targets are up and fully scraped; LiteLLM counted every call, and never a cached token.
      expect((await query(prometheus!.url, 'up')).map((r) => [r.metric.job, r.value]).sort()).toEqual([
        ['litellm', 1],
        ['usagewire', 1],
      ])
      expect(await query(prometheus!.url, '{__name__=~"litellm_cached_tokens_metric.*"}')).toEqual([])
      expect(await query(prometheus!.url, '{__name__=~"litellm_cache_hits_metric.*"}')).toEqual([])
      const byRoute = await query(prometheus!.url, 'sum by (route) (usagewire_cache_read_input_tokens_total)')
      expect(byRoute.map((r) => [r.metric.route, r.value]).sort()).toEqual([
        ['/v1/chat/completions', 1802],
        ['/v1/messages', 2 * 1802],
      ])
    }, 60_000)
  },
)
