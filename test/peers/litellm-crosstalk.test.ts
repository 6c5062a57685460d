/**
 * Concurrent requests through a real LiteLLM 1.83.10 with the usagewire sidecar on both sides:
 *
 *   client → sidecar → LiteLLM → sidecar's provider side → mock (OpenAI Responses, or Anthropic Messages)
 *
 * The sidecar joins each client request to LiteLLM's call to the provider (docs/sidecar.md#correlation) and
 * must never hand one client another's numbers. Each batch is 16 requests held at the mock until all 16 are
 * there, so all are in flight at once; half stream, half do not.
 *
 * - Different answers: the request index is in the prompt and the mock answers with a text and usage of its
 *   own for it. Over the Responses bridge LiteLLM passes no client header to the provider (its Responses path
 *   sends only a deployment's `extra_headers`), so the sidecar joins by content; over Anthropic LiteLLM
 *   forwards `x-` headers (`forward_client_headers_to_llm_api`, test/peers/litellm.ts), so it joins by its
 *   header. Every client gets its own exact numbers.
 * - Identical answers and no header (models left out of LiteLLM's forwarding list): nothing tells the calls
 *   apart, so nothing is joined or corrected, and every record says `by: 'none'` with the reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TrueUsage } from '../../examples/mock-upstream/types.js'
import { startProxy, type Sidecar, type UsageRecord } from '@usagewire/proxy'
import { waitFor } from '../matrix/upstream.js'
import { startLiteLLM, startRelay, type LiteLLM, type Relay } from './litellm.js'
import { CACHE_HIT, startMockAnthropic, type MockAnthropic } from './mock-anthropic.js'
import { barrier, CACHED, startMockOpenAI, type MockOpenAI, type RecordedRequest } from './mock-openai.js'
import { peerOrSkip, PEERS } from './python.js'
import { anthropicHeaders, postSse, textOf, type SseEvent } from './sse.js'

const N = 16
const SAME_TEXT = 'Every one of you gets this very same answer.'

/** The index a prompt names (`request #7`), if any. */
function indexOf(request: RecordedRequest): number | undefined {
  const found = /request #(\d+)/.exec(JSON.stringify(request.body))
  return found ? Number(found[1]) : undefined
}

const distinctText = (i: number) => `Answer ${i}: ${'lorem ipsum '.repeat(1 + (i % 4))}done with number ${i}.`

/** Each index's truth: every bucket differs from every other index's. */
const responsesTruth = (i: number): TrueUsage => ({
  input: 200 + i,
  cacheRead: 1024 + 64 * i,
  cacheWrite: 0,
  output: 20 + i,
  reasoning: 0,
})
const messagesTruth = (i: number): TrueUsage => ({
  input: 7 + i,
  cacheRead: 1802 + 10 * i,
  cacheWrite: i % 3 === 0 ? 100 + i : 0,
  output: 16 + i,
  reasoning: 0,
})

/** Keeps each batch's requests at the mock until the whole batch is there. */
let batch: { arrive(): Promise<void> } | undefined

let unavailable = 'not started'
let openai: MockOpenAI
let anthropic: MockAnthropic
let relay: Relay
let responsesSide: Sidecar
let messagesSide: Sidecar
let litellm: LiteLLM | undefined

beforeAll(async () => {
  const peer = await peerOrSkip(PEERS.litellm)
  if ('skip' in peer) {
    unavailable = peer.skip
    return
  }
  const before = () => batch?.arrive() ?? Promise.resolve()
  openai = await startMockOpenAI({
    eventDelayMs: 5,
    before,
    answer: (request) => {
      const i = indexOf(request)
      return i === undefined ? { text: SAME_TEXT, usage: CACHED } : { text: distinctText(i), usage: responsesTruth(i) }
    },
  })
  anthropic = await startMockAnthropic({
    eventDelayMs: 5,
    before,
    answer: (request) => {
      const i = indexOf(request)
      return i === undefined
        ? { text: SAME_TEXT, usage: CACHE_HIT }
        : { text: distinctText(i), usage: messagesTruth(i) }
    },
  })
  relay = await startRelay()
  // The client's index rides in a header the sidecar turns into a record attribute.
  const sides = {
    listen: '127.0.0.1:0',
    target: relay.url,
    providerListen: '127.0.0.1:0',
    attributes: (request: { headers?: (name: string) => unknown }) => ({
      index: String(request.headers?.('x-test-index')),
    }),
  }
  responsesSide = await startProxy({ ...sides, provider: openai.url })
  messagesSide = await startProxy({ ...sides, provider: anthropic.url })
  const bridge = { model: 'openai/gpt-5-mini', api_base: `${responsesSide.providerUrl}/v1`, api_key: 'sk-mock' }
  const claude = {
    model: 'anthropic/claude-sonnet-4-5-20250929',
    api_base: messagesSide.providerUrl,
    api_key: 'sk-ant-mock',
  }
  litellm = await startLiteLLM(peer, {
    model_list: [
      { model_name: 'bridge', litellm_params: bridge },
      { model_name: 'claude', litellm_params: claude },
      { model_name: 'bridge-quiet', litellm_params: bridge },
      { model_name: 'claude-quiet', litellm_params: claude },
    ],
    // Client headers reach the provider for these models only.
    litellm_settings: { model_group_settings: { forward_client_headers_to_llm_api: ['bridge', 'claude'] } },
  })
  relay.pointAt(litellm.url)
  console.log(`LiteLLM ${PEERS.litellm.version} ready in ${litellm.startMs} ms`)
}, 15 * 60_000)

afterAll(async () => {
  await litellm?.stop()
  await responsesSide?.close()
  await messagesSide?.close()
  await relay?.close()
  await openai?.close()
  await anthropic?.close()
})

interface Seen {
  index: number
  streaming: boolean
  status: number
  text: string
  /** The JSON body's usage, or the final `message_delta`'s. */
  usage: Record<string, number>
  events?: SseEvent[]
}

/** One client request `i` through `side`: streamed for even `i`, JSON for odd. */
async function send(side: Sidecar, model: string, i: number, prompt: string): Promise<Seen> {
  const streaming = i % 2 === 0
  const headers = { ...anthropicHeaders(litellm!.masterKey), 'x-test-index': String(i) }
  const body = { model, max_tokens: 64, stream: streaming, messages: [{ role: 'user', content: prompt }] }
  if (streaming) {
    const answer = await postSse(`${side.url}/v1/messages`, headers, body)
    const delta = answer.events.filter((e) => e.event === 'message_delta').at(-1)
    return {
      index: i,
      streaming,
      status: answer.status,
      text: textOf(answer.events),
      usage: delta?.data.usage,
      events: answer.events,
    }
  }
  const res = await fetch(`${side.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  const json = (await res.json()) as { content?: Array<{ text?: string }>; usage: Record<string, number> }
  return { index: i, streaming, status: res.status, text: json.content?.[0]?.text ?? '', usage: json.usage }
}

/** A batch of N concurrent requests through `side`, and the N records it left, by index. */
async function run(side: Sidecar, model: string, prompt: (i: number) => string) {
  const before = side.records.length
  batch = barrier(N)
  const seen = await Promise.all(Array.from({ length: N }, (_, i) => send(side, model, i, prompt(i))))
  batch = undefined
  const records = await waitFor(
    () => side.records.length >= before + N && side.records.slice(before, before + N),
    `${N} records`,
  )
  const byIndex = new Map<number, UsageRecord>(records.map((r) => [Number(r.attributes?.index), r]))
  expect([...byIndex.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i))
  return { seen, records: byIndex }
}

/** What each client read and what its record says, in one comparable row per request. */
function rows(seen: Seen[], records: Map<number, UsageRecord>) {
  return seen.map((client) => {
    const record = records.get(client.index)!
    return {
      index: client.index,
      streaming: client.streaming,
      status: client.status,
      text: client.text,
      client: {
        input_tokens: client.usage?.input_tokens,
        cache_read_input_tokens: client.usage?.cache_read_input_tokens ?? 0,
        cache_creation_input_tokens: client.usage?.cache_creation_input_tokens ?? 0,
        output_tokens: client.usage?.output_tokens,
      },
      record: {
        streaming: record.streaming,
        input: record.usage.input,
        cacheRead: record.usage.cacheRead,
        cacheWrite: record.usage.cacheWrite,
        output: record.usage.output,
        tapped: record.sources.cacheRead.startsWith('tap:'),
        correlation: record.correlation?.by,
      },
    }
  })
}

/** The row of request `i` when the client and the record both have `truth`, joined `by`. */
const joined = (i: number, text: string, truth: TrueUsage, by: string) => ({
  index: i,
  streaming: i % 2 === 0,
  status: 200,
  text,
  client: {
    input_tokens: truth.input,
    cache_read_input_tokens: truth.cacheRead,
    cache_creation_input_tokens: truth.cacheWrite,
    output_tokens: truth.output,
  },
  record: {
    streaming: i % 2 === 0,
    input: truth.input,
    cacheRead: truth.cacheRead,
    cacheWrite: truth.cacheWrite,
    output: truth.output,
    tapped: true,
    correlation: by,
  },
})

const indices = Array.from({ length: N }, (_, i) => i)

describe(`${N} concurrent requests, each with its own answer`, () => {
  it('over the Responses bridge (no header passes): joined by content, each client gets its own numbers', async ({
    skip,
  }) => {
    skip(!litellm, unavailable)
    const { seen, records } = await run(responsesSide, 'bridge', (i) => `Tell me about request #${i}.`)
    const sent = openai.requests.slice(-N)
    expect(sent.map(indexOf).sort((a, b) => a! - b!)).toEqual(indices)
    expect(rows(seen, records)).toEqual(indices.map((i) => joined(i, distinctText(i), responsesTruth(i), 'content')))
  })

  it('over Anthropic (LiteLLM forwards x- headers): joined by header, each client gets its own numbers', async ({
    skip,
  }) => {
    skip(!litellm, unavailable)
    const { seen, records } = await run(messagesSide, 'claude', (i) => `Tell me about request #${i}.`)
    const sent = anthropic.requests.slice(-N)
    expect(sent.map(indexOf).sort((a, b) => a! - b!)).toEqual(indices)
    // LiteLLM forwarded the client's x- headers; the sidecar removed its own before the provider.
    for (const request of sent) {
      expect(request.headers['x-usagewire-correlation']).toBeUndefined()
      expect(request.headers['x-test-index']).toBe(String(indexOf(request)))
    }
    expect(rows(seen, records)).toEqual(indices.map((i) => joined(i, distinctText(i), messagesTruth(i), 'header')))
  })
})

/**
 * Nothing from the provider's side reached a record that was not joined: no value LiteLLM sent was changed.
 * (A stream's final `message_delta` may gain the cache fields its own `message_start` carried, 0: usagewire
 * completes the last usage block from the stream itself, docs/dialects/anthropic-messages.md#writing.)
 */
function expectUnjoined(record: UsageRecord): void {
  expect(record.correlation?.by).toBe('none')
  expect(record.correlation?.reason).toMatch(/\S/)
  expect(Object.values(record.sources).filter((source) => source.startsWith('tap:'))).toEqual([])
  for (const correction of record.corrections) expect(correction).toMatchObject({ from: null, to: 0 })
}

describe(`${N} concurrent requests, identical answers, no header correlation`, () => {
  it('over the Responses bridge: nothing joined or corrected; clients keep LiteLLM’s input 1234, cache 0', async ({
    skip,
  }) => {
    skip(!litellm, unavailable)
    const { seen, records } = await run(responsesSide, 'bridge-quiet', (i) => `Say the same thing (${i}).`)
    expect(openai.requests.slice(-N).map((r) => r.usage)).toEqual(Array(N).fill(CACHED))
    for (const client of seen) {
      expect(client.text).toBe(SAME_TEXT)
      // LiteLLM's own numbers: the provider's 1024 cached tokens stay inside input_tokens.
      expect(client.usage, `client ${client.index}`).toMatchObject({ input_tokens: 1234, output_tokens: 56 })
      expect(client.usage.cache_read_input_tokens ?? 0).toBe(0)
      const record = records.get(client.index)!
      expectUnjoined(record)
      expect(record.usage).toMatchObject({ input: 1234, cacheRead: 0, output: 56 })
    }
  })

  it('over Anthropic with the header not forwarded: nothing joined or corrected; the records say why', async ({
    skip,
  }) => {
    skip(!litellm, unavailable)
    const { seen, records } = await run(messagesSide, 'claude-quiet', (i) => `Say the same thing (${i}).`)
    const sent = anthropic.requests.slice(-N)
    expect(sent.map((r) => r.usage)).toEqual(Array(N).fill(CACHE_HIT))
    expect(sent.every((r) => r.headers['x-test-index'] === undefined)).toBe(true)
    for (const client of seen) {
      expect(client.text).toBe(SAME_TEXT)
      // LiteLLM passes Anthropic's numbers on as they are; usagewire left them alone.
      expect(client.usage, `client ${client.index}`).toMatchObject({
        input_tokens: 7,
        cache_read_input_tokens: 1802,
        output_tokens: 16,
      })
      const record = records.get(client.index)!
      expectUnjoined(record)
      expect(record.usage).toMatchObject({ input: 7, cacheRead: 1802, output: 16 })
    }
  })
})
