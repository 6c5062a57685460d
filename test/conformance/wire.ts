/**
 * Helpers for the conformance corpus: read a body as the client sees it (events, usage
 * objects), match a partial expected record, and run the `wire` checks of a fixture.
 * Independent of @usagewire/core on purpose: the corpus must not trust the code it tests.
 */

import { eventStreamProblems, eventStreamText, isEventStream } from './eventstream.js'

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type JsonObject = { [key: string]: Json }

/** The `wire` section of an expect.json. Paths are dotted (`prompt_tokens_details.cached_tokens`). */
export interface WireChecks {
  /** Output bytes equal input bytes. */
  outputEqualsInput?: boolean
  /** Output bytes are a prefix of input bytes (client aborts: nothing rewritten before the cut). */
  outputIsPrefixOfInput?: boolean
  /** Same events in the same order; every event without a usage object is byte-identical. */
  unchangedEvents?: boolean
  /** Input and output are identical once every `"usage": <value>` is blanked. Default: on, unless the fixture aborts. */
  onlyUsageChanged?: boolean
  /** Number of output events that carry a usage object (no injected or duplicated usage chunks). */
  usageEventCount?: number
  /** Fields of the usage object in the first usage-carrying output event. */
  firstUsage?: Record<string, Json>
  /** Fields of the usage object in the last usage-carrying output event. */
  lastUsage?: Record<string, Json>
  /** Paths, relative to the last usage-carrying event's JSON payload, that must be absent (e.g. `usage.input_tokens`). */
  absentFields?: string[]
  /** The last usage object is self-consistent by OpenAI semantics (chat or Responses). */
  consistent?: boolean
}

export interface WireEvent {
  /** The event's bytes (as text), blank-line terminator included. */
  raw: string
  name: string | null
  data: string | null
  json: Json | undefined
  /** The usage object this event carries, if any (null usage does not count). */
  usage: JsonObject | null
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Where each dialect puts usage: chat top-level (Groq: x_groq.usage), Anthropic message_start / message_delta, Responses terminal events. */
export function usageOf(json: Json | undefined): JsonObject | null {
  if (!isObject(json)) return null
  const nested = (key: string): Json | undefined => (isObject(json[key]) ? (json[key] as JsonObject).usage : undefined)
  for (const candidate of [json.usage, nested('message'), nested('response'), nested('x_groq')]) {
    if (isObject(candidate)) return candidate
  }
  return null
}

/** Lines with their terminators (LF, CRLF or CR); the last line may have none. */
function lines(text: string): { content: string; raw: string }[] {
  const out: { content: string; raw: string }[] = []
  let i = 0
  while (i < text.length) {
    let j = i
    while (j < text.length && text[j] !== '\n' && text[j] !== '\r') j++
    const end = text[j] === '\r' && text[j + 1] === '\n' ? j + 2 : j < text.length ? j + 1 : j
    out.push({ content: text.slice(i, j), raw: text.slice(i, end) })
    i = end
  }
  return out
}

function parse(data: string | null): Json | undefined {
  if (data === null || data === '[DONE]') return undefined
  try {
    return JSON.parse(data) as Json
  } catch {
    return undefined
  }
}

/** Cut a body into events: SSE on blank lines, anything else is one event. */
export function splitEvents(body: string, contentType: string): WireEvent[] {
  if (!contentType.includes('event-stream')) {
    const json = parse(body)
    return [{ raw: body, name: null, data: body, json, usage: usageOf(json) }]
  }
  const events: WireEvent[] = []
  let raw = ''
  let name: string | null = null
  let data: string[] = []
  const close = () => {
    if (raw === '') return
    const joined = data.length > 0 ? data.join('\n') : null
    const json = parse(joined)
    events.push({ raw, name, data: joined, json, usage: usageOf(json) })
    raw = ''
    name = null
    data = []
  }
  for (const line of lines(body)) {
    raw += line.raw
    if (line.content === '') {
      close()
      continue
    }
    const colon = line.content.indexOf(':')
    const field = colon === -1 ? line.content : line.content.slice(0, colon)
    let value = colon === -1 ? '' : line.content.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') name = value
    else if (field === 'data') data.push(value)
  }
  close()
  return events
}

/** Index just past the JSON string starting at `i` (or the line end, if it never closes). */
function stringEnd(text: string, i: number): number {
  let j = i + 1
  while (j < text.length) {
    const c = text[j]
    if (c === '\\') j += 2
    else if (c === '"') return j + 1
    else if (c === '\n' || c === '\r') return j
    else j++
  }
  return text.length
}

/** Index just past the JSON value starting at `i` (objects and arrays bracket-matched, string-aware). */
function valueEnd(text: string, i: number): number {
  if (text[i] !== '{' && text[i] !== '[') {
    let j = i
    while (j < text.length && !',}]\r\n'.includes(text[j] as string)) j++
    return j
  }
  let depth = 0
  let j = i
  while (j < text.length) {
    const c = text[j]
    if (c === '"') {
      j = stringEnd(text, j)
      continue
    }
    if (c === '{' || c === '[') depth++
    else if (c === '}' || c === ']') {
      depth--
      if (depth === 0) return j + 1
    }
    j++
  }
  return j
}

/** Replace the value of every `"usage":` key with a placeholder; everything else stays byte for byte. */
export function blankUsage(text: string): string {
  let out = ''
  let i = 0
  while (i < text.length) {
    if (text[i] !== '"') {
      out += text[i]
      i++
      continue
    }
    const end = stringEnd(text, i)
    const str = text.slice(i, end)
    out += str
    i = end
    // Bedrock's metrics are a usage block too (docs/dialects/bedrock-invoke.md#invocation-metrics).
    if (str !== '"usage"' && str !== '"amazon-bedrock-invocationMetrics"') continue
    let k = i
    while (k < text.length && /\s/.test(text[k] as string)) k++
    if (text[k] !== ':') continue
    k++
    while (k < text.length && /[ \t\r\n]/.test(text[k] as string)) k++
    out += text.slice(i, k) + '<usage>'
    i = valueEnd(text, k)
  }
  return out
}

export function getPath(value: Json | undefined, path: string): Json | undefined {
  let cur: Json | undefined = value
  for (const key of path.split('.')) {
    if (!isObject(cur)) return undefined
    cur = cur[key]
  }
  return cur
}

/**
 * Recursive subset match. Conventions in expected values: a string starting with `~` is a
 * regular expression; a non-empty array means "contains elements matching each of these"; an
 * empty array means "is empty"; `null` also accepts an absent field.
 */
export function matchPartial(actual: unknown, expected: Json, path: string): string[] {
  if (typeof expected === 'string' && expected.startsWith('~')) {
    return typeof actual === 'string' && new RegExp(expected.slice(1)).test(actual)
      ? []
      : [`${path}: expected /${expected.slice(1)}/, got ${JSON.stringify(actual)}`]
  }
  if (expected === null)
    return actual === null || actual === undefined ? [] : [`${path}: expected null, got ${JSON.stringify(actual)}`]
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return [`${path}: expected an array, got ${JSON.stringify(actual)}`]
    if (expected.length === 0) return actual.length === 0 ? [] : [`${path}: expected [], got ${JSON.stringify(actual)}`]
    return expected.flatMap((want, n) =>
      actual.some((got) => matchPartial(got, want, path).length === 0)
        ? []
        : [`${path}: no element matches [${n}] ${JSON.stringify(want)}; got ${JSON.stringify(actual)}`],
    )
  }
  if (isObject(expected)) {
    if (!isObject(actual)) return [`${path}: expected an object, got ${JSON.stringify(actual)}`]
    return Object.entries(expected).flatMap(([key, want]) => matchPartial(actual[key], want, `${path}.${key}`))
  }
  return Object.is(actual, expected)
    ? []
    : [`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`]
}

function checkFields(usage: JsonObject | null, fields: Record<string, Json>, label: string): string[] {
  if (usage === null) return [`${label}: no usage-carrying event in the output`]
  return Object.entries(fields).flatMap(([path, want]) => {
    const got = getPath(usage, path)
    return Object.is(got, want)
      ? []
      : [`${label}.${path}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`]
  })
}

const num = (v: Json | undefined): number | undefined => (typeof v === 'number' ? v : undefined)

/** OpenAI semantics: prompt includes cache reads and writes, totals add up, reasoning within output. */
function consistency(usage: JsonObject | null, path: string): string[] {
  if (usage === null) return ['consistent: no usage-carrying event in the output']
  const problems: string[] = []
  const chat = !path.includes('/responses')
  const prompt = num(chat ? usage.prompt_tokens : usage.input_tokens)
  const output = num(chat ? usage.completion_tokens : usage.output_tokens)
  const details = chat ? 'prompt_tokens_details' : 'input_tokens_details'
  const cached = num(getPath(usage, `${details}.cached_tokens`)) ?? 0
  const written = num(getPath(usage, `${details}.cache_write_tokens`)) ?? 0
  const reasoning =
    num(getPath(usage, `${chat ? 'completion_tokens_details' : 'output_tokens_details'}.reasoning_tokens`)) ?? 0
  const total = num(usage.total_tokens)
  if (prompt === undefined || output === undefined)
    return [`consistent: prompt/output count missing in ${JSON.stringify(usage)}`]
  if (total !== undefined && total !== prompt + output)
    problems.push(`consistent: total_tokens ${total} != ${prompt} + ${output}`)
  if (prompt < cached + written)
    problems.push(`consistent: prompt ${prompt} < cached ${cached} + cache_write ${written}`)
  if (reasoning > output) problems.push(`consistent: reasoning ${reasoning} > output ${output}`)
  return problems
}

export interface WireInput {
  input: Buffer
  output: Buffer
  path: string
  contentType: string
  aborted: boolean
  checks: WireChecks
}

/** Run a fixture's wire checks; returns human-readable problems (empty = pass). */
export function checkWire({ input, output, path, contentType, aborted, checks }: WireInput): string[] {
  const problems: string[] = []
  // An AWS event stream is checked as the text of its frames, and its frames checked on their own.
  const binary = isEventStream(contentType)
  const inText = binary ? eventStreamText(input) : input.toString('utf8')
  const outText = binary ? eventStreamText(output) : output.toString('utf8')
  if (binary) problems.push(...eventStreamProblems(input, output, aborted))
  const eventType = binary ? 'text/event-stream' : contentType
  const inEvents = splitEvents(inText, eventType)
  const outEvents = splitEvents(outText, eventType)
  const usageEvents = outEvents.filter((e) => e.usage !== null)
  const last = usageEvents[usageEvents.length - 1]

  if (checks.outputEqualsInput && !output.equals(input))
    problems.push(`outputEqualsInput: output differs (${output.length} vs ${input.length} bytes)`)
  if (checks.outputIsPrefixOfInput && !input.subarray(0, output.length).equals(output))
    problems.push('outputIsPrefixOfInput: output is not a prefix of the input')
  if ((checks.onlyUsageChanged ?? !aborted) && blankUsage(inText) !== blankUsage(outText)) {
    problems.push('onlyUsageChanged: bytes outside usage objects differ')
  }
  if (checks.unchangedEvents) {
    if (inEvents.length !== outEvents.length)
      problems.push(`unchangedEvents: ${outEvents.length} events out, ${inEvents.length} in`)
    inEvents.forEach((e, n) => {
      const o = outEvents[n]
      if (e.usage === null && o?.raw !== e.raw)
        problems.push(`unchangedEvents: event #${n} (${e.name ?? 'data'}) changed`)
    })
  }
  if (checks.usageEventCount !== undefined && usageEvents.length !== checks.usageEventCount) {
    problems.push(`usageEventCount: expected ${checks.usageEventCount}, got ${usageEvents.length}`)
  }
  if (checks.firstUsage) problems.push(...checkFields(usageEvents[0]?.usage ?? null, checks.firstUsage, 'firstUsage'))
  if (checks.lastUsage) problems.push(...checkFields(last?.usage ?? null, checks.lastUsage, 'lastUsage'))
  for (const field of checks.absentFields ?? []) {
    const got = getPath(last?.json, field)
    if (got !== undefined) problems.push(`absentFields: ${field} is present (${JSON.stringify(got)})`)
  }
  if (checks.consistent) problems.push(...consistency(last?.usage ?? null, path))
  return problems
}
