/**
 * `usagewire doctor` against real gateways, with the Anthropic client format, without and with the usagewire
 * sidecar (docs/doctor.md prints these cards in full):
 *
 * - LiteLLM 1.83.10 (test/peers/litellm.ts), its `/v1/messages` with an `openai/` deployment it bridges to the
 *   doctor's Responses endpoint (`bridge`) and an `anthropic/` deployment at the doctor's Anthropic endpoint
 *   (`claude`);
 * - Headroom 0.27.0 (test/peers/headroom.ts), `--backend bedrock`, its Bedrock runtime endpoint and control
 *   plane at the doctor's provider; the doctor's default model, `claude-sonnet-4-6`, is no inference profile
 *   there, so Headroom's LiteLLM calls InvokeModel;
 * - claude-code-router 1.0.73 (test/peers/npm.ts), a provider in its config file at the doctor's Chat
 *   Completions endpoint as its README writes one, and the same with its `streamoptions` transformer.
 *
 * The cards must find what test/peers established on each (test/peers/litellm-bridge.test.ts,
 * headroom.test.ts), row by row and rule by rule, and with usagewire (holding `message_start`, the doctor's
 * default) every row the sidecar can fix turns ✓; the rows it cannot fix stay ✗ with what the card gives
 * for them. Where a gateway's answer depends on how its bytes happen to be split between reads, both
 * outcomes are named (`startReader`, claude-code-router's `streamoptions`), and the rules are checked
 * against the rows that came out.
 *
 * Each gateway deployment is configured with a provider address of its own, so each audit has its own
 * `openDoctor` session (audits could share one: each request's marker carries its audit's run id). In CI
 * (`CI=true`) a peer that cannot be installed fails these tests; elsewhere they skip with the reason.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest'
import { formatCard, openDoctor, type DoctorCard, type DoctorSession, type PhaseCard } from '@usagewire/doctor'
import { startHeadroom } from '../peers/headroom.js'
import { startLiteLLM } from '../peers/litellm.js'
import { npmPeerOrSkip, NPM_PEERS, startClaudeCodeRouter } from '../peers/npm.js'
import { peerOrSkip, PEERS } from '../peers/python.js'

/** Each gateway's audit (both phases) takes less than this. */
const MINUTE = 60_000

const ANSWERED = ['plain', 'cache-read', 'cache-write', 'reasoning', 'tool-call'] as const
type Answered = (typeof ANSWERED)[number]
type Scenario = Answered | 'abort'
const SCENARIOS: Scenario[] = [...ANSWERED, 'abort']
const START_READERS = ['sdk', 'sdk-0.50.0', 'sdk-0.49', 'claude-code', 'start-only'] as const
type Reader = (typeof START_READERS)[number] | 'sdk-run'

/**
 * What each scenario's provider answer states, as the Anthropic client format counts it (input excludes the
 * cache): input / cache read / cache write / output (docs/doctor.md#scenarios).
 */
const TRUTH: Record<Scenario, [number, number, number, number]> = {
  plain: [1850, 0, 0, 96],
  'cache-read': [212, 30433, 0, 104],
  'cache-write': [318, 0, 4096, 77],
  reasoning: [640, 0, 0, 512],
  'tool-call': [905, 2048, 0, 61],
  abort: [1422, 8192, 0, 300],
}
const truth = (s: Scenario) => TRUTH[s].join('/')
const input = (s: Scenario) => TRUTH[s][0]
const output = (s: Scenario) => TRUTH[s][3]
/** The input with the cache counted in: what a JSON answer says when its cache fields are gone. */
const summed = (s: Scenario) => TRUTH[s][0] + TRUTH[s][1] + TRUTH[s][2]

/** One audit's card with both phases. */
interface Audit {
  card: DoctorCard
  without: PhaseCard
  with: PhaseCard
  text: string
  /** Where the doctor's provider listened (the gateway's provider address). */
  provider: string
}

/**
 * The rows of one phase by `scenario/mode`, each reader's cell as the card prints it: `✗ 0/—/—/8` (`—` a
 * count the reader does not report) or `✗ <the error>`. A ✓ row reports the truth by definition; its cell is
 * `✓ <the truth>`, whether a 0 was written or left out.
 */
function rows(phase: PhaseCard): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {}
  for (const row of phase.formats[0]!.rows) {
    const fields = ['input', 'cacheRead', 'cacheWrite', 'output']
    const counts = fields.map((f) => row.reported?.[f] ?? (row.ok ? 0 : '—')).join('/')
    const group = (out[`${row.scenario}/${row.mode}`] ??= {})
    group[row.reader] = `${row.ok ? '✓' : '✗'} ${row.error ?? counts}`
  }
  return out
}

type Cell = string | ReturnType<typeof expect.toBeOneOf> | ReturnType<typeof expect.stringMatching>
type Group = Record<string, Cell>

/** The same cell for every reader of a stream (and the SDK's own run unless the client left). */
const streamGroup = (cell: (reader: Reader) => Cell, left = false): Group =>
  Object.fromEntries([...START_READERS, ...(left ? [] : ['sdk-run' as const])].map((reader) => [reader, cell(reader)]))

/** Every group of one phase: each answered scenario streamed and not, the error scenario, the abort scenario. */
function expected(
  stream: (s: Answered) => Group | ReturnType<typeof expect.toBeOneOf>,
  json: (s: Answered) => string,
  error: { stream: string; create: string },
  abort: Group,
) {
  const out: Record<string, unknown> = {}
  for (const s of ANSWERED) {
    out[`${s}/stream`] = stream(s)
    out[`${s}/create`] = { body: json(s) }
  }
  out['error/stream'] = { client: error.stream }
  out['error/create'] = { client: error.create }
  out['abort/stream'] = abort
  return out
}

/**
 * A row of a reader of message_start (`SDK ≤ 0.49`, `message_start only`) with usagewire under
 * `--message-start patch-final`: message_start is filled only when the provider's numbers are joined before it
 * leaves. They are joined by content, after the text; when a gateway writes a whole short answer at once the
 * join comes first, and the row is ✓. Otherwise it keeps the gateway's zeros.
 */
const startReader = (unfilled: string, s: Scenario) => expect.toBeOneOf([unfilled, `✓ ${truth(s)}`])

/** The scenarios whose message_start the sidecar filled: their `message_start only` row is ✓. */
const filledStarts = (phase: PhaseCard) =>
  phase.formats[0]!.rows.filter((r) => r.reader === 'start-only' && r.ok).map((r) => r.scenario as string)

/** The rule ids a phase names, in the card's order, and one rule's details. */
const ruleIds = (phase: PhaseCard) => phase.formats[0]!.rules.map((r) => r.rule)
const details = (phase: PhaseCard, rule: string) => phase.formats[0]!.rules.find((r) => r.rule === rule)?.details ?? []

const CACHE_LATER: Partial<Record<Scenario, string>> = {
  'cache-read': 'cache read absent (provider 30433)',
  'cache-write': 'cache write absent (provider 4096)',
  'tool-call': 'cache read absent (provider 2048)',
}

/**
 * The zeros-in-message_start details, but for the scenarios whose message_start was filled. Where the stream
 * states the cache counts later (in message_delta: `cacheLater`, every scenario or those named), message_start's
 * missing ones are named too.
 */
const zeroStarts = (filled: string[] = [], cacheLater: boolean | string[] = false) =>
  SCENARIOS.filter((s) => !filled.includes(s)).map((s) => {
    const later = cacheLater === true || (Array.isArray(cacheLater) && cacheLater.includes(s))
    const also = later && CACHE_LATER[s] ? `, ${CACHE_LATER[s]}` : ''
    return `${s}/stream: message_start says input 0 (provider ${input(s)})${also}`
  })

/**
 * The abort scenario's rows with usagewire holding message_start, ✓: the prompt counts are the provider's. The
 * client leaves after its first text, which comes once the provider's answer is over (content correlation),
 * so whether the final message_delta reached it before it left depends on how the bytes were read.
 */
const heldAbort = expect.stringMatching(/^✓ 1422\/8192\/0\/(1|300)$/)

/** How the sidecar joined each request of a phase with usagewire, by `scenario/mode` (its record says). */
const joins = (phase: PhaseCard) =>
  Object.fromEntries(phase.formats[0]!.rows.map((r) => [`${r.scenario}/${r.mode}`, r.correlation]))
/** Every request joined by content but those given, and the error scenario (its provider call has no usage). */
const joinedByContent = (unjoined: string[] = []) =>
  Object.fromEntries(
    [...ANSWERED.flatMap((s) => [`${s}/stream`, `${s}/create`]), 'error/stream', 'error/create', 'abort/stream'].map(
      (key) => [
        key,
        key.startsWith('error/') || unjoined.includes(key)
          ? { by: 'none', reason: 'no provider call was matched to it' }
          : { by: 'content' },
      ],
    ),
  )

/** The card's header line for the audit, with the counts of wrong rows it must print. */
function header(audit: Audit, model: string, upstream: string): string {
  const wrong = (phase: PhaseCard) => phase.formats[0]!.rows.filter((r) => !r.ok).length
  const total = audit.without.formats[0]!.rows.length
  return `Anthropic Messages · model ${model} · the gateway called ${upstream} · ${wrong(audit.without)} of ${total} rows wrong; with usagewire ${wrong(audit.with)} wrong`
}

/** Runs an audit with usagewire: the Anthropic client format, every scenario. */
async function audit(doctor: DoctorSession, gateway: string, model: string, apiKey: string): Promise<Audit> {
  const card = await doctor.audit({
    gateway,
    clients: ['anthropic'],
    models: { anthropic: model },
    apiKey,
    withUsagewire: true,
  })
  const [without, withIt] = card.phases
  const text = formatCard(card)
  // USAGEWIRE_DOCTOR_CARDS=DIR keeps each card, as text and JSON (the cards of docs/doctor.md come from here).
  const keep = process.env.USAGEWIRE_DOCTOR_CARDS
  if (keep) {
    const name = `${new URL(gateway).port}-${model.replace(/[^a-z0-9-]/gi, '_')}`
    mkdirSync(keep, { recursive: true })
    writeFileSync(join(keep, `${name}.txt`), text)
    writeFileSync(join(keep, `${name}.json`), JSON.stringify(card, null, 2))
  }
  return { card, without: without!, with: withIt!, text, provider: doctor.provider.url }
}

/** What every audit must show: its time, both phases, the sidecar on both sides of the gateway. */
function expectAudit(audit: Audit): void {
  expect(audit.card.ms).toBeLessThan(MINUTE)
  expect(audit.without.phase).toBe('without-usagewire')
  expect(audit.with.phase).toBe('with-usagewire')
  // The sidecar took the provider address the gateway was configured with.
  expect(audit.with.sidecar).toMatchObject({
    twoSided: true,
    providerUrl: audit.provider,
    messageStart: 'hold',
    correlation: ['header', 'content'],
  })
  // A record per client request: the audit reads them once the sidecar has closed.
  expect(audit.with.sidecar!.records).toBe(13)
  // The time spent waiting for the gateway is not the audit's.
  expect(audit.card.waitedMs).toBe(0)
}

/** Whatever started is closed after, even when a later start failed: the last started first. */
function closers() {
  const list: Array<() => Promise<void>> = []
  return {
    add: (close: () => Promise<void>) => void list.push(close),
    close: async () => {
      for (const close of list.reverse()) await close()
    },
  }
}

describe(`LiteLLM ${PEERS.litellm.version}: /v1/messages`, () => {
  let skip: string | undefined
  const open = closers()
  let bridge: Audit
  let claude: Audit

  beforeAll(async () => {
    const peer = await peerOrSkip(PEERS.litellm)
    if ('skip' in peer) return void (skip = peer.skip)
    const bridged = await openDoctor({ providerListen: '127.0.0.1:0' })
    open.add(() => bridged.close())
    const direct = await openDoctor({ providerListen: '127.0.0.1:0' })
    open.add(() => direct.close())
    const deployment = (model: string, apiBase: string) => ({ model, api_base: apiBase, api_key: 'sk-doctor' })
    const litellm = await startLiteLLM(peer, {
      model_list: [
        { model_name: 'bridge', litellm_params: deployment('openai/gpt-5-mini', bridged.provider.openai) },
        { model_name: 'claude', litellm_params: deployment('anthropic/claude-sonnet-4-6', direct.provider.anthropic) },
      ],
    })
    open.add(() => litellm.stop())
    bridge = await audit(bridged, litellm.url, 'bridge', litellm.masterKey)
    claude = await audit(direct, litellm.url, 'claude', litellm.masterKey)
  }, 15 * 60_000)

  afterAll(() => open.close(), 30_000)

  const needsPeer = (ctx: TestContext) => {
    if (skip) ctx.skip()
  }

  /**
   * LiteLLM 1.83.10 opens every bridged stream with two message_start events, both all zeros (docs/peer-bugs.md
   * row 35): the SDK's accumulator throws on the second, and so does every reader built on it. A reader of
   * message_start alone takes the first one's zeros, and the output from message_delta, which is the
   * provider's. The SDK fails before the first text, so the abort scenario's client never leaves: its rows
   * are judged whole, the SDK's own answer among them.
   */
  const bridgeStream = (s: Scenario, startOnly: (unfilled: string) => Cell = (u) => u) =>
    streamGroup((reader) =>
      reader === 'start-only'
        ? startOnly(`✗ 0/0/0/${output(s)}`)
        : reader === 'sdk-run'
          ? '✗ AnthropicError: Unexpected event order, got message_start before receiving "message_stop"'
          : '✗ a second message_start',
    )

  it('each audit takes under a minute, with the sidecar on both sides of LiteLLM', (ctx) => {
    needsPeer(ctx)
    expectAudit(bridge)
    expectAudit(claude)
  })

  it('the openai/ bridge: two message_start events every SDK reader rejects, both zeros; input with the cache counted in and no cache fields, in the JSON and in the final message_delta', (ctx) => {
    needsPeer(ctx)
    expect(bridge.without.formats[0]!.upstream).toEqual(['openai-responses'])
    // The JSON answer: input_tokens is the Responses input_tokens, the cache read (and written) inside it, and
    // no cache field at all (test/peers/litellm-bridge.test.ts: 1234/–/56 for input 210 + cache read 1024).
    const json = (s: Answered) => (summed(s) === input(s) ? `✓ ${truth(s)}` : `✗ ${summed(s)}/—/—/${output(s)}`)
    expect(rows(bridge.without)).toEqual(
      expected((s) => bridgeStream(s), json, { stream: '✓ HTTP 400', create: '✓ HTTP 400' }, bridgeStream('abort')),
    )
    expect(json('plain')).toBe('✓ 1850/0/0/96')
    expect(json('cache-read')).toBe('✗ 30645/—/—/104')

    expect(ruleIds(bridge.without)).toEqual(['zero-start', 'cache-in-input', 'event-order'])
    expect(details(bridge.without, 'zero-start')).toEqual(zeroStarts())
    // "Cache counted in input_tokens, left out of its own fields": the cache reads are missing because they
    // are inside the input (the rule of a dropped cache is for counts that vanished outright). The streams'
    // final message_delta states the same input: judged though the SDK rejects the stream first.
    const withCache: Scenario[] = ['cache-read', 'cache-write', 'tool-call']
    expect(details(bridge.without, 'cache-in-input')).toEqual([
      ...withCache.flatMap((s) => [
        `${s}/stream: input_tokens ${summed(s)} includes the cache (input ${input(s)}); the cache fields say 0`,
        `${s}/create: input_tokens ${summed(s)} includes the cache (input ${input(s)}); the cache fields say nothing`,
      ]),
      'abort/stream: input_tokens 9614 includes the cache (input 1422); the cache fields say 0',
    ])
    expect(details(bridge.without, 'event-order')).toEqual(SCENARIOS.map((s) => `${s}/stream: 2 message_start events`))
  })

  it('the openai/ bridge with usagewire: the JSON answers and message_start turn ✓; the second message_start stays, and every SDK stream row with it', (ctx) => {
    needsPeer(ctx)
    // usagewire rewrites usage, never the sequence of events: the SDK readers still fail on the second
    // message_start. The held message_start carries the provider's numbers (joined by content: LiteLLM's
    // bridge forwards no client header), and so does the final message_delta.
    expect(rows(bridge.with)).toEqual(
      expected(
        (s) => bridgeStream(s, () => `✓ ${truth(s)}`),
        (s) => `✓ ${truth(s)}`,
        { stream: '✓ HTTP 400', create: '✓ HTTP 400' },
        bridgeStream('abort', () => `✓ ${truth('abort')}`),
      ),
    )
    expect(joins(bridge.with)).toEqual(joinedByContent())
    expect(ruleIds(bridge.with)).toEqual(['event-order'])
    expect(details(bridge.with, 'event-order')).toEqual(details(bridge.without, 'event-order'))
    expect(bridge.text).toContain(header(bridge, 'bridge', 'openai-responses'))
    expect(header(bridge, 'bridge', 'openai-responses')).toMatch(/ 39 of 43 rows wrong; with usagewire 30 wrong$/)
    expect(bridge.text).not.toContain('hint:')
    expect(bridge.text).not.toContain('↳')
  })

  it('the anthropic/ deployment: every row right, without and with usagewire', (ctx) => {
    needsPeer(ctx)
    expect(claude.without.formats[0]!.upstream).toEqual(['anthropic-messages'])
    const right = (abort: Group) =>
      expected(
        (s) => streamGroup(() => `✓ ${truth(s)}`),
        (s) => `✓ ${truth(s)}`,
        { stream: '✓ HTTP 400', create: '✓ HTTP 400' },
        abort,
      )
    // The client leaves the abort scenario after its first text: message_start's output 1 is what it has.
    expect(rows(claude.without)).toEqual(right(streamGroup(() => '✓ 1422/8192/0/1', true)))
    expect(rows(claude.with)).toEqual(right(streamGroup(() => heldAbort, true)))
    expect(joins(claude.with)).toEqual(joinedByContent())
    expect(ruleIds(claude.without)).toEqual([])
    expect(ruleIds(claude.with)).toEqual([])
    expect(claude.text).toContain('✓ every row is right')
  })
})

describe(`Headroom ${PEERS.headroom.version} with a Bedrock backend`, () => {
  let skip: string | undefined
  const open = closers()
  let headroom: Audit
  /** The same under `--message-start patch-final` (its own doctor and Headroom, as each is configured for one). */
  let patched: PhaseCard
  let patchedText: string
  const PATCHED = ['plain', 'cache-read', 'cache-write', 'tool-call'] as const

  beforeAll(async () => {
    const peer = await peerOrSkip(PEERS.headroom)
    if ('skip' in peer) return void (skip = peer.skip)
    const [doctor, second] = await Promise.all([
      openDoctor({ providerListen: '127.0.0.1:0' }),
      openDoctor({ providerListen: '127.0.0.1:0' }),
    ])
    open.add(() => doctor.close())
    open.add(() => second.close())
    // Headroom lists the inference profiles at start-up: the provider is up first.
    const [gateway, other] = await Promise.all([
      startHeadroom(peer, { runtimeUrl: doctor.provider.bedrock }),
      startHeadroom(peer, { runtimeUrl: second.provider.bedrock }),
    ])
    open.add(() => gateway.close())
    open.add(() => other.close())
    headroom = await audit(doctor, gateway.url, 'claude-sonnet-4-6', 'usagewire-doctor')
    const card = await second.audit({
      gateway: other.url,
      clients: ['anthropic'],
      models: { anthropic: 'claude-sonnet-4-6' },
      apiKey: 'usagewire-doctor',
      withUsagewire: true,
      messageStart: 'patch-final',
      scenarios: [...PATCHED],
    })
    patched = card.phases[1]!
    patchedText = formatCard(card)
  }, 15 * 60_000)

  afterAll(() => open.close(), 30_000)

  const needsPeer = (ctx: TestContext) => {
    if (skip) ctx.skip()
  }

  /**
   * Headroom's output_tokens on a stream: one per content delta it sent, 8 text chunks; the tool call's 6 text
   * and 9 argument chunks (the arguments hold the request's marker, whose length is fixed).
   */
  const chunks = (s: Answered) => (s === 'tool-call' ? 15 : 8)
  /** The JSON answers, right with or without usagewire but for the cache, folded into input_tokens. */
  const json = (s: Answered) => (summed(s) === input(s) ? `✓ ${truth(s)}` : `✗ ${summed(s)}/—/—/${output(s)}`)
  /** The provider's 400: a 200 stream to a streaming client, a 429 (which the SDKs retry) to a non-streaming one. */
  const error = { stream: '✗ HTTP 200', create: '✗ HTTP 429' }
  const errorStatus = [
    "error/stream: HTTP 200: the provider's 400 became a success",
    'error/create: HTTP 429: the provider answered 400; SDKs retry it',
  ]

  it('the audit takes under a minute, with the sidecar on both sides of Headroom', (ctx) => {
    needsPeer(ctx)
    expectAudit(headroom)
  })

  it('without usagewire: zeros in message_start, output the number of content chunks; JSON input with the cache counted in, no cache fields; the 400 as a 200 stream or a 429', (ctx) => {
    needsPeer(ctx)
    expect(headroom.without.formats[0]!.upstream).toEqual(['bedrock-invoke'])
    // test/peers/headroom.test.ts, 0.27: the stream 0/–/–/4 (4 text chunks there), the JSON 4434/–/–/56 (the
    // input with both cache buckets added in). Every reader reads the same: message_start says input 0 and no
    // cache field, message_delta only the chunk count. The client of the abort scenario leaves before any
    // message_delta: message_start's 0 input, nothing else.
    expect(rows(headroom.without)).toEqual(
      expected(
        (s) => streamGroup(() => `✗ 0/—/—/${chunks(s)}`),
        json,
        error,
        streamGroup(() => '✗ 0/—/—/0', true),
      ),
    )
    expect(json('cache-read')).toBe('✗ 30645/—/—/104')

    expect(ruleIds(headroom.without)).toEqual([
      'zero-start',
      'cache-in-input',
      'cache-dropped',
      'output-per-chunk',
      'stream-vs-json',
      'ttl-split',
      'error-status',
    ])
    expect(details(headroom.without, 'zero-start')).toEqual(zeroStarts())
    // Every content chunk counts: the tool call's arguments too.
    expect(details(headroom.without, 'output-per-chunk')).toEqual([
      ...(['plain', 'cache-read', 'cache-write', 'reasoning'] as const).map(
        (s) => `${s}/stream: output_tokens 8, the number of content chunks: 8 text (provider ${output(s)})`,
      ),
      'tool-call/stream: output_tokens 15, the number of content chunks: 6 text, 9 tool-call arguments (provider 61)',
    ])
    expect(details(headroom.without, 'cache-in-input')).toEqual([
      'cache-read/create: input_tokens 30645 includes the cache (input 212); the cache fields say nothing',
      'cache-write/create: input_tokens 4414 includes the cache (input 318); the cache fields say nothing',
      'tool-call/create: input_tokens 2953 includes the cache (input 905); the cache fields say nothing',
    ])
    expect(details(headroom.without, 'cache-dropped')).toEqual([
      'cache-read/stream: cache read absent (provider 30433)',
      'cache-write/stream: cache write absent (provider 4096)',
      'tool-call/stream: cache read absent (provider 2048)',
    ])
    expect(details(headroom.without, 'error-status')).toEqual(errorStatus)
  })

  it("with usagewire: every reader, message_start's own included, reads the provider's numbers, the thinking answer's too; the statuses stay", (ctx) => {
    needsPeer(ctx)
    // Headroom 0.27 drops the thinking block on this route: the text the client got is the provider's answer
    // without its thinking, which the content correlation compares too (docs/sidecar.md#correlation).
    expect(rows(headroom.with)).toEqual(
      expected(
        (s) => streamGroup(() => `✓ ${truth(s)}`),
        (s) => `✓ ${truth(s)}`,
        error,
        streamGroup(() => heldAbort, true),
      ),
    )
    expect(joins(headroom.with)).toEqual(joinedByContent())
    expect(headroom.text).not.toContain('↳')

    expect(ruleIds(headroom.with)).toEqual(['error-status'])
    // The TTL split (5m 1024, 1h 3072) is the provider's too: in the held message_start and the JSON body.
    expect(details(headroom.with, 'ttl-split')).toEqual([])
    expect(details(headroom.with, 'error-status')).toEqual(errorStatus)
    expect(headroom.text).toContain(header(headroom, 'claude-sonnet-4-6', 'bedrock-invoke'))
    expect(header(headroom, 'claude-sonnet-4-6', 'bedrock-invoke')).toMatch(
      / 40 of 42 rows wrong; with usagewire 2 wrong$/,
    )
    expect(headroom.text).not.toContain('hint:')
  })

  it("with usagewire under --message-start patch-final: the final message_delta carries the provider's numbers; message_start leaves with Headroom's zeros unless already joined", (ctx) => {
    needsPeer(ctx)
    expect(patched.sidecar).toMatchObject({ twoSided: true, messageStart: 'patch-final' })
    const seen = rows(patched)
    for (const s of PATCHED) {
      expect(seen[`${s}/stream`]).toEqual(
        streamGroup((reader) =>
          reader === 'sdk-0.49' || reader === 'start-only' ? startReader(`✗ 0/—/—/${output(s)}`, s) : `✓ ${truth(s)}`,
        ),
      )
      expect(seen[`${s}/create`]).toEqual({ body: `✓ ${truth(s)}` })
    }
    const filled = filledStarts(patched)
    expect(details(patched, 'zero-start')).toEqual(
      zeroStarts(filled, true).filter((d) => PATCHED.some((s) => d.startsWith(`${s}/`))),
    )
    // A message_start that left with zeros has no TTL split either; the JSON body has the provider's.
    expect(details(patched, 'ttl-split')).not.toContain(
      'cache-write/create: no cache_creation (5m 1024, 1h 3072): priced at the 5m rate',
    )
    // The card's hint names the default when message_start left with zeros.
    expect(
      patchedText.includes(
        "hint: under --message-start patch-final, message_start leaves before the provider's numbers are joined",
      ),
    ).toBe(ruleIds(patched).includes('zero-start'))
  })
})

describe(`claude-code-router ${NPM_PEERS.claudeCodeRouter.version}: an OpenAI-compatible provider`, () => {
  let skip: string | undefined
  const open = closers()
  let asWritten: Audit
  let withUsage: Audit

  beforeAll(async () => {
    const peer = await npmPeerOrSkip(NPM_PEERS.claudeCodeRouter)
    if ('skip' in peer) return void (skip = peer.skip)
    const plain = await openDoctor({ providerListen: '127.0.0.1:0' })
    open.add(() => plain.close())
    const asked = await openDoctor({ providerListen: '127.0.0.1:0' })
    open.add(() => asked.close())
    const provider = (name: string, doctor: DoctorSession) => ({
      name,
      api_base_url: `${doctor.provider.openai}/chat/completions`,
      api_key: 'sk-doctor',
      models: ['gpt-4.1'],
    })
    const router = await startClaudeCodeRouter(peer, {
      providers: [
        // As its README configures an OpenAI-compatible provider.
        provider('doctor', plain),
        // The same, with the transformer that asks the provider for the streamed usage.
        { ...provider('doctor-usage', asked), transformer: { use: ['streamoptions'] } },
      ],
      router: { default: 'doctor,gpt-4.1' },
    })
    open.add(() => router.stop())
    asWritten = await audit(plain, router.url, 'claude-sonnet-4-6', router.apiKey)
    // `provider,model` as the model picks a provider past the router's rules.
    withUsage = await audit(asked, router.url, 'doctor-usage,gpt-4.1', router.apiKey)
  }, 15 * 60_000)

  afterAll(() => open.close(), 30_000)

  const needsPeer = (ctx: TestContext) => {
    if (skip) ctx.skip()
  }

  /**
   * The router's stream when it read no usage: message_start says input 0, output 0, and message_delta says
   * input 0, output 0, cache read 0. It takes the usage from the chunk with the finish_reason and drops the rest
   * of the read that chunk came in; OpenAI's usage comes on a chunk after it (`choices: []`), and only when asked
   * for (`stream_options.include_usage`, which its `streamoptions` transformer adds).
   */
  const zeros = streamGroup((reader) => (['sdk', 'sdk-0.50.0', 'sdk-run'].includes(reader) ? '✗ 0/0/—/0' : '✗ 0/—/—/0'))
  /**
   * Its stream when the usage chunk came in a later read than the finish_reason chunk: message_delta carries
   * input = prompt_tokens − cached_tokens, the cache read, the output, and no cache write (left in the input).
   */
  const read = (s: Answered) =>
    streamGroup((reader) => {
      if (reader === 'sdk-0.49' || reader === 'start-only') return `✗ 0/—/—/${output(s)}`
      if (s === 'cache-write') return reader === 'claude-code' ? '✗ 4414/—/—/77' : '✗ 4414/0/—/77'
      return `✓ ${truth(s)}`
    })
  /** Its JSON answers: right but for the cache write the provider stated (`cache_write_tokens`), left in the input. */
  const json = (s: Answered) => (s === 'cache-write' ? '✗ 4414/0/—/77' : `✓ ${truth(s)}`)
  const error = { stream: '✓ HTTP 400', create: '✓ HTTP 400' }
  /** The client of the abort scenario leaves after the first text: message_start's zeros. */
  const abort = streamGroup(() => '✗ 0/—/—/0', true)

  it('each audit takes under a minute, with the sidecar on both sides of the router', (ctx) => {
    needsPeer(ctx)
    expectAudit(asWritten)
    expectAudit(withUsage)
  })

  /** What the provider saw: each streamed request asked for no usage. */
  const unasked = SCENARIOS.map(
    (s) => `${s}/stream: the gateway streamed Chat Completions with no stream_options: the provider sent no usage`,
  )

  it('without usagewire, configured as its README says: every stream says 0 for everything; the router never asked the provider for streamed usage', (ctx) => {
    needsPeer(ctx)
    expect(asWritten.without.formats[0]!.upstream).toEqual(['openai-chat'])
    expect(rows(asWritten.without)).toEqual(expected(() => zeros, json, error, abort))
    expect(ruleIds(asWritten.without)).toEqual([
      'zero-start',
      'cache-in-input',
      'cache-dropped',
      'no-stream-usage-requested',
      'stream-vs-json',
    ])
    expect(details(asWritten.without, 'no-stream-usage-requested')).toEqual(unasked)
    expect(details(asWritten.without, 'zero-start')).toEqual(zeroStarts())
    expect(details(asWritten.without, 'cache-dropped')).toEqual([
      'cache-read/stream: cache read 0 (provider 30433)',
      'cache-write/stream: cache write absent (provider 4096)',
      'tool-call/stream: cache read 0 (provider 2048)',
    ])
    expect(details(asWritten.without, 'cache-in-input')).toEqual([
      'cache-write/create: input_tokens 4414 includes the cache (input 318); the cache fields say 0',
    ])
    expect(details(asWritten.without, 'stream-vs-json')).toEqual([
      'plain: streamed input 0 output 0; not streamed input 1850 output 96',
      'cache-read: streamed input 0 cacheRead 0 output 0; not streamed input 212 cacheRead 30433 output 104',
      'cache-write: streamed input 0 output 0; not streamed input 4414 output 77',
      'reasoning: streamed input 0 output 0; not streamed input 640 output 512',
      'tool-call: streamed input 0 cacheRead 0 output 0; not streamed input 905 cacheRead 2048 output 61',
    ])
  })

  it('with usagewire, configured as its README says: the sidecar asks the provider for the streamed usage, and every row is right', (ctx) => {
    needsPeer(ctx)
    // The router never asks for stream_options.include_usage; the sidecar's provider side adds it
    // (docs/sidecar.md#ensurestreamusage), reads the provider's usage, and leaves the usage-only chunk out of
    // what the router gets, which then writes its zeros as before. Each call is joined by its text: the held
    // message_start and every message_delta carry the provider's numbers.
    expect(rows(asWritten.with)).toEqual(
      expected(
        (s) => streamGroup(() => `✓ ${truth(s)}`),
        (s) => `✓ ${truth(s)}`,
        error,
        streamGroup(() => heldAbort, true),
      ),
    )
    expect(joins(asWritten.with)).toEqual(joinedByContent())
    expect(asWritten.text).not.toContain('↳')
    // The provider saw each stream ask for its usage.
    expect(ruleIds(asWritten.with)).toEqual([])
    expect(asWritten.text).toContain(
      'Anthropic Messages · model claude-sonnet-4-6 · the gateway called openai-chat · 36 of 42 rows wrong; with usagewire all right',
    )
    expect(asWritten.text).toContain('✗ rows are wrong without usagewire; with it every row is right')
  })

  it('with the streamoptions transformer: the router reads the usage only now and then; with usagewire every row is right', (ctx) => {
    needsPeer(ctx)
    // Without usagewire each stream is one of the two, as the bytes happened to be split.
    expect(rows(withUsage.without)).toEqual(expected((s) => expect.toBeOneOf([zeros, read(s)]), json, error, abort))
    expect(ruleIds(withUsage.without)).toContain('zero-start')
    expect(ruleIds(withUsage.without)).not.toContain('no-stream-usage-requested')
    // Where the router read the usage, its message_delta states the cache read that message_start left out
    // (never a cache write).
    const readBy = withUsage.without.formats[0]!.rows.filter(
      (r) => r.mode === 'stream' && r.reader === 'sdk' && r.reported?.output && r.scenario !== 'cache-write',
    ).map((r) => r.scenario as string)
    expect(details(withUsage.without, 'zero-start')).toEqual(zeroStarts([], readBy))
    expect(details(withUsage.without, 'cache-in-input')).toContain(
      'cache-write/create: input_tokens 4414 includes the cache (input 318); the cache fields say 0',
    )

    // With usagewire the held message_start and every message_delta carry the provider's numbers.
    expect(rows(withUsage.with)).toEqual(
      expected(
        (s) => streamGroup(() => `✓ ${truth(s)}`),
        (s) => `✓ ${truth(s)}`,
        error,
        streamGroup(() => heldAbort, true),
      ),
    )
    expect(joins(withUsage.with)).toEqual(joinedByContent())
    expect(ruleIds(withUsage.with)).toEqual([])
    expect(withUsage.text).toMatch(/ \d+ of 42 rows wrong; with usagewire all right\n/)
    expect(withUsage.text).toContain('✗ rows are wrong without usagewire; with it every row is right')
  })
})
