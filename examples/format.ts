/**
 * Short strings for the demo table: a usage object as a dialect wrote it (field names kept
 * recognisable), and the canonical reading a standard client makes of it (docs/usage-model.md#how-dialects-map).
 */
import type { UsageRecord } from '@usagewire/core'
import { decodeChunks } from './mock-upstream/eventstream.js'
import type { MockDialect, TrueUsage } from './mock-upstream/index.js'

type Json = Record<string, unknown>

/** Wire field → short label. Detail objects are flattened (their zero entries dropped). */
const LABELS: [path: string, label: string][] = [
  ['input_tokens', 'in'],
  ['prompt_tokens', 'p'],
  ['input_tokens_details.cached_tokens', 'cached'],
  ['prompt_tokens_details.cached_tokens', 'cached'],
  ['cache_read_input_tokens', 'cr'],
  ['cache_creation_input_tokens', 'cw'],
  ['input_tokens_details.cache_write_tokens', 'cwt'],
  ['prompt_tokens_details.cache_write_tokens', 'cwt'],
  ['output_tokens', 'out'],
  ['completion_tokens', 'c'],
  ['output_tokens_details.reasoning_tokens', 'rs'],
  ['completion_tokens_details.reasoning_tokens', 'rs'],
  ['total_tokens', 't'],
  // Bedrock's amazon-bedrock-invocationMetrics
  ['inputTokenCount', 'in'],
  ['cacheReadInputTokenCount', 'cr'],
  ['cacheWriteInputTokenCount', 'cw'],
  ['outputTokenCount', 'out'],
  // Gemini's usageMetadata
  ['promptTokenCount', 'prompt'],
  ['cachedContentTokenCount', 'cached'],
  ['toolUsePromptTokenCount', 'tool'],
  ['candidatesTokenCount', 'cand'],
  ['thoughtsTokenCount', 'thoughts'],
  ['totalTokenCount', 't'],
]

export const LEGEND =
  'in/cr/cw/out: input, cache_read_input_tokens, cache_creation_input_tokens, output; p/c/t: prompt/completion/total_tokens; ' +
  'cached, cwt, rs: *_details.cached_tokens, cache_write_tokens, reasoning_tokens (0 details omitted)\n' +
  'Bedrock metrics{in/cr/cw/out}: amazon-bedrock-invocationMetrics; Gemini prompt/cached/cand/thoughts/t: ' +
  'usageMetadata promptTokenCount/cachedContentTokenCount/candidatesTokenCount/thoughtsTokenCount/totalTokenCount'

function get(obj: Json, path: string): unknown {
  let value: unknown = obj
  for (const key of path.split('.')) value = isJson(value) ? value[key] : undefined
  return value
}

function isJson(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** e.g. `in=1 cr=61711 cw=407 out=291`; absent fields are left out, `null` shows as `=null`. */
export function compact(usage: unknown): string {
  if (usage === null) return 'null'
  if (!isJson(usage)) return 'none'
  const parts: string[] = []
  for (const [path, label] of LABELS) {
    const value = get(usage, path)
    if (value === undefined) continue
    if (path.includes('.') && value === 0) continue
    parts.push(`${label}=${value === null ? 'null' : String(value)}`)
  }
  return parts.join(' ') || '{}'
}

/** Usage blocks in the raw upstream body (uncompressed), as `start{…} delta{…}` or one block. */
export function upstreamUsage(dialect: MockDialect, body: Buffer): string {
  if (dialect === 'bedrock-invoke') return anthropicBlocks(decodeChunks(body))
  const events = parseSse(body.toString('utf8'))
  if (dialect === 'anthropic-messages') return anthropicBlocks(events.map((e) => e.data))
  if (dialect === 'gemini') {
    // Cumulative snapshots: the first and the last say what changed.
    const snapshots = events.map((e) => e.data.usageMetadata).filter(isJson)
    if (snapshots.length === 0) return 'no usageMetadata'
    const last = `last{${compact(snapshots.at(-1))}}`
    return snapshots.length === 1 ? last : `${snapshots.length} snapshots: first{${compact(snapshots[0])}} … ${last}`
  }
  if (dialect === 'openai-chat') {
    const withUsage = events.filter((e) => isJson(e.data.usage))
    return (
      withUsage
        .map((e) => {
          const choices = e.data.choices
          const where = Array.isArray(choices) && choices.length === 0 ? 'choices:[]' : 'finish chunk'
          return `${where}{${compact(e.data.usage)}}`
        })
        .join(' ') || 'no usage chunk'
    )
  }
  const done = events.find((e) => e.event === 'response.completed')
  return done ? `completed{${compact(get(done.data, 'response.usage'))}}` : 'no response.completed'
}

/** Anthropic's usage blocks in order, and Bedrock's invocation metrics on the last event. */
function anthropicBlocks(events: Json[]): string {
  return events
    .map((e) => {
      const blocks: string[] = []
      if (e.type === 'message_start') blocks.push(`start{${compact(get(e, 'message.usage'))}}`)
      if (e.type === 'message_delta') blocks.push(`delta{${compact(e.usage)}}`)
      const metrics = e['amazon-bedrock-invocationMetrics']
      if (isJson(metrics)) blocks.push(`metrics{${compact(metrics)}}`)
      return blocks.join(' ')
    })
    .filter(Boolean)
    .join(' ')
}

function parseSse(text: string): { event: string | undefined; data: Json }[] {
  const out: { event: string | undefined; data: Json }[] = []
  for (const block of text.split(/\r?\n\r?\n/)) {
    let event: string | undefined
    let data = ''
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith('event:')) event = line.slice(6).trim()
      else if (line.startsWith('data:')) data += line.slice(5).trim()
    }
    if (!data || data === '[DONE]') continue
    try {
      const parsed: unknown = JSON.parse(data)
      if (isJson(parsed)) out.push({ event, data: parsed })
    } catch {
      // not JSON: not a usage carrier
    }
  }
  return out
}

const num = (value: unknown): number => (typeof value === 'number' ? value : 0)

/** What a client that follows each dialect's documented rules concludes from the usage it got. */
export function canonicalFromClient(dialect: MockDialect, usage: unknown): TrueUsage {
  const u = isJson(usage) ? usage : {}
  // A Bedrock application decodes the chunks and reads the Anthropic usage inside (clients.ts).
  if (dialect === 'anthropic-messages' || dialect === 'bedrock-invoke') {
    return {
      input: num(u.input_tokens),
      cacheRead: num(u.cache_read_input_tokens),
      cacheWrite: num(u.cache_creation_input_tokens),
      output: num(u.output_tokens),
      reasoning: num(get(u, 'output_tokens_details.thinking_tokens')),
    }
  }
  if (dialect === 'gemini') {
    // The prompt count includes the cache; tool-use prompts and thoughts are outside their neighbours.
    const cacheRead = num(u.cachedContentTokenCount)
    const reasoning = num(u.thoughtsTokenCount)
    return {
      input: num(u.promptTokenCount) - cacheRead + num(u.toolUsePromptTokenCount),
      cacheRead,
      cacheWrite: 0,
      output: num(u.candidatesTokenCount) + reasoning,
      reasoning,
    }
  }
  // OpenAI: the prompt count includes cache reads and writes; reasoning is part of output.
  const chat = dialect === 'openai-chat'
  const details = chat ? 'prompt_tokens_details' : 'input_tokens_details'
  const cacheRead = num(get(u, `${details}.cached_tokens`))
  const cacheWrite = num(get(u, `${details}.cache_write_tokens`))
  return {
    input: num(chat ? u.prompt_tokens : u.input_tokens) - cacheRead - cacheWrite,
    cacheRead,
    cacheWrite,
    output: num(chat ? u.completion_tokens : u.output_tokens),
    reasoning: num(
      get(u, chat ? 'completion_tokens_details.reasoning_tokens' : 'output_tokens_details.reasoning_tokens'),
    ),
  }
}

type Buckets = Pick<TrueUsage, 'input' | 'cacheRead' | 'cacheWrite' | 'output' | 'reasoning'>

/** `in/cr/cw/out/rs` as five numbers. */
export function buckets(u: Buckets): string {
  return `${u.input}/${u.cacheRead}/${u.cacheWrite}/${u.output}/${u.reasoning}`
}

export function sameBuckets(a: Buckets, b: Buckets): boolean {
  return buckets(a) === buckets(b)
}

/** The record's part of a row: buckets, status, number of corrections. */
export function recordSummary(r: UsageRecord): string {
  const fixes = r.corrections.length
  return `${buckets(r.usage)} ${r.status}${r.final ? '' : ' (partial)'} ${fixes} fix${fixes === 1 ? '' : 'es'}`
}
