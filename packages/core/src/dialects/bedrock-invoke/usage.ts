import { count, label, type JsonObject, type Usage, type UsageSources } from '../../usage.js'

/** The key of the metrics Bedrock adds to the last chunk's event (docs/dialects/bedrock-invoke.md#invocation-metrics). */
export const METRICS = 'amazon-bedrock-invocationMetrics'

/**
 * `amazon-bedrock-invocationMetrics` ⇄ canonical buckets. `inputTokenCount` excludes cache reads and
 * writes, which have their own counts, so the buckets map one to one
 * (docs/dialects/bedrock-invoke.md#invocation-metrics). A count the metrics leave out is simply not
 * reported: it never replaces a value another block gave (docs/peer-bugs.md row 13).
 */
export function fromInvocationMetrics(native: JsonObject, at: string): { usage: Usage; sources: UsageSources } {
  const usage: Usage = {}
  const sources: UsageSources = {}
  const take = (field: keyof Usage, key: string) => {
    const n = count(native[key])
    if (n === undefined) return
    usage[field] = n
    sources[field] = label(at, key)
  }
  take('input', 'inputTokenCount')
  take('cacheRead', 'cacheReadInputTokenCount')
  take('cacheWrite', 'cacheWriteInputTokenCount')
  take('output', 'outputTokenCount')
  return { usage, sources }
}

/**
 * Writes the known canonical values into the metrics (a copy; key order kept, new keys appended), so the
 * last usage block of the stream carries the complete totals. Cache counts the metrics did not carry are
 * added only when non-zero: older metrics have none, and a 0 there says nothing new.
 */
export function toInvocationMetrics(native: JsonObject, usage: Usage): JsonObject {
  const out: JsonObject = { ...native }
  const put = (key: string, value: number | undefined, always: boolean) => {
    if (value === undefined) return
    if (always || key in native || value > 0) out[key] = value
  }
  put('inputTokenCount', usage.input, true)
  put('outputTokenCount', usage.output, true)
  put('cacheReadInputTokenCount', usage.cacheRead, false)
  put('cacheWriteInputTokenCount', usage.cacheWrite, false)
  return out
}
