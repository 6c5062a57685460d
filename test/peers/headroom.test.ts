/**
 * The first field report, with the real peer: Headroom (`headroom-ai[proxy,bedrock]`) as an Anthropic API
 * proxy with a Bedrock backend, in four versions: 0.27.0 (the same streaming usage code as the 0.26.0 the
 * report names), 0.28.0, 0.39.0 and 0.42.0 (the newest that installs). Headroom calls Bedrock through
 * LiteLLM, which states no prompt count before the answer ends, and each version fills the gap differently
 * (docs/peer-bugs.md row 1).
 *
 * Each test first shows what a client sees through Headroom alone, then through the usagewire sidecar:
 * client → sidecar → Headroom → the sidecar's provider-facing listener (Headroom's Bedrock runtime
 * endpoint) → mock Bedrock. The mock reports input 1234, cache read 3000, cache write 200, output 56 on
 * every answer, on all four runtime routes; which one Headroom's LiteLLM calls depends on the model id (a
 * dated id it finds among the inference profiles goes to Converse, a bare alias to InvokeModel).
 *
 * What each client read (input/cache read/cache write/output; – where the field is absent; "est." is
 * Headroom's own estimate of the prompt it sent: 11 and 10 for the SDK's Converse and InvokeModel requests,
 * 11 for both in 0.28, thousands for Claude Code's; 4434 is the input with both cache buckets added in; 4
 * the number of text chunks; "held" the sidecar with `messageStart: 'hold'`, which the default leaves as
 * it came):
 *
 * | version | client                      | without usagewire | with the sidecar    |
 * | ------- | --------------------------- | ----------------- | ------------------- |
 * | 0.27    | SDK stream (`finalMessage`) | 0/–/–/4           | 1234/3000/200/56    |
 * | 0.27    | SDK JSON                    | 4434/–/–/56       | 1234/3000/200/56    |
 * | 0.27    | raw `message_start`         | 0/–/–/0           | held: 1234/3000/200 |
 * | 0.27    | Claude Code                 | 0/0/0/4           | 1234/3000/200/56    |
 * | 0.28    | SDK stream (`finalMessage`) | est./–/–/4        | 1234/3000/200/56    |
 * | 0.28    | SDK JSON                    | 4434/–/–/56       | 1234/3000/200/56    |
 * | 0.28    | raw `message_start`         | est./–/–/0        | held: 1234/3000/200 |
 * | 0.28    | Claude Code                 | est./0/0/4        | 1234/3000/200/56    |
 * | 0.39    | SDK stream (`finalMessage`) | 4434/3000/200/4   | 1234/3000/200/56    |
 * | 0.39    | SDK JSON                    | 1234/3000/200/56  | 1234/3000/200/56    |
 * | 0.39    | raw `message_start`         | est./–/–/0        | held: 1234/3000/200 |
 * | 0.39    | Claude Code                 | 4434/3000/200/4   | 1234/3000/200/56    |
 * | 0.42    | SDK stream (`finalMessage`) | 1234/3000/200/56  | 1234/3000/200/56    |
 * | 0.42    | SDK JSON                    | 1234/3000/200/56  | 1234/3000/200/56    |
 * | 0.42    | raw `message_start`         | est./–/–/0        | held: 1234/3000/200 |
 * | 0.42    | Claude Code                 | 1234/3000/200/56  | 1234/3000/200/56    |
 *
 * So 0.42 alone is right in `message_delta` and in JSON; its `message_start` still states an estimate and
 * no cache fields, which readers of `message_start` alone take for the prompt's count. The SDK keeps
 * `message_start`'s usage and lets each field `message_delta` states replace it; Claude Code 2.1 does the
 * same.
 *
 * Headroom passes no client header on to Bedrock: for the Bedrock backend, `LiteLLMBackend` uses the
 * request headers only to take an API key for providers that do not authenticate from the environment
 * (Bedrock is not one of them) and calls `litellm.acompletion` without `extra_headers`; LiteLLM then signs
 * a request with its own headers. So the sidecar's correlation header never reaches its provider-facing
 * listener (the first test shows it dropped on the wire), and the sidecar joins requests to Headroom's
 * calls otherwise: by content (the text each client receives is its provider answer's, on every route,
 * streamed or not), the strongest way left.
 *
 * Each version starts Headroom three times, in parallel: alone, behind the sidecar, and behind a sidecar
 * that holds `message_start`. The versions run one after the other.
 */
import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest'
import { startProxy, type Sidecar, type UsageRecord } from '@usagewire/proxy'
import { jsonUsage, probeClaudeCode, runClaudeCode, type ClaudeCodeRun } from '../clients/claude-code.js'
import { waitFor } from '../matrix/upstream.js'
import { freePort } from './child.js'
import { startHeadroom, startRecorder, type Headroom } from './headroom.js'
import {
  BEDROCK_DELTAS,
  BEDROCK_TEXT,
  BEDROCK_TRUTH,
  deltasFor,
  INFERENCE_PROFILES,
  startMockBedrock,
  type BedrockRoute,
  type MockBedrock,
} from './mock-bedrock.js'
import { PEERS, peerOrSkip, type Peer, type PeerSpec } from './python.js'
import { anthropicHeaders, parseSse, postSse, textOf, type SseEvent } from './sse.js'

type Join = 'content' | 'single'

const T = BEDROCK_TRUTH
/** The provider's numbers as an Anthropic client reads them. */
const SDK_TRUTH = {
  input_tokens: T.input,
  cache_read_input_tokens: T.cacheRead,
  cache_creation_input_tokens: T.cacheWrite,
  output_tokens: T.output,
}
/** The provider's numbers as Claude Code reports them (`cacheCreation` is the cache write). */
const CLAUDE_CODE_TRUTH = { input: T.input, cacheRead: T.cacheRead, cacheCreation: T.cacheWrite, output: T.output }

/**
 * The two route families: a dated Claude id is among the inference profiles the control plane lists and
 * goes to Converse (its `:` URL-encoded in the path); a bare alias is not, Headroom sends it as
 * `us.anthropic.<alias>-v1:0`, which LiteLLM's model map does not list, and it goes to InvokeModel
 * (the `:` raw in the path). `streamJoin` and `jsonJoin`: how the sidecar joins a request on that route
 * to Headroom's call (by content where it reads the provider's text).
 */
const FAMILIES = [
  {
    family: 'converse',
    model: 'claude-haiku-4-5-20251001',
    modelId: 'us.anthropic.claude-haiku-4-5-20251001-v1:0',
    pathId: 'us.anthropic.claude-haiku-4-5-20251001-v1%3A0',
    streamRoute: 'converse-stream',
    jsonRoute: 'converse',
    streamJoin: 'content',
    jsonJoin: 'content',
  },
  {
    family: 'invoke',
    model: 'claude-sonnet-4-6',
    modelId: 'us.anthropic.claude-sonnet-4-6-v1:0',
    pathId: 'us.anthropic.claude-sonnet-4-6-v1:0',
    streamRoute: 'invoke-with-response-stream',
    jsonRoute: 'invoke',
    streamJoin: 'content',
    jsonJoin: 'content',
  },
] as const satisfies ReadonlyArray<{
  family: string
  model: string
  modelId: string
  pathId: string
  streamRoute: BedrockRoute
  jsonRoute: BedrockRoute
  streamJoin: Join
  jsonJoin: Join
}>

type Family = (typeof FAMILIES)[number]['family']

/** What a client reads through one Headroom version alone, on the wire. */
interface Version {
  peer: PeerSpec
  /** 0.39+ open each stream with a `ping` event of their own, before `message_start`. */
  ping: boolean
  /**
   * `message_start`'s `input_tokens` for the SDK's request on each route family, and for a request that
   * asks for a word of its own (`tagged`, on Converse): 0, or from 0.28 on Headroom's own estimate of the
   * prompt it sent (its character estimator, test/peers/headroom.ts).
   */
  estimate: Record<Family | 'tagged', number>
  /** The final `message_delta`'s usage. */
  delta: Record<string, number>
  /** The usage of a JSON answer. */
  json: Record<string, number>
}

const CHUNKS = BEDROCK_DELTAS.length
/** The provider's input with both cache buckets added in: 4434. */
const SUMMED = T.input + T.cacheRead + T.cacheWrite

const VERSIONS: Version[] = [
  {
    peer: PEERS.headroom,
    ping: false,
    estimate: { converse: 0, invoke: 0, tagged: 0 },
    delta: { output_tokens: CHUNKS },
    json: { input_tokens: SUMMED, output_tokens: T.output },
  },
  {
    peer: PEERS.headroom028,
    ping: false,
    estimate: { converse: 11, invoke: 11, tagged: 15 },
    delta: { output_tokens: CHUNKS },
    json: { input_tokens: SUMMED, output_tokens: T.output },
  },
  {
    peer: PEERS.headroom039,
    ping: true,
    estimate: { converse: 11, invoke: 10, tagged: 15 },
    delta: {
      output_tokens: CHUNKS,
      input_tokens: SUMMED,
      cache_read_input_tokens: T.cacheRead,
      cache_creation_input_tokens: T.cacheWrite,
    },
    json: SDK_TRUTH,
  },
  {
    peer: PEERS.headroomNewest,
    ping: true,
    estimate: { converse: 11, invoke: 10, tagged: 15 },
    delta: SDK_TRUTH,
    json: SDK_TRUTH,
  },
]

/** The SDK's accumulated usage: `message_start`'s, each field `message_delta` states replacing it. */
const sdkStream = (version: Version, prompt: Family | 'tagged') => ({
  input_tokens: version.estimate[prompt],
  output_tokens: 0,
  ...version.delta,
})

/** The events of one stream: the text in one chunk per delta. */
const eventNames = (version: Version) =>
  (version.ping ? ['ping'] : [])
    .concat(['message_start', 'content_block_start'])
    .concat(BEDROCK_DELTAS.map(() => 'content_block_delta'))
    .concat(['content_block_stop', 'message_delta', 'message_stop'])

/** A request; with `word`, the mock's answer ends in it instead of `Bedrock.`. */
const request = (model: string, word?: string) => ({
  model,
  max_tokens: 64,
  messages: [{ role: 'user' as const, content: word === undefined ? 'Say hello.' : `Say hello. [reply:${word}]` }],
})

const sdk = (baseURL: string) => new Anthropic({ baseURL, apiKey: 'sk-ant-fake', maxRetries: 0 })

/** The four counts an Anthropic client accumulates, as the SDK reports them. */
const fourCounts = (usage: Anthropic.Usage) => ({
  input_tokens: usage.input_tokens,
  cache_read_input_tokens: usage.cache_read_input_tokens,
  cache_creation_input_tokens: usage.cache_creation_input_tokens,
  output_tokens: usage.output_tokens,
})

/** A streaming request: every event as it came. */
async function rawStream(url: string, model: string, headers: Record<string, string> = {}): Promise<SseEvent[]> {
  const answer = await postSse(
    `${url}/v1/messages`,
    { ...anthropicHeaders('x'), ...headers },
    { ...request(model), stream: true },
  )
  expect(answer.status).toBe(200)
  return answer.events
}

const usageOf = (events: SseEvent[], name: 'message_start' | 'message_delta') => {
  const event = events.find((e) => e.event === name)
  return name === 'message_start' ? event?.data.message.usage : event?.data.usage
}

/** The runtime calls a mock got while `run` ran. */
async function callsDuring(mock: MockBedrock, run: () => Promise<unknown>) {
  const before = mock.runtime().length
  await run()
  return mock.runtime().slice(before)
}

/** The record of the next client request through `sidecar`: waits for the one after the records there are now. */
function nextRecord(sidecar: Sidecar): () => Promise<UsageRecord> {
  const n = sidecar.records.length
  return () => waitFor(() => sidecar.records[n], `usage record #${n + 1}`)
}

/** A record with the provider's numbers, each read on the provider side, joined `by`. */
function expectProviderRecord(record: UsageRecord, streaming: boolean, by: Join) {
  expect(record).toMatchObject({ route: '/v1/messages', status: 'complete', streaming })
  expect(record.usage).toMatchObject({
    input: T.input,
    cacheRead: T.cacheRead,
    cacheWrite: T.cacheWrite,
    output: T.output,
  })
  for (const field of ['input', 'cacheRead', 'cacheWrite', 'output'] as const)
    expect(record.sources[field], `sources.${field}`).toMatch(/^tap:/)
  expect(record.correlation).toMatchObject({ by })
}

const probe = await probeClaudeCode()

function expectSuccess(run: ClaudeCodeRun) {
  expect(run.exitCode, `claude exited ${run.exitCode}: ${run.stderr}`).toBe(0)
  expect(run.json).toMatchObject({ type: 'result', is_error: false, result: BEDROCK_TEXT })
}

interface Fixed {
  sidecar: Sidecar
  headroom: Headroom
  close(): Promise<void>
}

/** Headroom behind a sidecar that is also its Bedrock runtime endpoint. */
async function behindSidecar(peer: Peer, mock: MockBedrock, messageStart?: 'hold'): Promise<Fixed> {
  const port = await freePort()
  const sidecar = await startProxy({
    listen: '127.0.0.1:0',
    target: `http://127.0.0.1:${port}`,
    providerListen: '127.0.0.1:0',
    provider: mock.url,
    maxWaitMs: 2000,
    ...(messageStart ? { messageStart } : {}),
  })
  try {
    // The control plane (ListInferenceProfiles, at startup) is no LLM call: straight to the mock.
    const headroom = await startHeadroom(peer, { runtimeUrl: sidecar.providerUrl!, controlPlaneUrl: mock.url, port })
    const close = async () => {
      await headroom.close()
      await sidecar.close(0)
    }
    return { sidecar, headroom, close }
  } catch (error) {
    await sidecar.close(0)
    throw error
  }
}

describe.each(VERSIONS.map((version) => [version.peer.version, version] as const))(
  'Headroom %s with a Bedrock backend',
  (_, version) => {
    let skip: string | undefined
    const mocks = {} as Record<'plain' | 'fixed' | 'held', MockBedrock>
    let plain: Headroom
    let fixed: Fixed
    let held: Fixed
    const closers: Array<() => Promise<void>> = []

    beforeAll(async () => {
      const peer = await peerOrSkip(version.peer)
      if ('skip' in peer) {
        skip = peer.skip
        return
      }
      for (const name of ['plain', 'fixed', 'held'] as const) {
        mocks[name] = await startMockBedrock()
        closers.push(mocks[name].close)
      }
      // All three start at once; whatever started is closed after, even when another failed.
      const started = await Promise.allSettled([
        startHeadroom(peer, { runtimeUrl: mocks.plain.url }).then((h) => (plain = h)),
        behindSidecar(peer, mocks.fixed).then((f) => (fixed = f)),
        behindSidecar(peer, mocks.held, 'hold').then((f) => (held = f)),
      ])
      for (const result of started) if (result.status === 'fulfilled') closers.push(result.value.close)
      const failed = started.find((result) => result.status === 'rejected')
      if (failed) throw failed.reason
    }, 15 * 60_000)

    afterAll(async () => {
      await Promise.all(closers.map((close) => close()))
    }, 30_000)

    const needsPeer = (ctx: TestContext) => {
      if (skip) ctx.skip()
    }

    it('asks the control plane for the inference profiles at startup, and passes no client header on to Bedrock', async (ctx) => {
      needsPeer(ctx)
      for (const mock of Object.values(mocks)) {
        expect(mock.requests[0]).toMatchObject({ method: 'GET', path: '/inference-profiles?type=SYSTEM_DEFINED' })
      }
      const calls = await callsDuring(mocks.plain, () =>
        rawStream(plain.url, FAMILIES[0].model, { 'x-usagewire-correlation': 'probe-1', 'x-client-probe': 'probe-2' }),
      )
      expect(calls.length).toBe(1)
      expect(calls[0]!.headers['user-agent']).toMatch(/^litellm\//)
      expect(calls[0]!.headers['x-usagewire-correlation']).toBeUndefined()
      expect(calls[0]!.headers['x-client-probe']).toBeUndefined()
      expect(Object.values(calls[0]!.headers).join('\n')).not.toMatch(/probe-/)
    })

    describe.each(FAMILIES)('$family routes ($model)', (family) => {
      const { model, modelId, pathId, streamRoute, jsonRoute, streamJoin, jsonJoin } = family
      it('Anthropic SDK, streaming: what Headroom states; with the sidecar, the provider’s numbers', async (ctx) => {
        needsPeer(ctx)
        let message!: Anthropic.Message
        const calls = await callsDuring(mocks.plain, async () => {
          message = await sdk(plain.url).messages.stream(request(model)).finalMessage()
        })
        expect(calls.map((c) => [c.route, c.modelId])).toEqual([[streamRoute, modelId]])
        expect(calls[0]!.path).toBe(`/model/${pathId}/${streamRoute}`)
        expect(message.content).toEqual([{ type: 'text', text: BEDROCK_TEXT }])
        expect(message.usage).toEqual(sdkStream(version, family.family))

        const record = nextRecord(fixed.sidecar)
        const fixedCalls = await callsDuring(mocks.fixed, async () => {
          message = await sdk(fixed.sidecar.url).messages.stream(request(model)).finalMessage()
        })
        expect(fixedCalls.map((c) => c.route)).toEqual([streamRoute])
        expect(message.content).toEqual([{ type: 'text', text: BEDROCK_TEXT }])
        expect(fourCounts(message.usage)).toEqual(SDK_TRUTH)
        expectProviderRecord(await record(), true, streamJoin)
      })

      it('Anthropic SDK, not streaming: what Headroom states; with the sidecar, the provider’s numbers', async (ctx) => {
        needsPeer(ctx)
        let message!: Anthropic.Message
        const calls = await callsDuring(mocks.plain, async () => {
          message = await sdk(plain.url).messages.create(request(model))
        })
        expect(calls.map((c) => [c.route, c.modelId])).toEqual([[jsonRoute, modelId]])
        expect(calls[0]!.path).toBe(`/model/${pathId}/${jsonRoute}`)
        expect(message.content).toEqual([{ type: 'text', text: BEDROCK_TEXT }])
        expect(message.usage).toEqual(version.json)

        const record = nextRecord(fixed.sidecar)
        const fixedCalls = await callsDuring(mocks.fixed, async () => {
          message = await sdk(fixed.sidecar.url).messages.create(request(model))
        })
        expect(fixedCalls.map((c) => c.route)).toEqual([jsonRoute])
        expect(message.content).toEqual([{ type: 'text', text: BEDROCK_TEXT }])
        expect(fourCounts(message.usage)).toEqual(SDK_TRUTH)
        expectProviderRecord(await record(), false, jsonJoin)
      })

      it('raw stream: message_start states 0 or an estimate; with message_start held, the provider’s input and cache counts', async (ctx) => {
        needsPeer(ctx)
        const names = eventNames(version)

        const bare = await rawStream(plain.url, model)
        expect(bare.map((e) => e.event)).toEqual(names)
        expect(usageOf(bare, 'message_start')).toEqual({
          input_tokens: version.estimate[family.family],
          output_tokens: 0,
        })
        expect(usageOf(bare, 'message_delta')).toEqual(version.delta)

        const record = nextRecord(held.sidecar)
        const calls = await callsDuring(mocks.held, async () => {
          const events = await rawStream(held.sidecar.url, model)
          expect(events.map((e) => e.event)).toEqual(names)
          expect(textOf(events)).toBe(BEDROCK_TEXT)
          expect(usageOf(events, 'message_start')).toMatchObject({
            input_tokens: T.input,
            cache_read_input_tokens: T.cacheRead,
            cache_creation_input_tokens: T.cacheWrite,
          })
          expect(usageOf(events, 'message_delta')).toMatchObject(SDK_TRUTH)
        })
        expect(calls.map((c) => c.route)).toEqual([streamRoute])
        expectProviderRecord(await record(), true, streamJoin)
      })
    })

    it('Anthropic SDK, three streams at once (ConverseStream): each joined by its text to its own provider call', async (ctx) => {
      needsPeer(ctx)
      const { model, streamRoute } = FAMILIES[0]
      const words = ['alpha', 'bravo', 'charlie']
      const texts = words.map((word) => [{ type: 'text', text: deltasFor(word).join('') }])
      // The mock answers the three together: all three are in flight on both sides of Headroom at once.
      const send = (url: string, mock: MockBedrock) => {
        mock.gather(words.length)
        return Promise.all(words.map((word) => sdk(url).messages.stream(request(model, word)).finalMessage()))
      }

      const calls = await callsDuring(mocks.plain, async () => {
        const messages = await send(plain.url, mocks.plain)
        expect(messages.map((m) => m.content)).toEqual(texts)
        for (const message of messages) expect(message.usage).toEqual(sdkStream(version, 'tagged'))
      })
      expect(calls.map((c) => c.route)).toEqual(words.map(() => streamRoute))

      const n = fixed.sidecar.records.length
      const messages = await send(fixed.sidecar.url, mocks.fixed)
      expect(messages.map((m) => m.content)).toEqual(texts)
      for (const message of messages) expect(fourCounts(message.usage)).toEqual(SDK_TRUTH)
      await waitFor(() => fixed.sidecar.records.length >= n + words.length, 'three usage records')
      const records = fixed.sidecar.records.slice(n)
      expect(records.length).toBe(words.length)
      // Three requests wait at once: only their text tells them apart.
      for (const record of records) expectProviderRecord(record, true, 'content')
    })

    it('Claude Code: what Headroom’s stream states, read the SDK’s way; with the sidecar, exactly the provider’s numbers', async (ctx) => {
      needsPeer(ctx)
      if (!probe.ok) {
        if (process.env.CI === 'true') throw new Error(`Claude Code cannot run here: ${probe.reason}`)
        ctx.skip()
      }
      // A pass-through keeps the stream Claude Code got: its prompt (and so Headroom's estimate) is its own.
      const recorder = await startRecorder(plain.url)
      let run!: ClaudeCodeRun
      const calls = await callsDuring(mocks.plain, async () => {
        try {
          run = await runClaudeCode({ baseUrl: recorder.url })
        } finally {
          await recorder.close()
        }
      })
      expectSuccess(run)
      // Claude Code names a model of its own; its route follows the same rule as the SDK's requests.
      expect(calls.length).toBe(1)
      const { modelId, route } = calls[0]!
      expect(modelId).toMatch(/^us\.anthropic\.claude-/)
      expect(route).toBe(INFERENCE_PROFILES.includes(modelId!) ? 'converse-stream' : 'invoke-with-response-stream')
      const streams = recorder.bodies.filter((body) => body.includes('event: message_start'))
      expect(streams.length).toBe(1)
      const events = parseSse(streams[0]!)
      expect(events.map((e) => e.event)).toEqual(eventNames(version))
      const start = usageOf(events, 'message_start')
      if (version.estimate.converse === 0) expect(start).toEqual({ input_tokens: 0, output_tokens: 0 })
      else {
        expect(start).toEqual({ input_tokens: expect.any(Number), output_tokens: 0 })
        expect(start.input_tokens).toBeGreaterThan(1000)
      }
      expect(usageOf(events, 'message_delta')).toEqual(version.delta)
      const seen = {
        input: version.delta.input_tokens ?? start.input_tokens,
        cacheRead: version.delta.cache_read_input_tokens ?? 0,
        cacheCreation: version.delta.cache_creation_input_tokens ?? 0,
        output: version.delta.output_tokens,
      }
      expect(run.metrics).toEqual(seen)
      expect(jsonUsage(run)).toEqual(seen)

      const n = fixed.sidecar.records.length
      const fixedCalls = await callsDuring(mocks.fixed, async () => {
        run = await runClaudeCode({ baseUrl: fixed.sidecar.url })
      })
      expectSuccess(run)
      expect(fixedCalls.map((c) => c.route)).toEqual([route])
      expect(run.metrics).toEqual(CLAUDE_CODE_TRUTH)
      expect(jsonUsage(run)).toEqual(CLAUDE_CODE_TRUTH)
      await waitFor(() => fixed.sidecar.records.length > n, 'the usage record')
      const records = fixed.sidecar.records.slice(n).filter((r) => r.route === '/v1/messages')
      expect(records.length).toBe(1)
      expectProviderRecord(records[0]!, true, 'content')
    })
  },
)
