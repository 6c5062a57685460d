/**
 * The audit: every scenario through the gateway with each client format's SDK, what each reader makes of
 * the bytes received, compared with what the doctor's provider stated; optionally a second time with the
 * usagewire sidecar around the gateway (docs/doctor.md).
 */
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import type { RecordCorrelation, Sidecar, Strategy, UsageRecord } from '@usagewire/proxy'
import { SDK_VERSIONS, sendRequest, type Capture, type ClientRequest } from './clients.js'
import {
  DOCTOR_SCENARIOS,
  marker,
  SCENARIO_NAMES,
  type ProviderDialect,
  type ScenarioName,
} from './provider/scenarios.js'
import { parseListen, startDoctorProvider, type DoctorProvider, type ProviderCall } from './provider/server.js'
import type { TrueUsage } from './provider/types.js'
import {
  ANTHROPIC_READERS,
  CLIENT_FORMATS,
  FIELDS,
  readAnthropicBody,
  readAnthropicStream,
  readChatBody,
  readChatStream,
  readResponsesBody,
  readResponsesStream,
  READER_LABELS,
  anthropicCounts,
  chatCounts,
  responsesCounts,
  type ClientFormat,
  type Counts,
  type Reading,
} from './readers.js'
import {
  currentStreamReading,
  detect,
  detectProviderRequest,
  detectStreamVsJson,
  errorStatusRight,
  MODES,
  RULES,
  type Finding,
  type Mode,
  type RuleId,
} from './rules.js'
import { ABORT_FIELDS, differences, expectedCounts } from './truth.js'
import { parseJson, parseSse, type WireEvent } from './wire.js'

export const DEFAULT_PROVIDER_LISTEN = '127.0.0.1:8790'
export const DEFAULT_MODELS: Record<ClientFormat, string> = {
  anthropic: 'claude-sonnet-4-6',
  'openai-chat': 'gpt-4.1',
  'openai-responses': 'gpt-5-mini',
}
export const DEFAULT_TIMEOUT_MS = 15_000

export interface AuditOptions {
  /** The gateway's base URL, as clients use it (without `/v1`). */
  gateway: string
  /** Client formats to send; default all three. */
  clients?: ClientFormat[]
  /** The model each client format asks the gateway for; defaults in DEFAULT_MODELS. */
  models?: Partial<Record<ClientFormat, string>>
  /** Scenarios to run; default all. */
  scenarios?: ScenarioName[]
  /** Run everything a second time with the usagewire sidecar around the gateway. */
  withUsagewire?: boolean
  /**
   * The sidecar's `message_start` policy (docs/sidecar.md#timing); default `hold`, so that the card shows
   * what usagewire can fix for readers of `message_start` alone too.
   */
  messageStart?: 'patch-final' | 'hold'
  /** Per-request timeout; default 15000 ms. */
  timeoutMs?: number
  /** The API key the SDKs send (`x-api-key` / `Authorization: Bearer`); default `usagewire-doctor`. */
  apiKey?: string
  /** Requests in flight at once; default 8. */
  concurrency?: number
  /**
   * How long to wait for the gateway to accept connections, for one started after the doctor's provider
   * (a gateway that calls the provider's control plane at start-up); default 0: it must be up already.
   */
  waitMs?: number
}

export interface DoctorOptions extends AuditOptions {
  /** `[host:]port` the provider listens on (the gateway's provider base URL); default 127.0.0.1:8790. */
  providerListen?: string
  /** Called once the provider listens, before any request is sent (a test starts its gateway here). */
  onProvider?: (provider: ProviderInfo) => void | Promise<void>
}

/** Where to point the gateway's provider base URLs. */
export interface ProviderInfo {
  url: string
  anthropic: string
  openai: string
  bedrock: string
  gemini: string
}

/** One reader's verdict on one request. */
export interface CardRow {
  scenario: ScenarioName
  mode: Mode
  /** `sdk`, `sdk-0.50.0`, `sdk-0.49`, `claude-code`, `start-only`, `chat-sdk`, `responses-sdk`, `sdk-run`, `body`, `client`. */
  reader: string
  label: string
  ok: boolean
  /** The provider's truth in the format's convention; for the error scenario none. */
  expected?: Counts
  /** What the reader reports; none when it reports no usage. */
  reported?: Counts
  /** The fields compared (the abort scenario compares only what `message_start` can say). */
  fields: string[]
  /** The fields that differ. */
  differs: string[]
  /** The HTTP status the client got. */
  status?: number
  /** What went wrong instead of a usage: the reader's or the SDK's error. */
  error?: string
  note?: string
  /**
   * With usagewire: how the sidecar joined this request to the gateway's call to the provider, from its
   * record (docs/sidecar.md#correlation); `{ by: 'none', reason }` when it joined none.
   */
  correlation?: RecordCorrelation
}

export interface RuleReport {
  rule: RuleId
  title: string
  /** Rows of docs/peer-bugs.md. */
  peerBugs: number[]
  /** Where and how, one line each. */
  details: string[]
}

export interface FormatCard {
  format: ClientFormat
  model: string
  /** The provider dialects the gateway called for this format's requests. */
  upstream: ProviderDialect[]
  rows: CardRow[]
  rules: RuleReport[]
  ok: boolean
}

export interface PhaseCard {
  phase: 'without-usagewire' | 'with-usagewire'
  /** With usagewire: where the sidecar listened, and whether it sat on both sides of the gateway. */
  sidecar?: {
    url: string
    providerUrl?: string
    twoSided: boolean
    messageStart: string
    correlation: string[]
    /** Usage records the sidecar wrote (one per client request it served). */
    records: number
  }
  formats: FormatCard[]
  ok: boolean
  ms: number
}

export interface DoctorCard {
  gateway: string
  provider: ProviderInfo
  sdk: { anthropic: string; openai: string }
  phases: PhaseCard[]
  /** Every row of every phase is right. */
  ok: boolean
  /** How long the audit took, from the moment the gateway took connections (the wait for it is apart). */
  ms: number
  /** How long the audit waited for the gateway to take connections (`waitMs`); 0 when it was up. */
  waitedMs: number
}

/** Bad options: the CLI's exit code 2. */
export class DoctorUsageError extends Error {
  override name = 'DoctorUsageError'
}

/** The gateway refused or never answered: the CLI's exit code 2. */
export class GatewayUnreachableError extends Error {
  override name = 'GatewayUnreachableError'
}

export function providerInfo(url: string): ProviderInfo {
  return { url, anthropic: url, openai: `${url}/v1`, bedrock: url, gemini: url }
}

/** Whether a TCP connection to the gateway opens. */
function reachable(gateway: string, timeoutMs: number): Promise<boolean> {
  const url = new URL(gateway)
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80))
  return new Promise((resolve) => {
    const socket = net.connect({ host: url.hostname.replace(/^\[|\]$/g, ''), port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/** Runs `tasks` with at most `limit` in flight. */
async function pool<T>(tasks: Array<() => Promise<T>>, limit: number): Promise<T[]> {
  const results = new Array<T>(tasks.length)
  let next = 0
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++
      results[i] = await tasks[i]!()
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker))
  return results
}

/** One planned request: a format, a mode, a scenario. */
interface Planned {
  format: ClientFormat
  mode: Mode
  scenario: ScenarioName
}

function plan(options: AuditOptions): Planned[] {
  const out: Planned[] = []
  for (const format of options.clients ?? CLIENT_FORMATS)
    for (const scenario of options.scenarios ?? SCENARIO_NAMES)
      for (const mode of MODES[format]) {
        // A client cannot leave a non-streamed answer part-way.
        if (scenario === 'abort' && mode === 'create') continue
        out.push({ format, mode, scenario })
      }
  return out
}

/**
 * The marker tag of a request: the audit's run id, the phase, the client format and the mode, so that each
 * audit of a session (and each phase) counts only the provider calls its own requests caused.
 */
const tagOf = (phase: string, p: Planned) => `${phase}-${p.format}-${p.mode.replace('+', '-')}`

/** The header that names a request to the sidecar, whose record keeps it (`attributes`), with usagewire. */
const REQUEST_HEADER = 'x-usagewire-doctor-request'
const requestName = (tag: string, p: Planned) => `${tag}/${p.scenario}`

const STREAM_READER: Record<ClientFormat, string> = {
  anthropic: 'sdk',
  'openai-chat': 'chat-sdk',
  'openai-responses': 'responses-sdk',
}

function countsOf(format: ClientFormat, usage: unknown): Counts | undefined {
  if (usage === undefined || usage === null) return undefined
  if (format === 'anthropic') return anthropicCounts(usage)
  if (format === 'openai-chat') return chatCounts(usage)
  return responsesCounts(usage)
}

function sameCounts(format: ClientFormat, a: Counts | undefined, b: Counts | undefined): boolean {
  if (!a || !b) return a === b
  return differences(format, a, b).length === 0 && differences(format, b, a).length === 0
}

/** The readers' rows for one request, and what it shows of the wire. */
function judge(
  p: Planned,
  capture: Capture,
  truth: TrueUsage | undefined,
  providerStatus: number | undefined,
): { rows: CardRow[]; findings: Finding[]; stream?: Reading; whole?: Reading } {
  const base = { scenario: p.scenario, mode: p.mode, status: capture.status }
  const fields = [...FIELDS[p.format]]
  const streaming = p.mode !== 'create'

  if (p.scenario === 'error') {
    const status = capture.status
    const usage = countsOf(p.format, capture.sdkUsage)
    // A 4xx the SDKs do not retry (docs/doctor.md#broken-rules): not a 408, 409 or 429, nor a 5xx.
    const ok = status !== undefined && errorStatusRight(status, capture.retryHeader) && !usage
    const row: CardRow = {
      ...base,
      reader: 'client',
      label: READER_LABELS.client!,
      ok,
      fields: [],
      differs: ok ? [] : ['status'],
      ...(usage && { reported: usage }),
      error: status === undefined ? (capture.sdkError ?? 'no answer') : `HTTP ${status}`,
      note:
        providerStatus === undefined ? 'the provider saw no call for it' : `the provider answered ${providerStatus}`,
    }
    return { rows: [row], findings: detect({ ...p, status, retryHeader: capture.retryHeader }) }
  }

  if (capture.status === undefined || capture.status >= 400) {
    const row: CardRow = {
      ...base,
      reader: 'client',
      label: READER_LABELS.client!,
      ok: false,
      ...(truth && { expected: expectedCounts(p.format, truth) }),
      fields,
      differs: [],
      error: capture.status === undefined ? (capture.sdkError ?? 'no answer') : `HTTP ${capture.status}`,
    }
    const answered =
      providerStatus === undefined ? 'the provider saw no call' : `the provider answered ${providerStatus}`
    const finding: Finding = { rule: 'request-failed', detail: `${p.scenario}/${p.mode}: ${row.error}; ${answered}` }
    return { rows: [row], findings: [finding] }
  }

  const partial = capture.left === true
  const expected = truth && expectedCounts(p.format, truth)
  // A client that left can still judge Anthropic's prompt counts (message_start); nothing else is due yet.
  const compared = partial ? (ABORT_FIELDS[p.format] ?? fields) : fields
  const maySaySilence = (p.format === 'openai-chat' && p.mode === 'stream') || (partial && !ABORT_FIELDS[p.format])
  const verdict = (reader: string, reading: Reading, label = READER_LABELS[reader] ?? reader): CardRow => {
    const row: CardRow = { ...base, reader, label, ok: false, fields: [...compared], differs: [] }
    if (expected) row.expected = expected
    if (reading.counts) row.reported = reading.counts
    if (reading.error) {
      row.error = reading.error
      return row
    }
    if (!expected) return row
    if (!reading.counts) {
      row.ok = maySaySilence
      if (!row.ok) row.error = 'no usage'
      return row
    }
    row.differs = differences(p.format, expected, reading.counts, compared)
    row.ok = row.differs.length === 0
    return row
  }

  const rows: CardRow[] = []
  let events: WireEvent[] | undefined
  let body: unknown
  let stream: Reading | undefined
  let whole: Reading | undefined
  if (streaming) {
    events = parseSse(capture.body)
    if (p.format === 'anthropic') {
      for (const reader of ANTHROPIC_READERS) rows.push(verdict(reader, readAnthropicStream(events, reader, partial)))
    } else if (p.format === 'openai-chat') rows.push(verdict('chat-sdk', readChatStream(events, partial)))
    else rows.push(verdict('responses-sdk', readResponsesStream(events, partial)))
    stream = currentStreamReading(p.format, events)
    if (!partial) {
      const version = p.format === 'anthropic' ? SDK_VERSIONS.anthropic : SDK_VERSIONS.openai
      const run = verdict(
        'sdk-run',
        capture.sdkError ? { error: capture.sdkError } : runReading(p.format, capture.sdkUsage),
        `SDK ${version} (run)`,
      )
      const rule = rows.find((r) => r.reader === STREAM_READER[p.format])
      if (rule && !sameCounts(p.format, rule.reported, run.reported) && !run.error)
        run.note = `differs from the "${rule.label}" rule`
      rows.push(run)
    }
  } else {
    body = parseJson(capture.body)
    whole =
      p.format === 'anthropic'
        ? readAnthropicBody(body)
        : p.format === 'openai-chat'
          ? readChatBody(body)
          : readResponsesBody(body)
    const row = verdict('body', whole, CREATE_LABELS[p.format])
    if (!capture.sdkError && !sameCounts(p.format, whole.counts, countsOf(p.format, capture.sdkUsage)))
      row.note = "the SDK's own answer differs from the body"
    rows.push(row)
  }
  const findings = detect({
    ...p,
    ...(truth && { truth }),
    status: capture.status,
    ...(events && { events }),
    ...(body !== undefined && { body }),
    partial,
  })
  return { rows, findings, ...(stream && { stream }), ...(whole && { whole }) }
}

const CREATE_LABELS: Record<ClientFormat, string> = {
  anthropic: 'messages.create',
  'openai-chat': 'chat.completions.create',
  'openai-responses': 'responses.create',
}

function runReading(format: ClientFormat, usage: unknown): Reading {
  const counts = countsOf(format, usage)
  return counts ? { counts } : {}
}

const show = (counts: Counts | undefined, fields: string[]) => fields.map((f) => `${f} ${counts?.[f] ?? '—'}`).join(' ')

/**
 * The card of one phase: rows per format, the broken rules under them. `correlations` (with usagewire) has
 * how the sidecar joined each request, by request name.
 */
function phaseCard(
  phase: PhaseCard['phase'],
  planned: Planned[],
  captures: Capture[],
  calls: (tag: string) => ProviderCall[],
  tagPrefix: string,
  models: Record<ClientFormat, string>,
  formats: ClientFormat[],
  ms: number,
  correlations?: Map<string, RecordCorrelation>,
): PhaseCard {
  const cards: FormatCard[] = []
  for (const format of formats) {
    const rows: CardRow[] = []
    const findings: Finding[] = []
    const upstream = new Set<ProviderDialect>()
    const readings = new Map<string, { stream?: Reading; whole?: Reading }>()
    planned.forEach((p, i) => {
      if (p.format !== format) return
      const capture = captures[i]!
      const made = calls(tagOf(tagPrefix, p)).filter((c) => c.dialect !== undefined && c.scenario === p.scenario)
      for (const call of made) upstream.add(call.dialect!)
      const answered = [...made].reverse().find((c) => c.stated) ?? made.at(-1)
      const truth = answered?.stated ?? DOCTOR_SCENARIOS[p.scenario].truth
      const judged = judge(p, capture, truth, answered?.status)
      if (made.length === 0 && capture.status !== undefined && p.scenario !== 'error')
        for (const row of judged.rows) row.note = row.note ?? 'the provider saw no call for it'
      const correlation = correlations?.get(requestName(tagOf(tagPrefix, p), p))
      if (correlation) for (const row of judged.rows) row.correlation = correlation
      // What the gateway asked the provider for (the request's body, as the provider saw it).
      const asked = made.flatMap((call) => detectProviderRequest(p, call))
      if (asked.length > 0) judged.findings.push(asked[0]!)
      rows.push(...judged.rows)
      findings.push(...judged.findings)
      const key = p.scenario
      const entry = readings.get(key) ?? {}
      if (p.mode === 'create') entry.whole = judged.whole
      else if (p.mode === 'stream' || p.mode === 'stream+usage') {
        if (p.format !== 'openai-chat' || p.mode === 'stream+usage') entry.stream = judged.stream
      }
      readings.set(key, entry)
      // A wrong row that no rule explains still gets named.
      const wrong = judged.rows.filter((r) => !r.ok && !r.error)
      if (wrong.length > 0 && judged.findings.length === 0) {
        const first = wrong[0]!
        findings.push({
          rule: 'wrong-count',
          detail: `${p.scenario}/${p.mode}: ${first.label} reads ${show(first.reported, first.differs)} (provider: ${show(first.expected, first.differs)})`,
        })
      }
    })
    for (const [scenario, r] of readings) {
      if (scenario === 'abort' || scenario === 'error') continue
      findings.push(...detectStreamVsJson(format, scenario as ScenarioName, r.stream?.counts, r.whole?.counts))
    }
    const rules = new Map<RuleId, RuleReport>()
    for (const finding of findings) {
      const report = rules.get(finding.rule) ?? {
        rule: finding.rule,
        title: RULES[finding.rule].title,
        peerBugs: RULES[finding.rule].rows,
        details: [],
      }
      if (!report.details.includes(finding.detail)) report.details.push(finding.detail)
      rules.set(finding.rule, report)
    }
    cards.push({
      format,
      model: models[format],
      upstream: [...upstream],
      rows,
      rules: [...rules.values()].sort((a, b) => ORDER.indexOf(a.rule) - ORDER.indexOf(b.rule)),
      ok: rows.every((r) => r.ok),
    })
  }
  return { phase, formats: cards, ok: cards.every((c) => c.ok), ms }
}

const ORDER = Object.keys(RULES) as RuleId[]

export interface DoctorSession {
  /** Where the provider listens now (the gateway's provider base URLs). */
  readonly provider: ProviderInfo
  /** Runs the audit against a gateway already pointed at `provider`. */
  audit(options: AuditOptions): Promise<DoctorCard>
  /** Every call the provider got, in order. */
  readonly calls: ProviderCall[]
  close(): Promise<void>
}

function checkOptions(options: AuditOptions): void {
  try {
    const url = new URL(options.gateway)
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error()
  } catch {
    throw new DoctorUsageError(`--gateway needs an http(s) URL, not "${options.gateway}"`)
  }
  for (const format of options.clients ?? [])
    if (!CLIENT_FORMATS.includes(format))
      throw new DoctorUsageError(`unknown client format "${format}" (${CLIENT_FORMATS.join(', ')})`)
  for (const scenario of options.scenarios ?? [])
    if (!SCENARIO_NAMES.includes(scenario))
      throw new DoctorUsageError(`unknown scenario "${scenario}" (${SCENARIO_NAMES.join(', ')})`)
  if (options.clients?.length === 0 || options.scenarios?.length === 0) throw new DoctorUsageError('nothing to run')
}

/**
 * Audits in one session share its provider. Each one's requests carry a run id of their own, so they may
 * run at once; but a with-usagewire phase moves the provider behind the sidecar, so it runs alone: it waits
 * for the requests of other audits in flight, and they wait for it.
 */
function gate() {
  const inFlight = new Set<Promise<unknown>>()
  let moving: Promise<unknown> | undefined
  return {
    async shared<T>(task: () => Promise<T>): Promise<T> {
      while (moving) await moving
      const running = task()
      inFlight.add(running)
      try {
        return await running
      } finally {
        inFlight.delete(running)
      }
    },
    async alone<T>(task: () => Promise<T>): Promise<T> {
      while (moving) await moving
      const running = (async () => {
        await Promise.allSettled([...inFlight])
        return task()
      })()
      moving = running.then(
        () => undefined,
        () => undefined,
      )
      try {
        return await running
      } finally {
        moving = undefined
      }
    },
  }
}

/**
 * Starts the doctor's provider on `providerListen` and returns a session to audit gateways with: for a
 * caller that must start or configure its gateway once the provider's address is known.
 */
export async function openDoctor(options: { providerListen?: string; pauseMs?: number } = {}): Promise<DoctorSession> {
  const listen = options.providerListen ?? DEFAULT_PROVIDER_LISTEN
  try {
    parseListen(listen)
  } catch (error) {
    throw new DoctorUsageError(`--provider-listen: ${(error as Error).message}`)
  }
  let provider: DoctorProvider
  try {
    provider = await startDoctorProvider({ listen, ...(options.pauseMs !== undefined && { pauseMs: options.pauseMs }) })
  } catch (error) {
    throw new DoctorUsageError(`the provider cannot listen on ${listen}: ${(error as Error).message}`)
  }
  // The address the gateway was told, kept when the sidecar takes it over.
  const address = `${provider.host.includes(':') ? `[${provider.host}]` : provider.host}:${provider.port}`
  const info = providerInfo(provider.url)
  const providers: DoctorProvider[] = [provider]
  const callsFor = (tag: string) => providers.flatMap((p) => p.callsFor(tag))
  const phases = gate()

  /** Sends every planned request; with `named`, each carries its name for the sidecar's record. */
  async function run(
    options: AuditOptions,
    prefix: string,
    gateway: string,
    planned: Planned[],
    models: Record<ClientFormat, string>,
    named = false,
  ): Promise<Capture[]> {
    const tasks = planned.map((p) => () => {
      const tag = tagOf(prefix, p)
      const request: ClientRequest = {
        ...p,
        marker: marker(p.scenario, tag),
        model: models[p.format],
        gateway,
        apiKey: options.apiKey ?? 'usagewire-doctor',
        timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        ...(named && { headers: { [REQUEST_HEADER]: requestName(tag, p) } }),
      }
      return sendRequest(request)
    })
    return pool(tasks, options.concurrency ?? 8)
  }

  /** The with-usagewire phase: the sidecar on both sides of the gateway (or in front of it only). */
  async function withUsagewire(
    options: AuditOptions,
    prefix: string,
    gateway: string,
    planned: Planned[],
    models: Record<ClientFormat, string>,
    formats: ClientFormat[],
  ): Promise<PhaseCard> {
    const t = performance.now()
    const records: UsageRecord[] = []
    const messageStart = options.messageStart ?? 'hold'
    // The provider moves to a free port; the sidecar's provider side takes the address the gateway knows.
    const current = providers.at(-1)!
    await current.close()
    const moved = await startDoctorProvider({
      listen: `${current.host.includes(':') ? `[${current.host}]` : current.host}:0`,
    })
    providers.push(moved)
    const { startProxy } = await import('@usagewire/proxy')
    // Header and content correlation: the doctor's requests run concurrently, so the `single` strategy
    // (one request in flight) would join by chance and the card would depend on timing.
    const correlation: Strategy[] = ['header', 'content']
    // Each record keeps the name of the doctor's request it served, to show how (or why not) it was joined.
    const named = {
      onUsage: (record: UsageRecord) => void records.push(record),
      attributes: (request: { headers?: (name: string) => unknown }) => {
        const name = request.headers?.(REQUEST_HEADER)
        return typeof name === 'string' ? { doctorRequest: name } : undefined
      },
    }
    let sidecar: Sidecar
    let twoSided = true
    try {
      sidecar = await startProxy({
        listen: '127.0.0.1:0',
        target: gateway,
        providerListen: address,
        provider: moved.url,
        messageStart,
        correlation,
        // A gateway that streams OpenAI Chat without asking for usage gets it asked for: the sidecar then
        // has the provider's numbers to join (docs/sidecar.md#ensurestreamusage).
        ensureStreamUsage: true,
        metrics: false,
        ...named,
      })
    } catch {
      // The address could not be taken back: one-sided, the provider where the gateway expects it.
      twoSided = false
      await moved.close()
      providers.push(await startDoctorProvider({ listen: address }))
      sidecar = await startProxy({ listen: '127.0.0.1:0', target: gateway, messageStart, metrics: false, ...named })
    }
    let captures: Capture[]
    let ms: number
    try {
      captures = await run(options, prefix, sidecar.url, planned, models, true)
      ms = performance.now() - t
    } finally {
      // Requests still in flight (a client that left) finish, and write their records, before it closes.
      await sidecar.close(1000)
      if (twoSided) {
        // The provider goes back to the address the gateway knows, for the next audit.
        await moved.close()
        providers.push(await startDoctorProvider({ listen: address }))
      }
    }
    const correlations = new Map<string, RecordCorrelation>()
    for (const record of records) {
      const name = record.attributes?.doctorRequest
      if (name && record.correlation) correlations.set(name, record.correlation)
    }
    const card = phaseCard('with-usagewire', planned, captures, callsFor, prefix, models, formats, ms, correlations)
    card.sidecar = {
      url: sidecar.url,
      ...(sidecar.providerUrl && { providerUrl: sidecar.providerUrl }),
      twoSided,
      messageStart,
      correlation,
      records: records.length,
    }
    return card
  }

  return {
    provider: info,
    get calls() {
      return providers.flatMap((p) => p.calls)
    },
    async audit(options) {
      checkOptions(options)
      const waiting = performance.now()
      const gateway = options.gateway.replace(/\/+$/, '').replace(/\/v1$/, '')
      const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
      const deadline = waiting + (options.waitMs ?? 0)
      let attempts = 0
      while (!(await reachable(gateway, Math.min(timeoutMs, 5000)))) {
        attempts++
        if (performance.now() >= deadline) throw new GatewayUnreachableError(`cannot reach the gateway at ${gateway}`)
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
      // The audit's time starts once the gateway takes connections; the wait for it is reported apart.
      const started = performance.now()
      const waitedMs = attempts === 0 ? 0 : started - waiting
      const formats = options.clients ?? [...CLIENT_FORMATS]
      const models = { ...DEFAULT_MODELS, ...options.models }
      const planned = plan(options)
      // This audit's own requests: its provider calls are told from another audit's by this id.
      const id = randomBytes(4).toString('hex')
      const cards: PhaseCard[] = []

      await phases.shared(async () => {
        const t = performance.now()
        const before = await run(options, `${id}-b`, gateway, planned, models)
        if (before.every((c) => c.unreachable))
          throw new GatewayUnreachableError(`the gateway at ${gateway} took no request (${before[0]?.sdkError ?? ''})`)
        cards.push(
          phaseCard('without-usagewire', planned, before, callsFor, `${id}-b`, models, formats, performance.now() - t),
        )
      })
      if (options.withUsagewire)
        cards.push(await phases.alone(() => withUsagewire(options, `${id}-w`, gateway, planned, models, formats)))
      return {
        gateway,
        provider: info,
        sdk: { ...SDK_VERSIONS },
        phases: cards,
        ok: cards.every((p) => p.ok),
        ms: performance.now() - started,
        waitedMs,
      }
    },
    async close() {
      await Promise.all(providers.map((p) => p.close()))
    },
  }
}

/**
 * The whole audit in one call: starts the provider on `providerListen`, calls `onProvider` (configure or
 * start the gateway there), audits the gateway, closes the provider, and returns the card.
 */
export async function runDoctor(options: DoctorOptions): Promise<DoctorCard> {
  checkOptions(options)
  const session = await openDoctor({
    ...(options.providerListen !== undefined && { providerListen: options.providerListen }),
  })
  try {
    await options.onProvider?.(session.provider)
    return await session.audit(options)
  } finally {
    await session.close()
  }
}
