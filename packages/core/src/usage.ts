/**
 * The canonical usage: disjoint buckets, and "unknown" (absent) kept apart from 0.
 *
 *   input        prompt tokens read at the base rate (neither from nor into a cache)
 *   cacheRead    prompt tokens served from a prompt cache
 *   cacheWrite   prompt tokens written to a prompt cache (cacheWrite5m / cacheWrite1h: its TTL split)
 *   output       generated tokens, reasoning included
 *   reasoning    the part of output spent on reasoning (a subset, never added twice)
 *
 * Each dialect's native shape maps to and from these buckets in its own module
 * (dialects/anthropic-messages/usage.ts, dialects/openai/usage.ts); the inclusion rules are in
 * docs/usage-model.md#how-dialects-map.
 */
export type UsageField = 'input' | 'cacheRead' | 'cacheWrite' | 'cacheWrite5m' | 'cacheWrite1h' | 'output' | 'reasoning'

export const USAGE_FIELDS: readonly UsageField[] = [
  'input',
  'cacheRead',
  'cacheWrite',
  'cacheWrite5m',
  'cacheWrite1h',
  'output',
  'reasoning',
]

/** A canonical usage where an absent field means "not known". */
export type Usage = { [K in UsageField]?: number }

/** Where a canonical value came from: the field path it was read at, e.g. `message_delta.usage.input_tokens`. */
export type UsageSources = { [K in UsageField]?: string }

/** A token count as the wire carries it: a finite, non-negative number; anything else is "not reported". */
export function count(value: unknown): number | undefined {
  // Tokens are whole: a fraction, like a negative, is no count of them (docs/usage-model.md#record-invariants);
  // nor is a number past 2^53, where integers are no longer exact (and sums of them overflow).
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined
}

/** All prompt tokens (`input + cacheRead + cacheWrite`), or undefined when `input` is not known. */
export function promptTotal(usage: Usage): number | undefined {
  if (usage.input === undefined) return undefined
  return usage.input + (usage.cacheRead ?? 0) + (usage.cacheWrite ?? 0)
}

/** Prompt and output tokens together, or undefined when either is not known. */
export function totalTokens(usage: Usage): number | undefined {
  const prompt = promptTotal(usage)
  if (prompt === undefined || usage.output === undefined) return undefined
  return prompt + usage.output
}

export type JsonObject = Record<string, unknown>

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

const labels = new Map<string, Map<string, string>>()

/**
 * `${at}.${path}`, made once and shared: sources name a handful of fields, and building the same strings
 * for every response would cost heap per open stream.
 */
export function label(at: string, path: string): string {
  let byPath = labels.get(at)
  if (!byPath) labels.set(at, (byPath = new Map()))
  let text = byPath.get(path)
  if (text === undefined) byPath.set(path, (text = `${at}.${path}`))
  return text
}
