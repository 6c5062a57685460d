/**
 * A real Portkey gateway translating OpenAI Chat to Anthropic Messages, in front of a usagewire gateway:
 *
 *   openai SDK → Portkey (provider anthropic, custom host) → Express + usagewire + http-proxy-middleware
 *     → mock Anthropic
 *
 * The mock plays a translating upstream: `message_start` with zeros, the totals only on the final
 * `message_delta` (docs/dialects/anthropic-messages.md#anthropic-compatible-translators). Portkey reads input
 * and cache from `message_start` alone, so what its client sees depends on what `message_start` carries
 * when it leaves usagewire (`messageStart` option). Portkey's Anthropic → OpenAI mapping, which every
 * expected number below follows:
 *
 * - stream, `message_start`: remembers `prompt_tokens = input_tokens`, plus `cache_read_input_tokens` and
 *   `cache_creation_input_tokens` when either is non-zero; it emits a chunk without usage.
 * - stream, `message_delta`: the chunk's usage is what it remembered, `completion_tokens = output_tokens`,
 *   `total_tokens = prompt + cache creation + cache read + output` (the remembered ones),
 *   `prompt_tokens_details.cached_tokens = cache read` (or 0). The delta's own input and cache counts are ignored.
 * - JSON body: the same from `usage`: `prompt_tokens = input_tokens` (the cache left out, docs/peer-bugs.md
 *   row 21), `total_tokens` with the cache, `cached_tokens = cache read`, and both cache fields when either is
 *   non-zero.
 *
 * Portkey is a child process (test/portkey/portkey.ts). When it cannot start, the tests are skipped with the
 * reason printed, and fail with it in CI (CI=true).
 */
import http from 'node:http'
import express from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import OpenAI from 'openai'
import type { CompletionUsage } from 'openai/resources/completions'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { usagewire, type UsageRecord, type UsagewireOptions } from '@usagewire/express'
import { createGate, listen, shut, waitFor, within } from '../matrix/upstream.js'
import { ANTHROPIC_MODEL, anthropicMessage, anthropicStream, JSON_HEADERS, SSE_HEADERS } from '../wire-fixtures.js'
import { startPortkey, type Portkey } from './portkey.js'

const inCI = process.env.CI === 'true'

/** What the translating upstream puts on `message_start` and on its final `message_delta`. */
const START = { input_tokens: 0, output_tokens: 1 }
const TOTALS = {
  input_tokens: 1234,
  cache_read_input_tokens: 1024,
  cache_creation_input_tokens: 200,
  output_tokens: 56,
}
const TEXT = 'Hello, wörld ✓'

/** Portkey's usage from a zero `message_start`: input and cache 0, output from the delta, total = output. */
const FROM_ZERO_START = {
  prompt_tokens: 0,
  completion_tokens: 56,
  total_tokens: 56,
  prompt_tokens_details: { cached_tokens: 0 },
}
/**
 * Portkey's usage from the true input and cache (a `message_start` carrying them, or a JSON body): prompt without
 * the cache, total 1234 + 200 + 1024 + 56.
 */
const FROM_TOTALS = {
  prompt_tokens: 1234,
  completion_tokens: 56,
  total_tokens: 2514,
  prompt_tokens_details: { cached_tokens: 1024 },
  cache_read_input_tokens: 1024,
  cache_creation_input_tokens: 200,
}
/** What usagewire's record holds whenever it saw the whole stream or body. */
const RECORD_USAGE = { input: 1234, cacheRead: 1024, cacheWrite: 200, output: 56 }

// ---------------------------------------------------------------------------------------------------------
// The chain's other hops

interface Mock {
  url: string
  requests: Array<{ url: string; body: { stream?: boolean; model?: string } }>
  /** The stream waits on this before its final `message_delta`. */
  beforeDelta: Promise<void>
  /** The final `message_delta` has been written. */
  deltaSent: boolean
  close(): Promise<void>
}

/** A mock Anthropic Messages upstream: every event its own write, the final `message_delta` after `beforeDelta`. */
async function startMock(): Promise<Mock> {
  const server = http.createServer(async (req, res) => {
    let raw = ''
    for await (const part of req) raw += part
    const body = JSON.parse(raw) as Mock['requests'][number]['body']
    mock.requests.push({ url: req.url ?? '', body })
    if (!body.stream) {
      res.writeHead(200, JSON_HEADERS)
      res.end(JSON.stringify(anthropicMessage(TOTALS, TEXT)))
      return
    }
    res.writeHead(200, SSE_HEADERS)
    res.flushHeaders()
    for (const event of anthropicStream({ start: START, delta: TOTALS, texts: ['Hello', ', wörld ✓'] })) {
      const isDelta = event.startsWith('event: message_delta')
      if (isDelta) await mock.beforeDelta
      if (res.destroyed) return
      await new Promise<void>((resolve) => res.write(event, () => resolve()))
      if (isDelta) mock.deltaSent = true
    }
    res.end()
  })
  const mock: Mock = {
    url: await listen(server),
    requests: [],
    beforeDelta: Promise.resolve(),
    deltaSent: false,
    close: () => shut(server),
  }
  return mock
}

interface Gateway {
  url: string
  records: UsageRecord[]
  close(): Promise<void>
}

/** Express + usagewire + http-proxy-middleware in front of `target`: examples/express-gateway/gateway.ts, smaller. */
async function startUsagewire(target: string, options: UsagewireOptions = {}): Promise<Gateway> {
  const records: UsageRecord[] = []
  const app = express()
  app.use(usagewire({ ...options, onUsage: (record) => records.push(record) }))
  app.use(createProxyMiddleware({ target }))
  const server = http.createServer(app)
  return { url: await listen(server), records, close: () => shut(server) }
}

// ---------------------------------------------------------------------------------------------------------
// Rig

let portkey: Portkey | undefined
let unavailable = 'not started'
const closers: Array<() => Promise<void>> = []

beforeAll(async () => {
  try {
    portkey = await startPortkey()
  } catch (error) {
    unavailable = (error as Error).message
    if (inCI) throw new Error(`CI=true: Portkey must start: ${unavailable}`)
    console.warn(`test/portkey/portkey.test.ts skipped: Portkey could not start: ${unavailable}`)
  }
}, 30_000)

afterAll(async () => {
  await portkey?.stop()
})

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

interface Chain {
  mock: Mock
  gateway?: Gateway
  client: OpenAI
}

/**
 * A fresh mock, a usagewire gateway in front of it when `options` are given, and an OpenAI client whose Portkey calls
 * the nearer of the two.
 */
async function chain(options?: UsagewireOptions): Promise<Chain> {
  const mock = await startMock()
  closers.push(mock.close)
  let gateway: Gateway | undefined
  if (options) {
    gateway = await startUsagewire(mock.url, options)
    closers.push(gateway.close)
  }
  const client = new OpenAI({
    apiKey: 'x',
    baseURL: `${portkey!.url}/v1`,
    defaultHeaders: {
      'x-portkey-provider': 'anthropic',
      'x-portkey-custom-host': `${(gateway ?? mock).url}/v1`,
    },
    maxRetries: 0,
  })
  return { mock, gateway, client }
}

type PortkeyUsage = CompletionUsage & { cache_read_input_tokens?: number; cache_creation_input_tokens?: number }

interface Streamed {
  text: string
  usage: PortkeyUsage | undefined
  /** Whether the upstream had already sent its final `message_delta` when the first chunk reached the client. */
  deltaSentAtFirstChunk: boolean
}

/**
 * Streams one chat completion. The upstream holds its final `message_delta` until the client has its first
 * chunk (or a second has passed): a `message_start` that goes straight through reaches the client before the
 * totals exist anywhere, and one that is held can only arrive after them.
 */
async function stream({ mock, client }: Chain): Promise<Streamed> {
  const gate = createGate()
  const timer = setTimeout(gate.open, 1_000)
  mock.beforeDelta = gate.promise
  try {
    const chunks = await client.chat.completions.create({
      model: ANTHROPIC_MODEL,
      max_tokens: 64,
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    let text = ''
    let usage: PortkeyUsage | undefined
    let deltaSentAtFirstChunk: boolean | undefined
    const read = async () => {
      for await (const chunk of chunks) {
        if (deltaSentAtFirstChunk === undefined) {
          deltaSentAtFirstChunk = mock.deltaSent
          gate.open()
        }
        text += chunk.choices[0]?.delta.content ?? ''
        if (chunk.usage) usage = chunk.usage as PortkeyUsage
      }
    }
    await within(read(), 10_000, 'the stream did not end')
    return { text, usage, deltaSentAtFirstChunk: deltaSentAtFirstChunk ?? false }
  } finally {
    clearTimeout(timer)
  }
}

function expectUpstreamCalled(mock: Mock, streaming: boolean): void {
  expect(mock.requests).toHaveLength(1)
  expect(mock.requests[0]!.url).toBe('/v1/messages')
  expect(mock.requests[0]!.body.stream ?? false).toBe(streaming)
}

// ---------------------------------------------------------------------------------------------------------

describe('Portkey (OpenAI Chat → Anthropic) in front of usagewire, upstream with a zero message_start', () => {
  it('baseline, Portkey straight to the upstream: prompt_tokens and cached_tokens 0, from message_start', async ({
    skip,
  }) => {
    skip(!portkey, `Portkey could not start: ${unavailable}`)
    const rig = await chain()
    const seen = await stream(rig)

    expectUpstreamCalled(rig.mock, true)
    expect(seen.text).toBe(TEXT)
    expect(seen.deltaSentAtFirstChunk).toBe(false)
    // The totals were on the wire, in message_delta; Portkey took input and cache from message_start.
    expect(seen.usage).toEqual(FROM_ZERO_START)
  })

  it("default messageStart ('patch-final'): the client still sees 0, the record has the truth", async ({ skip }) => {
    skip(!portkey, `Portkey could not start: ${unavailable}`)
    const rig = await chain({})
    const seen = await stream(rig)

    expectUpstreamCalled(rig.mock, true)
    expect(seen.text).toBe(TEXT)
    // message_start left before the totals existed: nothing better than its zeros was known to write into it.
    expect(seen.deltaSentAtFirstChunk).toBe(false)
    // The final message_delta is complete, but Portkey does not read input or cache from it: the trade-off
    // of streaming message_start through as it comes.
    expect(seen.usage).toEqual(FROM_ZERO_START)
    const record = await waitFor(() => rig.gateway!.records[0], 'the usage record')
    expect(record).toMatchObject({ status: 'complete', streaming: true, final: true, usage: RECORD_USAGE })
  })

  it("messageStart 'hold': prompt_tokens and cached tokens exact per Portkey's mapping, text intact", async ({
    skip,
  }) => {
    skip(!portkey, `Portkey could not start: ${unavailable}`)
    const rig = await chain({ messageStart: 'hold' })
    const seen = await stream(rig)

    expectUpstreamCalled(rig.mock, true)
    expect(seen.text).toBe(TEXT)
    // Held: nothing reached the client before the upstream's totals.
    expect(seen.deltaSentAtFirstChunk).toBe(true)
    expect(seen.usage).toEqual(FROM_TOTALS)
    const record = await waitFor(() => rig.gateway!.records[0], 'the usage record')
    expect(record).toMatchObject({ status: 'complete', streaming: true, final: true, usage: RECORD_USAGE })
  })

  it.for([
    ['the default messageStart', {}],
    ["messageStart 'hold'", { messageStart: 'hold' }],
  ] as Array<[string, UsagewireOptions]>)(
    'not streamed, through usagewire with %s: exact',
    async ([, options], { skip }) => {
      skip(!portkey, `Portkey could not start: ${unavailable}`)
      const rig = await chain(options)
      const completion = await rig.client.chat.completions.create({
        model: ANTHROPIC_MODEL,
        max_tokens: 64,
        messages: [{ role: 'user', content: 'hi' }],
      })

      expectUpstreamCalled(rig.mock, false)
      expect(completion.choices[0]!.message.content).toBe(TEXT)
      expect(completion.usage).toEqual(FROM_TOTALS)
      const record = await waitFor(() => rig.gateway!.records[0], 'the usage record')
      expect(record).toMatchObject({ status: 'complete', streaming: false, final: true, usage: RECORD_USAGE })
    },
  )
})
