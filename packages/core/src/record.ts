import type { DialectId } from './dialects/registry.js'

/** The wire dialects usagewire reads and rewrites. */
export type Dialect = DialectId

/**
 * How a response ended, from usagewire's point of view.
 * - `complete`: the response finished and its usage was read.
 * - `incomplete`: the body ended, or was cut on the gateway's side (an upstream reset), before the
 *   response reached its end (no stop reason, no terminal event): its usage is partial.
 * - `aborted`: the client went away before the response finished; usage is what was known then.
 * - `upstream_error`: the upstream answered with an HTTP error or an in-stream error event.
 * - `passthrough`: usagewire could not understand the body (or part of it) and forwarded it untouched.
 */
export type UsageStatus = 'complete' | 'incomplete' | 'aborted' | 'upstream_error' | 'passthrough'

/** One rewrite made on the wire. */
export interface Correction {
  /** The event (or `body`) that was rewritten, e.g. `message_delta` or `chunk#12`. */
  where: string
  /** Dotted path of the field inside that event, e.g. `usage.input_tokens`. */
  field: string
  /** The value the upstream sent; `null` when the field was absent. */
  from: number | null
  to: number
  /**
   * The same change (this field, from this value to this one) was made in this many events, `where` the
   * first of them: a stream that repeats its usage block on every chunk lists each fix once. Absent for one.
   */
  times?: number
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
  /** The model the response named, else the one the request asked for. */
  model: string | null
  status: UsageStatus
  /** HTTP status the upstream answered with. */
  httpStatus: number
  /** The request asked for a stream (when the adapter saw the request body), else: the body was a stream. */
  streaming: boolean
  usage: RecordUsage
  /** Where each number came from, e.g. `message_delta.usage.input_tokens`; `unknown` when nothing reported it. */
  sources: Record<'input' | 'cacheRead' | 'cacheWrite' | 'output' | 'reasoning', string> &
    Partial<Record<'cacheWrite5m' | 'cacheWrite1h', string>>
  /** True when the response carried its final usage block (a truncated stream has only partial usage). */
  final: boolean
  corrections: Correction[]
  /** Corrections made but not listed, past the first 64 distinct ones of a response; absent for none. */
  correctionsOmitted?: number
  timing: { firstByteMs: number | null; totalMs: number }
  /** Set when the body (or its rest, from `atByte` on) was forwarded untouched, with the reason. */
  passthrough?: { reason: string; atByte: number }
  /** The upstream's error type or message when `status` is `upstream_error`; what cut it when `incomplete`. */
  error?: string
  /** Usage events that were read but left as they came (too large to hold), with why. */
  unrewritten?: { where: string; reason: string }[]
  /** What the `attributes` option derived from the request (a team, a key's name), when it is set. */
  attributes?: Record<string, string>
  /** What the usage cost at list prices; absent when the model has no price (docs/cost.md). */
  cost?: RecordCost
  /**
   * How a sidecar joined this request to the gateway's call to the provider (docs/sidecar.md#correlation):
   * `none` when it could not, with the reason, and then nothing from the provider's side was applied.
   */
  correlation?: RecordCorrelation
}

/** How a request was joined to its provider call (docs/sidecar.md#correlation). */
export interface RecordCorrelation {
  by: 'header' | 'content' | 'single' | 'none'
  reason?: string
}

/** The cost of a record's usage, bucket by bucket, in USD (docs/cost.md#the-cost-in-the-record). */
export interface RecordCost {
  currency: 'USD'
  /** `input + cacheRead + cacheWrite + output`, summed in nano-dollars so it equals the parts exactly. */
  total: number
  input: number
  cacheRead: number
  cacheWrite: number
  /** Output, reasoning included (reasoning is a part of output and is never priced twice). */
  output: number
  /** The day the prices were taken from their source. */
  asOf: string
  /** The price table entry used, e.g. `claude-sonnet-4-5` for `anthropic.claude-sonnet-4-5-20250929-v1:0`. */
  model: string
}
