import { count, label, totalTokens, type JsonObject, type Usage, type UsageSources } from '../../usage.js'

/**
 * Bedrock Converse `TokenUsage` ⇄ canonical buckets (docs/dialects/bedrock-converse.md#fields-and-inclusion).
 *
 *   input         inputTokens (excludes cache reads and writes)
 *   cacheRead     cacheReadInputTokens (or the older spelling cacheReadInputTokenCount)
 *   cacheWrite    cacheWriteInputTokens (or cacheWriteInputTokenCount)
 *   cacheWrite5m  cacheDetails[ttl = 5m].inputTokens
 *   cacheWrite1h  cacheDetails[ttl = 1h].inputTokens
 *   output        outputTokens
 *
 * `totalTokens` is never read: it is recomputed from the buckets when written.
 */
export function fromConverseUsage(
  native: JsonObject,
  at: string,
  /** This response's `inputTokens` includes the cache (docs/dialects/bedrock-converse.md#inclusive-input-override). */
  inclusive = false,
): { usage: Usage; sources: UsageSources } {
  const usage: Usage = {}
  const sources: UsageSources = {}
  const take = (field: keyof Usage, ...keys: string[]): void => {
    for (const key of keys) {
      const n = count(native[key])
      if (n === undefined) continue
      usage[field] = n
      sources[field] = label(at, key)
      return
    }
  }
  take('input', 'inputTokens')
  take('cacheRead', 'cacheReadInputTokens', 'cacheReadInputTokenCount')
  take('cacheWrite', 'cacheWriteInputTokens', 'cacheWriteInputTokenCount')
  take('output', 'outputTokens')
  const split = ttlSplit(native.cacheDetails)
  if (split) {
    usage.cacheWrite5m = split.m5
    usage.cacheWrite1h = split.h1
    sources.cacheWrite5m = sources.cacheWrite1h = label(at, 'cacheDetails')
    if (usage.cacheWrite === undefined) {
      usage.cacheWrite = split.m5 + split.h1
      sources.cacheWrite = label(at, 'cacheDetails')
    }
  }
  if (inclusive && usage.input !== undefined) {
    const cache = (usage.cacheRead ?? 0) + (usage.cacheWrite ?? 0)
    // An input smaller than the cache cannot include it: then it is read as documented, disjoint.
    if (cache > 0 && usage.input >= cache) usage.input -= cache
  }
  return { usage, sources }
}

/**
 * `cacheDetails`: one `{ttl, inputTokens}` per TTL written, empty when nothing was. An entry with another
 * TTL or no count makes the split unreadable: none is reported then.
 */
function ttlSplit(details: unknown): { m5: number; h1: number } | undefined {
  if (!Array.isArray(details) || details.length === 0) return undefined
  let m5 = 0
  let h1 = 0
  for (const entry of details) {
    const n = typeof entry === 'object' && entry !== null ? count((entry as JsonObject).inputTokens) : undefined
    const ttl = n === undefined ? undefined : (entry as JsonObject).ttl
    if (ttl === '5m') m5 += n!
    else if (ttl === '1h') h1 += n!
    else return undefined
  }
  return { m5, h1 }
}

/**
 * Writes the known canonical values into a copy of a `TokenUsage` block (key order kept, new keys
 * appended), so that the block agrees with itself and with the documented meaning: `inputTokens` without
 * the cache, `totalTokens` = input + cache read + cache write + output
 * (docs/dialects/bedrock-converse.md#writing). Unknown values are never written; a cache count the block
 * did not carry is added only when it is not 0. The older spellings are written only where the block has
 * them; `cacheDetails` is left as it came.
 */
export function toConverseUsage(native: JsonObject, usage: Usage): JsonObject {
  const out: JsonObject = { ...native }
  const put = (key: string, value: number | undefined, always: boolean): void => {
    if (value === undefined) return
    if (always || key in native || value > 0) out[key] = value
  }
  put('inputTokens', usage.input, true)
  put('outputTokens', usage.output, true)
  put('cacheReadInputTokens', usage.cacheRead, false)
  put('cacheWriteInputTokens', usage.cacheWrite, false)
  if ('cacheReadInputTokenCount' in native) put('cacheReadInputTokenCount', usage.cacheRead, true)
  if ('cacheWriteInputTokenCount' in native) put('cacheWriteInputTokenCount', usage.cacheWrite, true)
  const total = totalTokens(usage)
  if (total !== undefined) out.totalTokens = total
  return out
}

/** Region prefixes of cross-region inference profiles (`us.anthropic.claude-…`). */
const REGION_PREFIXES = new Set(['us', 'eu', 'apac', 'global', 'us-gov', 'jp', 'au', 'ca'])

/**
 * Model families whose ConverseStream `inputTokens` was measured to include the cache, against the
 * documented meaning (docs/dialects/bedrock-converse.md#inclusive-input-override).
 */
const INCLUSIVE_ON_STREAM = new Set(['openai'])

/** The model id of a `/model/{modelId}/converse(-stream)` path, decoded; undefined for other paths. */
export function modelIdOf(route: string | undefined): string | undefined {
  if (route === undefined) return undefined
  const match = /\/model\/([^/]+)\/converse(?:-stream)?\/*$/i.exec(route)
  if (!match) return undefined
  try {
    return decodeURIComponent(match[1]!)
  } catch {
    return match[1]
  }
}

/** The provider family of a model id or inference profile: `anthropic`, `openai`, `meta`, … */
export function familyOf(modelId: string): string {
  const id = modelId.slice(modelId.lastIndexOf('/') + 1).toLowerCase()
  const parts = id.split('.')
  return parts.length > 2 && REGION_PREFIXES.has(parts[0]!) ? parts[1]! : parts[0]!
}

/** Whether a ConverseStream answer from this model reports `inputTokens` with the cache in it. */
export function streamInputIncludesCache(modelId: string | undefined): boolean {
  return modelId !== undefined && INCLUSIVE_ON_STREAM.has(familyOf(modelId))
}
