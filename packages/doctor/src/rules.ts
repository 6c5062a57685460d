/**
 * The wire rules a gateway can break, each detected on what the client received (its raw events or body)
 * against what the provider stated. Each rule names the rows of docs/peer-bugs.md it comes from. Pure
 * functions: test/doctor/rules.test.ts checks every detector on small event lists.
 */
import type { ProviderDialect, ScenarioName } from './provider/scenarios.js'
import type { TrueUsage } from './provider/types.js'
import {
  anthropicCounts,
  chatCounts,
  readAnthropicBody,
  readAnthropicFinal,
  readAnthropicStream,
  readChatBody,
  readChatStream,
  readResponsesBody,
  readResponsesStream,
  responsesCounts,
  type ClientFormat,
  type Counts,
} from './readers.js'
import { differences, expectedCounts } from './truth.js'
import { at, isObject, type Json, type WireEvent } from './wire.js'

export type RuleId =
  | 'zero-start'
  | 'zero-erases'
  | 'cache-in-input'
  | 'cache-outside-prompt'
  | 'cache-twice'
  | 'cache-dropped'
  | 'reasoning-outside'
  | 'output-per-chunk'
  | 'usage-ignored'
  | 'no-stream-usage-requested'
  | 'final-missing'
  | 'unasked-usage'
  | 'event-order'
  | 'strict-details'
  | 'stream-vs-json'
  | 'ttl-split'
  | 'error-status'
  | 'request-failed'
  | 'wrong-count'

export interface RuleInfo {
  title: string
  /** Rows of docs/peer-bugs.md where gateways broke it. */
  rows: number[]
}

export const RULES: Record<RuleId, RuleInfo> = {
  'zero-start': { title: 'zeros in message_start', rows: [1, 2, 8, 28, 30] },
  'zero-erases': { title: 'a 0 (or null) that erases a count stated earlier', rows: [31, 42] },
  'cache-in-input': {
    title: 'cache counted in Anthropic input_tokens (left out of its own fields, or counted twice)',
    rows: [3, 53],
  },
  'cache-outside-prompt': { title: 'cache left out of the prompt total', rows: [20, 21, 22] },
  'cache-twice': { title: 'cache counted twice in the prompt total', rows: [53, 54] },
  'cache-dropped': { title: 'cache reads or writes missing', rows: [5, 6, 7, 9, 13, 15] },
  'reasoning-outside': { title: 'reasoning left out of the output, or added to it twice', rows: [24, 58] },
  'output-per-chunk': { title: 'output counted per chunk', rows: [4] },
  'usage-ignored': { title: 'usage only on a chunk the client ignores', rows: [10, 11, 23, 38] },
  'no-stream-usage-requested': { title: 'the gateway never asked the provider for streamed usage', rows: [32] },
  'final-missing': { title: 'the final usage block is missing', rows: [12, 14, 32, 38] },
  'unasked-usage': { title: 'a usage chunk the client did not ask for', rows: [34] },
  'event-order': { title: 'an event order a client rejects', rows: [35, 37] },
  'strict-details': { title: 'usage details strict clients require are missing', rows: [36] },
  'stream-vs-json': { title: 'streamed and non-streamed usage disagree', rows: [18] },
  'ttl-split': { title: 'the cache-write TTL split is lost or wrong', rows: [] },
  'error-status': { title: "the provider's 4xx reached the client as a success or a status SDKs retry", rows: [] },
  'request-failed': { title: 'a request failed at the gateway', rows: [] },
  'wrong-count': { title: "a count differs from the provider's", rows: [] },
}

/** How a client called: Anthropic `stream` / `create`; Chat `stream+usage` (include_usage), `stream`, `create`. */
export type Mode = 'stream' | 'stream+usage' | 'create'

export const MODES: Record<ClientFormat, readonly Mode[]> = {
  anthropic: ['stream', 'create'],
  'openai-chat': ['stream+usage', 'stream', 'create'],
  'openai-responses': ['stream', 'create'],
}

/** What one client request received, and what the provider stated for it. */
export interface Observation {
  format: ClientFormat
  mode: Mode
  scenario: ScenarioName
  /** What the provider's answer stated (canonical); none for the error scenario. */
  truth?: TrueUsage
  /** The HTTP status the client got; none when it got no answer. */
  status?: number
  /** The answer's `x-should-retry` header, when it had one (the SDKs obey it before the status). */
  retryHeader?: string
  /** A streamed answer's events. */
  events?: WireEvent[]
  /** A non-streamed answer's body. */
  body?: unknown
  /** The client left before the end (the abort scenario). */
  partial?: boolean
}

export interface Finding {
  rule: RuleId
  detail: string
}

const streaming = (mode: Mode) => mode !== 'create'

const list = (parts: string[]) => parts.join(', ')

// ---- content chunks -------------------------------------------------------------------------------------

/** What a content chunk carries. */
export type ContentKind = 'text' | 'tool-call arguments' | 'reasoning'

const KINDS: readonly ContentKind[] = ['text', 'tool-call arguments', 'reasoning']

export interface ContentChunks {
  total: number
  kinds: Partial<Record<ContentKind, number>>
}

const ANTHROPIC_DELTAS: Record<string, ContentKind> = {
  text_delta: 'text',
  input_json_delta: 'tool-call arguments',
  thinking_delta: 'reasoning',
}

const nonEmpty = (value: unknown) => typeof value === 'string' && value !== ''

/** What one Chat chunk's deltas carry, or nothing (a role-only chunk, the finish, the usage chunk). */
function chatKind(chunk: Json): ContentKind | undefined {
  const choices = Array.isArray(chunk.choices) ? chunk.choices : []
  for (const choice of choices) {
    const delta = at(choice, 'delta')
    if (!isObject(delta)) continue
    if (nonEmpty(delta.reasoning_content) || nonEmpty(delta.reasoning)) return 'reasoning'
    if (nonEmpty(delta.content)) return 'text'
    if (Array.isArray(delta.tool_calls) && delta.tool_calls.length > 0) return 'tool-call arguments'
  }
  return undefined
}

/**
 * The content chunks a client got, by what they carry: Anthropic `content_block_delta` events with a
 * `text_delta`, `input_json_delta` (tool-call arguments) or `thinking_delta` (events with an `event:` name,
 * as the SDK reads them); Chat chunks before `[DONE]` whose delta has content, tool calls or reasoning
 * (`reasoning_content`, `reasoning`); Responses `response.….delta` events with a non-empty `delta` (text,
 * function-call arguments, reasoning). A gateway that counts one output token per chunk states their number.
 */
export function contentChunks(format: ClientFormat, events: WireEvent[]): ContentChunks {
  const kinds: Partial<Record<ContentKind, number>> = {}
  const add = (kind: ContentKind | undefined) => {
    if (kind) kinds[kind] = (kinds[kind] ?? 0) + 1
  }
  for (const event of events) {
    if (format === 'openai-chat' && event.data.startsWith('[DONE]')) break
    if (!isObject(event.json)) continue
    const json = event.json
    if (format === 'anthropic') {
      if (event.event !== null && json.type === 'content_block_delta')
        add(ANTHROPIC_DELTAS[String(at(json, 'delta', 'type'))])
    } else if (format === 'openai-chat') add(chatKind(json))
    else if (typeof json.type === 'string' && /^response\..+\.delta$/.test(json.type) && nonEmpty(json.delta))
      add(
        json.type.includes('function_call_arguments')
          ? 'tool-call arguments'
          : json.type.includes('reasoning')
            ? 'reasoning'
            : 'text',
      )
  }
  return { total: KINDS.reduce((n, kind) => n + (kinds[kind] ?? 0), 0), kinds }
}

/** The output counted one per content chunk (row 4): a count that is not the provider's and equals their number. */
function perChunk(
  format: ClientFormat,
  events: WireEvent[],
  output: number | undefined,
  truth: TrueUsage,
  where: string,
): Finding[] {
  const chunks = contentChunks(format, events)
  if (output === undefined || output === truth.output || chunks.total === 0 || output !== chunks.total) return []
  const name = format === 'openai-chat' ? 'completion_tokens' : 'output_tokens'
  const parts = KINDS.filter((kind) => chunks.kinds[kind]).map((kind) => `${chunks.kinds[kind]} ${kind}`)
  return [
    {
      rule: 'output-per-chunk',
      detail: `${where}: ${name} ${output}, the number of content chunks: ${list(parts)} (provider ${truth.output})`,
    },
  ]
}

// ---- shared: prompt totals, cache and reasoning -------------------------------------------------------

/** OpenAI-shaped counts (Chat or Responses) against the truth: cache and reasoning inclusion. */
function openaiShape(format: ClientFormat, counts: Counts, truth: TrueUsage, where: string): Finding[] {
  const out: Finding[] = []
  const promptKey = format === 'openai-chat' ? 'prompt' : 'input'
  const outputKey = format === 'openai-chat' ? 'completion' : 'output'
  const promptName = format === 'openai-chat' ? 'prompt_tokens' : 'input_tokens'
  const outputName = format === 'openai-chat' ? 'completion_tokens' : 'output_tokens'
  const prompt = truth.input + truth.cacheRead + truth.cacheWrite
  const reported = counts[promptKey]
  const cache = truth.cacheRead + truth.cacheWrite
  if (reported !== undefined && cache > 0 && reported !== prompt) {
    const missing = [truth.cacheRead, truth.cacheWrite, cache].filter((n) => n > 0)
    if (missing.some((n) => reported === prompt - n))
      out.push({
        rule: 'cache-outside-prompt',
        detail: `${where}: ${promptName} ${reported}, the prompt is ${prompt} with the cache`,
      })
    else if (missing.some((n) => reported === prompt + n))
      out.push({ rule: 'cache-twice', detail: `${where}: ${promptName} ${reported}, the prompt is ${prompt}` })
  }
  if (truth.cacheRead > 0 && !counts.cached)
    out.push({
      rule: 'cache-dropped',
      detail: `${where}: cached_tokens ${counts.cached ?? 'absent'}, the provider read ${truth.cacheRead} from the cache`,
    })
  const output = counts[outputKey]
  if (truth.reasoning > 0 && output !== undefined && output !== truth.output) {
    if (output === truth.output - truth.reasoning)
      out.push({
        rule: 'reasoning-outside',
        detail: `${where}: ${outputName} ${output} leaves out ${truth.reasoning} reasoning tokens`,
      })
    else if (output === truth.output + truth.reasoning)
      out.push({
        rule: 'reasoning-outside',
        detail: `${where}: ${outputName} ${output} adds the ${truth.reasoning} reasoning tokens again`,
      })
  }
  return out
}

/** Anthropic counts against the truth: the cache inside `input_tokens`, dropped cache, reasoning. */
function anthropicShape(counts: Counts, truth: TrueUsage, where: string): Finding[] {
  const out: Finding[] = []
  const cache = truth.cacheRead + truth.cacheWrite
  const inclusive = [truth.cacheRead, truth.cacheWrite, cache].filter((n) => n > 0).map((n) => truth.input + n)
  let inInput = false
  if (cache > 0 && counts.input !== undefined && counts.input !== truth.input && inclusive.includes(counts.input)) {
    inInput = true
    const repeated = (counts.cacheRead ?? 0) > 0 || (counts.cacheWrite ?? 0) > 0
    out.push({
      rule: 'cache-in-input',
      detail: repeated
        ? `${where}: input_tokens ${counts.input} includes the cache, and the cache fields count it again`
        : `${where}: input_tokens ${counts.input} includes the cache (input ${truth.input}); the cache fields say ${counts.cacheRead ?? 'nothing'}`,
    })
  }
  if (!inInput) {
    const dropped: string[] = []
    if (truth.cacheRead > 0 && !counts.cacheRead)
      dropped.push(`cache read ${counts.cacheRead ?? 'absent'} (provider ${truth.cacheRead})`)
    if (truth.cacheWrite > 0 && !counts.cacheWrite)
      dropped.push(`cache write ${counts.cacheWrite ?? 'absent'} (provider ${truth.cacheWrite})`)
    if (dropped.length > 0) out.push({ rule: 'cache-dropped', detail: `${where}: ${list(dropped)}` })
  }
  if (truth.reasoning > 0 && counts.output === truth.output - truth.reasoning)
    out.push({ rule: 'reasoning-outside', detail: `${where}: output_tokens ${counts.output} leaves out the thinking` })
  return out
}

// ---- Anthropic Messages --------------------------------------------------------------------------------

const USAGE_KEYS = ['input_tokens', 'cache_read_input_tokens', 'cache_creation_input_tokens', 'output_tokens'] as const

function anthropicStreamFindings(obs: Observation, events: WireEvent[], truth: TrueUsage | undefined): Finding[] {
  const out: Finding[] = []
  const named = events.filter((e) => e.event !== null && e.event !== 'ping' && isObject(e.json))
  const types = named.map((e) => String((e.json as Json).type))
  const starts = named.filter((e) => (e.json as Json).type === 'message_start')
  const deltas = named.filter((e) => (e.json as Json).type === 'message_delta')
  const stop = types.indexOf('message_stop')

  // Event order (what the SDK throws on or loses).
  const order: string[] = []
  if (starts.length > 1) order.push(`${starts.length} message_start events`)
  if (types.length > 0 && types[0] !== 'message_start' && !types.includes('error'))
    order.push(`the first event is ${types[0]}`)
  if (stop !== -1 && stop < types.length - 1)
    order.push(`${types.length - 1 - stop} event(s) after message_stop (${types.slice(stop + 1).join(', ')})`)
  if (stop === -1 && !obs.partial && types.length > 0 && !types.includes('error')) order.push('no message_stop')
  const unnamed = events.filter((e) => e.event === null && isObject(e.json))
  if (unnamed.length > 0 && named.length === 0) order.push('no event has an event: name (the SDK skips them all)')
  if (order.length > 0) out.push({ rule: 'event-order', detail: `${obs.scenario}/${obs.mode}: ${list(order)}` })

  // Usage on events the SDK never yields.
  const hidden = unnamed.filter((e) => isObject(at(e.json, 'usage')) || isObject(at(e.json, 'message', 'usage')))
  if (hidden.length > 0)
    out.push({
      rule: 'usage-ignored',
      detail: `${obs.scenario}/${obs.mode}: usage on ${hidden.length} event(s) without an event: name, which the SDK skips`,
    })

  if (!truth) return out
  const where = `${obs.scenario}/${obs.mode}`

  // message_start: a placeholder 0 (or nothing) where the provider stated a count. A cache count the
  // stream never states at all is the cache dropped, not a placeholder.
  const start = starts[0] && at(starts[0].json, 'message', 'usage')
  const later = readAnthropicStream(events, 'claude-code', true).counts ?? {}
  if (starts[0]) {
    const counts = anthropicCounts(start)
    const zeros: string[] = []
    if (truth.input > 0 && !counts.input) zeros.push(`input ${counts.input ?? 'absent'} (provider ${truth.input})`)
    if (truth.cacheRead > 0 && !counts.cacheRead && later.cacheRead)
      zeros.push(`cache read ${counts.cacheRead ?? 'absent'} (provider ${truth.cacheRead})`)
    if (truth.cacheWrite > 0 && !counts.cacheWrite && later.cacheWrite)
      zeros.push(`cache write ${counts.cacheWrite ?? 'absent'} (provider ${truth.cacheWrite})`)
    if (zeros.length > 0) out.push({ rule: 'zero-start', detail: `${where}: message_start says ${list(zeros)}` })
    if (truth.cacheWrite1h !== undefined && truth.cacheWrite > 0) {
      const creation = at(start, 'cache_creation')
      const m5 = at(creation, 'ephemeral_5m_input_tokens')
      const h1 = at(creation, 'ephemeral_1h_input_tokens')
      if (!isObject(creation))
        out.push({
          rule: 'ttl-split',
          detail: `${where}: message_start has no cache_creation (5m ${truth.cacheWrite5m}, 1h ${truth.cacheWrite1h}): priced at the 5m rate`,
        })
      else if (m5 !== truth.cacheWrite5m || h1 !== truth.cacheWrite1h)
        out.push({
          rule: 'ttl-split',
          detail: `${where}: message_start says 5m ${String(m5)}, 1h ${String(h1)} (provider ${truth.cacheWrite5m}, ${truth.cacheWrite1h})`,
        })
    }
  }

  // A 0 in a later block where an earlier one stated the count.
  const known: Record<string, number> = {}
  const blocks = named
    .map((e) => ({
      type: (e.json as Json).type,
      usage: (e.json as Json).type === 'message_start' ? at(e.json, 'message', 'usage') : at(e.json, 'usage'),
    }))
    .filter((b) => (b.type === 'message_start' || b.type === 'message_delta') && isObject(b.usage))
  const erased: string[] = []
  for (const block of blocks) {
    for (const key of USAGE_KEYS) {
      const value = at(block.usage, key)
      if (value === 0 && (known[key] ?? 0) > 0 && block.type === 'message_delta')
        erased.push(`${key} 0 after ${known[key]}`)
      if (typeof value === 'number' && value > 0) known[key] = value
    }
  }
  if (erased.length > 0) out.push({ rule: 'zero-erases', detail: `${where}: message_delta says ${list(erased)}` })

  if (obs.partial) return out

  // The final usage.
  if (!deltas.some((e) => typeof at(e.json, 'usage', 'output_tokens') === 'number'))
    out.push({
      rule: 'final-missing',
      detail: `${where}: ${deltas.length === 0 ? 'no message_delta' : 'no message_delta carries usage'}`,
    })

  // The usage the stream ends with, by the current SDK's rule: judged even where the SDK throws first (a
  // second message_start), so a wrong final count is named beside the event order.
  const final = readAnthropicFinal(events)
  if (final.counts) {
    const judged = [
      ...perChunk('anthropic', events, final.counts.output, truth, where),
      ...anthropicShape(final.counts, truth, where),
    ]
    out.push(...judged)
    if (judged.length === 0 && readAnthropicStream(events, 'sdk').error)
      out.push(...rejectedButWrong('anthropic', final.counts, truth, where))
  }
  return out
}

/**
 * A stream the SDK rejects shows its readers' errors, not its numbers: a wrong final count no rule above
 * explains is named here, so the card says it beside the event order.
 */
function rejectedButWrong(format: ClientFormat, counts: Counts, truth: TrueUsage, where: string): Finding[] {
  const expected = expectedCounts(format, truth)
  const differs = differences(format, expected, counts)
  if (differs.length === 0) return []
  const show = (c: Counts) => differs.map((f) => `${f} ${c[f] ?? '—'}`).join(' ')
  return [
    {
      rule: 'wrong-count',
      detail: `${where}: the usage the stream ends with says ${show(counts)} (provider: ${show(expected)}); the SDK rejects the stream before reading it`,
    },
  ]
}

function anthropicBodyFindings(obs: Observation, body: unknown, truth: TrueUsage): Finding[] {
  const where = `${obs.scenario}/${obs.mode}`
  const reading = readAnthropicBody(body)
  if (reading.error) return []
  if (!reading.counts) return [{ rule: 'final-missing', detail: `${where}: the body has no usage` }]
  const out = anthropicShape(reading.counts, truth, where)
  if (truth.cacheWrite1h !== undefined && truth.cacheWrite > 0) {
    const split = reading.split
    if (!split)
      out.push({
        rule: 'ttl-split',
        detail: `${where}: no cache_creation (5m ${truth.cacheWrite5m}, 1h ${truth.cacheWrite1h}): priced at the 5m rate`,
      })
    else if (split.m5 !== truth.cacheWrite5m || split.h1 !== truth.cacheWrite1h)
      out.push({
        rule: 'ttl-split',
        detail: `${where}: cache_creation says 5m ${split.m5}, 1h ${split.h1} (provider ${truth.cacheWrite5m}, ${truth.cacheWrite1h})`,
      })
  }
  return out
}

// ---- OpenAI Chat Completions ------------------------------------------------------------------------

function chatStreamFindings(obs: Observation, events: WireEvent[], truth: TrueUsage | undefined): Finding[] {
  const out: Finding[] = []
  const where = `${obs.scenario}/${obs.mode}`
  const done = events.findIndex((e) => e.data.startsWith('[DONE]'))
  const chunks = (done === -1 ? events : events.slice(0, done))
    .filter((e) => isObject(e.json))
    .map((e) => e.json as Json)
  const order: string[] = []
  if (done !== -1 && done < events.length - 1) order.push(`${events.length - 1 - done} event(s) after [DONE]`)
  const finished = chunks.some(
    (c) => Array.isArray(c.choices) && c.choices.some((ch) => isObject(ch) && typeof ch.finish_reason === 'string'),
  )
  if (!finished && !obs.partial && chunks.length > 0 && !chunks.some((c) => c.error)) order.push('no finish_reason')
  if (order.length > 0) out.push({ rule: 'event-order', detail: `${where}: ${list(order)}` })

  const withUsage = chunks.filter((c) => isObject(c.usage))
  const groq = chunks.filter((c) => isObject(at(c, 'x_groq', 'usage')))
  const usageOnly = withUsage.filter((c) => !Array.isArray(c.choices) || c.choices.length === 0)
  if (obs.mode === 'stream' && usageOnly.length > 0)
    out.push({
      rule: 'unasked-usage',
      detail: `${where}: a usage-only chunk without include_usage; strict clients reject it`,
    })
  if (withUsage.length > 0 && usageOnly.length === 0)
    out.push({
      rule: 'usage-ignored',
      detail: `${where}: usage only on a chunk with choices, which readers waiting for choices: [] skip`,
    })
  if (withUsage.length === 0 && groq.length > 0)
    out.push({
      rule: 'usage-ignored',
      detail: `${where}: usage only in x_groq.usage, which the OpenAI SDK does not read`,
    })

  // A `usage: null` (or a 0) after the usage block: the SDK's Object.assign takes it.
  const lastUsage = chunks.map((c) => ('usage' in c ? c.usage : undefined)).filter((u) => u !== undefined)
  const firstBlock = lastUsage.findIndex((u) => isObject(u))
  if (firstBlock !== -1 && lastUsage.slice(firstBlock + 1).some((u) => u === null))
    out.push({
      rule: 'zero-erases',
      detail: `${where}: a chunk says usage: null after the usage block, which erases it in the SDK`,
    })

  if (obs.partial || !truth) return out
  if (obs.mode === 'stream+usage' && withUsage.length === 0)
    out.push({
      rule: 'final-missing',
      detail: `${where}: no chunk carries usage, though the client asked with include_usage`,
    })
  // As the SDK reads it; where the SDK throws (no finish_reason, an error chunk), the last usage block.
  const reading = readChatStream(events)
  const last = withUsage.at(-1)
  const counts = reading.error ? last && chatCounts(last.usage) : reading.counts
  if (counts) {
    const judged = [
      ...perChunk('openai-chat', events, counts.completion, truth, where),
      ...openaiShape('openai-chat', counts, truth, where),
    ]
    out.push(...judged)
    if (judged.length === 0 && reading.error) out.push(...rejectedButWrong('openai-chat', counts, truth, where))
  }
  return out
}

function chatBodyFindings(obs: Observation, body: unknown, truth: TrueUsage): Finding[] {
  const where = `${obs.scenario}/${obs.mode}`
  const reading = readChatBody(body)
  if (reading.error) return []
  if (!reading.counts) return [{ rule: 'final-missing', detail: `${where}: the body has no usage` }]
  return openaiShape('openai-chat', reading.counts, truth, where)
}

// ---- OpenAI Responses -----------------------------------------------------------------------------------

const TERMINAL = ['response.completed', 'response.incomplete', 'response.failed']

function strictDetails(usage: unknown, where: string): Finding[] {
  const missing: string[] = []
  if (typeof at(usage, 'input_tokens_details', 'cached_tokens') !== 'number')
    missing.push('input_tokens_details.cached_tokens')
  if (typeof at(usage, 'output_tokens_details', 'reasoning_tokens') !== 'number')
    missing.push('output_tokens_details.reasoning_tokens')
  return missing.length > 0 ? [{ rule: 'strict-details', detail: `${where}: usage without ${list(missing)}` }] : []
}

function responsesStreamFindings(obs: Observation, events: WireEvent[], truth: TrueUsage | undefined): Finding[] {
  const out: Finding[] = []
  const where = `${obs.scenario}/${obs.mode}`
  const typed = events.filter((e) => isObject(e.json)).map((e) => e.json as Json)
  const types = typed.map((e) => String(e.type))
  const order: string[] = []
  if (types.length > 0 && types[0] !== 'response.created') order.push(`the first event is ${types[0]}`)
  const terminal = types.findIndex((t) => TERMINAL.includes(t))
  if (terminal !== -1 && terminal < types.length - 1)
    order.push(`${types.length - 1 - terminal} event(s) after ${types[terminal]}`)
  if (terminal === -1 && !obs.partial && types.length > 0 && !types.includes('error')) order.push('no terminal event')
  if (order.length > 0) out.push({ rule: 'event-order', detail: `${where}: ${list(order)}` })

  if (obs.partial || !truth) return out
  const final = terminal === -1 ? undefined : typed[terminal]
  const usage = at(final, 'response', 'usage')
  if (!isObject(usage)) {
    const elsewhere = typed.some((e) => !TERMINAL.includes(String(e.type)) && isObject(at(e, 'response', 'usage')))
    out.push(
      elsewhere
        ? { rule: 'usage-ignored', detail: `${where}: usage only on a non-terminal event` }
        : {
            rule: 'final-missing',
            detail: `${where}: ${final ? `${String(final.type)} has no usage` : 'no terminal event with usage'}`,
          },
    )
    return out
  }
  if (final!.type !== 'response.completed')
    out.push({
      rule: 'usage-ignored',
      detail: `${where}: usage on ${String(final!.type)}, which the SDK's finalResponse() does not read`,
    })
  out.push(...strictDetails(usage, where))
  const counts = responsesCounts(usage)
  out.push(...perChunk('openai-responses', events, counts.output, truth, where))
  out.push(...openaiShape('openai-responses', counts, truth, where))
  return out
}

function responsesBodyFindings(obs: Observation, body: unknown, truth: TrueUsage): Finding[] {
  const where = `${obs.scenario}/${obs.mode}`
  const reading = readResponsesBody(body)
  if (reading.error) return []
  if (!reading.counts) return [{ rule: 'final-missing', detail: `${where}: the body has no usage` }]
  return [...strictDetails(at(body, 'usage'), where), ...openaiShape('openai-responses', reading.counts, truth, where)]
}

// ---- every format ---------------------------------------------------------------------------------------

/** The 4xx statuses the official SDKs (Anthropic, OpenAI) retry: a request timeout, a conflict, a rate limit. */
export const RETRIED_STATUSES: readonly number[] = [408, 409, 429]

/**
 * Whether the client got the provider's 400 as it should (docs/doctor.md#broken-rules): a 4xx that clients
 * do not retry. The same status is not required (a gateway may answer 422 for it); a 408, 409 or 429 is
 * wrong, as is a 5xx or any answer with `x-should-retry: true`: the SDKs retry them, so one failed request
 * becomes several provider calls, and the application sees a rate limit or an outage instead of its own
 * mistake.
 */
export function errorStatusRight(status: number, retryHeader?: string): boolean {
  return status >= 400 && status < 500 && !RETRIED_STATUSES.includes(status) && retryHeader !== 'true'
}

/**
 * The rules `obs` breaks. The error scenario is judged on its status alone (`errorStatusRight`).
 */
export function detect(obs: Observation): Finding[] {
  const where = `${obs.scenario}/${obs.mode}`
  if (obs.scenario === 'error') {
    if (obs.status === undefined || errorStatusRight(obs.status, obs.retryHeader)) return []
    const header = obs.retryHeader === 'true' ? ' with x-should-retry: true' : ''
    return [
      {
        rule: 'error-status',
        detail:
          obs.status < 400
            ? `${where}: HTTP ${obs.status}: the provider's 400 became a success`
            : `${where}: HTTP ${obs.status}${header}: the provider answered 400; SDKs retry it`,
      },
    ]
  }
  if (obs.status !== undefined && obs.status >= 400) return []
  if (streaming(obs.mode) && obs.events) {
    if (obs.format === 'anthropic') return anthropicStreamFindings(obs, obs.events, obs.truth)
    if (obs.format === 'openai-chat') return chatStreamFindings(obs, obs.events, obs.truth)
    return responsesStreamFindings(obs, obs.events, obs.truth)
  }
  if (obs.body === undefined || !obs.truth) return []
  if (obs.format === 'anthropic') return anthropicBodyFindings(obs, obs.body, obs.truth)
  if (obs.format === 'openai-chat') return chatBodyFindings(obs, obs.body, obs.truth)
  return responsesBodyFindings(obs, obs.body, obs.truth)
}

/**
 * Streamed and non-streamed answers to the same scenario must say the same (row 18): compared as the
 * current SDK reads each, in the format's fields.
 */
export function detectStreamVsJson(
  format: ClientFormat,
  scenario: ScenarioName,
  streamed: Counts | undefined,
  whole: Counts | undefined,
): Finding[] {
  if (!streamed || !whole) return []
  const diff = differences(format, whole, streamed)
  if (diff.length === 0) return []
  const show = (c: Counts) => diff.map((f) => `${f} ${c[f] ?? '—'}`).join(' ')
  return [{ rule: 'stream-vs-json', detail: `${scenario}: streamed ${show(streamed)}; not streamed ${show(whole)}` }]
}

/** The request a gateway made to the provider for one client request, as the provider saw it. */
export interface ProviderRequest {
  dialect: ProviderDialect | undefined
  streaming: boolean
  /** The request's JSON body. */
  body?: unknown
}

/**
 * What the gateway asked the provider for (row 32): a streamed Chat Completions call without
 * `stream_options.include_usage: true` gets a stream with no usage at all, as OpenAI's, so the gateway has
 * no numbers to give its client and neither has usagewire. Not a fault when the client itself streamed Chat
 * without asking for usage (the gateway passed its choice on), nor in the error scenario (no usage is due).
 */
export function detectProviderRequest(
  obs: Pick<Observation, 'format' | 'mode' | 'scenario'>,
  request: ProviderRequest,
): Finding[] {
  if (request.dialect !== 'openai-chat' || !request.streaming || obs.scenario === 'error') return []
  if (obs.format === 'openai-chat' && obs.mode === 'stream') return []
  if (at(request.body, 'stream_options', 'include_usage') === true) return []
  const options = at(request.body, 'stream_options')
  const said = isObject(options) ? `stream_options ${JSON.stringify(options)}` : 'no stream_options'
  return [
    {
      rule: 'no-stream-usage-requested',
      detail: `${obs.scenario}/${obs.mode}: the gateway streamed Chat Completions with ${said}: the provider sent no usage`,
    },
  ]
}

/** The reading the current SDK of `format` makes of a stream (what the stream-vs-json rule compares). */
export function currentStreamReading(format: ClientFormat, events: WireEvent[]) {
  if (format === 'anthropic') return readAnthropicStream(events, 'sdk')
  if (format === 'openai-chat') return readChatStream(events)
  return readResponsesStream(events)
}
