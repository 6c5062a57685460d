import type { ProcessorResult } from './processor.js'

/** The wire dialects usagewire reads and rewrites. */
export type Dialect = 'anthropic-messages' | 'openai-chat' | 'openai-responses'

/**
 * How a response ended, from usagewire's point of view.
 * - `complete`: the response finished and its usage was read.
 * - `aborted`: the client went away before the response finished; usage is what was known then.
 * - `upstream_error`: the upstream answered with an HTTP error or an in-stream error event.
 * - `passthrough`: usagewire could not understand the body (or part of it) and forwarded it untouched.
 */
export type UsageStatus = 'complete' | 'aborted' | 'upstream_error' | 'passthrough'

/** One rewrite made on the wire. */
export interface Correction {
  /** The event (or `body`) that was rewritten, e.g. `message_delta` or `chunk#12`. */
  where: string
  /** Dotted path of the field inside that event, e.g. `usage.input_tokens`. */
  field: string
  /** The value the upstream sent; `null` when the field was absent. */
  from: number | null
  to: number
}

/** The five canonical buckets, always numbers in a record (unknown counts as 0; `sources` says which were unknown). */
export interface RecordUsage {
  /** Prompt tokens read at the base rate (neither from nor into a cache). */
  input: number
  /** Prompt tokens served from a prompt cache. */
  cacheRead: number
  /** Prompt tokens written to a prompt cache (all TTLs). */
  cacheWrite: number
  /** The 5-minute TTL part of `cacheWrite`, when the upstream reported the split. */
  cacheWrite5m?: number
  /** The 1-hour TTL part of `cacheWrite`, when the upstream reported the split. */
  cacheWrite1h?: number
  /** Generated tokens, reasoning included. */
  output: number
  /** The part of `output` spent on reasoning. */
  reasoning: number
}

/** The usage record handed to `onUsage`: one per LLM request. Field names are a public contract. */
export interface UsageRecord {
  id: string
  /** Request path without the query string. */
  route: string
  method: string
  dialect: Dialect | 'unknown'
  model: string | null
  status: UsageStatus
  /** HTTP status the upstream answered with. */
  httpStatus: number
  streaming: boolean
  usage: RecordUsage
  /** Where each number came from, e.g. `message_delta.usage.input_tokens`; `unknown` when nothing reported it. */
  sources: Record<'input' | 'cacheRead' | 'cacheWrite' | 'output' | 'reasoning', string> &
    Partial<Record<'cacheWrite5m' | 'cacheWrite1h', string>>
  /** True when the response carried its final usage block (a truncated stream has only partial usage). */
  final: boolean
  corrections: Correction[]
  timing: { firstByteMs: number | null; totalMs: number }
  /** Set when the body (or its rest, from `atByte` on) was forwarded untouched, with the reason. */
  passthrough?: { reason: string; atByte: number }
  /** The upstream's error type or message when `status` is `upstream_error`. */
  error?: string
}

/** What the transport knows about a request, beside what the processor read from its body. */
export interface RecordMeta {
  id: string
  route: string
  method: string
  httpStatus: number
  aborted: boolean
  firstByteMs: number | null
  totalMs: number
}

const RECORD_FIELDS = ['input', 'cacheRead', 'cacheWrite', 'output', 'reasoning'] as const

/** One usage record from a processor result and the transport's facts. */
export function buildRecord(result: ProcessorResult, meta: RecordMeta): UsageRecord {
  const usage: RecordUsage = { input: 0, cacheRead: 0, cacheWrite: 0, output: 0, reasoning: 0 }
  const sources = {} as UsageRecord['sources']
  for (const field of RECORD_FIELDS) {
    usage[field] = result.usage[field] ?? 0
    sources[field] = result.sources[field] ?? 'unknown'
  }
  for (const field of ['cacheWrite5m', 'cacheWrite1h'] as const) {
    if (result.usage[field] !== undefined) {
      usage[field] = result.usage[field]
      sources[field] = result.sources[field] ?? 'unknown'
    }
  }
  const upstreamError = meta.httpStatus >= 400 || result.error !== undefined
  const status: UsageStatus = meta.aborted
    ? 'aborted'
    : upstreamError
      ? 'upstream_error'
      : result.passthrough
        ? 'passthrough'
        : 'complete'
  const record: UsageRecord = {
    id: meta.id,
    route: meta.route,
    method: meta.method,
    dialect: result.dialect,
    model: result.model,
    status,
    httpStatus: meta.httpStatus,
    streaming: result.streaming,
    usage,
    sources,
    final: result.final,
    corrections: result.corrections,
    timing: { firstByteMs: meta.firstByteMs, totalMs: meta.totalMs },
  }
  if (result.passthrough) record.passthrough = result.passthrough
  if (upstreamError) record.error = result.error ?? `HTTP ${meta.httpStatus}`
  return record
}
