import { count, label, totalTokens, type JsonObject, type Usage, type UsageSources } from '../../usage.js'

/**
 * Gemini `usageMetadata` ⇄ canonical buckets (docs/dialects/gemini.md#fields-and-inclusion).
 *
 *   input      promptTokenCount − cachedContentTokenCount + toolUsePromptTokenCount
 *   cacheRead  cachedContentTokenCount
 *   output     candidatesTokenCount + thoughtsTokenCount
 *   reasoning  thoughtsTokenCount
 *
 * Gemini has no cache-write counter: explicit caches are created by another API call.
 */

/** What a reader remembers between the snapshots of one response (docs/dialects/gemini.md#omitted-counts). */
export interface GeminiState {
  /** The last thoughts count reported: thoughts only grow within a response, so a snapshot that omits it keeps it. */
  thoughts: number | undefined
  /** The last tool-use prompt count reported, for writing `promptTokenCount` back out of `input`. */
  toolUse: number | undefined
}

export const freshState = (): GeminiState => ({ thoughts: undefined, toolUse: undefined })

/**
 * Reads one `usageMetadata` snapshot. A prompt stated without `cachedContentTokenCount` is reported as
 * all `input` and left to the ledger's one-block-one-snapshot rule (the block is `whole`): it keeps the
 * cache known when the prompt total agrees, and drops it when the total changed
 * (docs/dialects/gemini.md#omitted-counts).
 */
export function fromGeminiUsage(
  native: JsonObject,
  at: string,
  state: GeminiState = freshState(),
): { usage: Usage; sources: UsageSources } {
  const usage: Usage = {}
  const sources: UsageSources = {}
  const prompt = count(native.promptTokenCount)
  const cached = count(native.cachedContentTokenCount)
  const toolUse = count(native.toolUsePromptTokenCount)
  const candidates = count(native.candidatesTokenCount)
  let thoughts = count(native.thoughtsTokenCount)
  if (toolUse !== undefined) state.toolUse = toolUse
  if (prompt !== undefined) {
    // A cache larger than the prompt means this prompt count left the cache out (a translator's shape):
    // nothing is subtracted then (docs/dialects/gemini.md#fields-and-inclusion).
    const fromCache = cached !== undefined && cached <= prompt ? cached : 0
    usage.input = prompt - fromCache + (toolUse ?? state.toolUse ?? 0)
    sources.input = label(at, 'promptTokenCount')
  }
  if (cached !== undefined) {
    usage.cacheRead = cached
    sources.cacheRead = label(at, 'cachedContentTokenCount')
  }
  if (thoughts !== undefined) {
    state.thoughts = thoughts
    usage.reasoning = thoughts
    sources.reasoning = label(at, 'thoughtsTokenCount')
  } else if (candidates !== undefined) {
    // Omitted after being reported: the count stands (0 is omitted only when it was always 0).
    thoughts = state.thoughts
  }
  if (candidates !== undefined || thoughts !== undefined) {
    usage.output = (candidates ?? 0) + (thoughts ?? 0)
    sources.output = label(at, candidates !== undefined ? 'candidatesTokenCount' : 'thoughtsTokenCount')
  }
  return { usage, sources }
}

/**
 * Writes the best values known into a copy of a `usageMetadata` block (key order kept, new keys
 * appended), so that the block agrees with itself: `promptTokenCount` includes the cache,
 * `candidatesTokenCount` leaves thoughts out, and `totalTokenCount` is their sum with thoughts and the
 * tool-use prompt (docs/dialects/gemini.md#writing). Unknown values are never written; a count that is
 * 0 is added only where the block already had the field, as Gemini omits zeros.
 */
export function toGeminiUsage(native: JsonObject, usage: Usage, state: GeminiState = freshState()): JsonObject {
  const out: JsonObject = { ...native }
  const has = (key: string): boolean => native[key] !== undefined && native[key] !== null
  const put = (key: string, value: number | undefined): void => {
    if (value !== undefined && (value > 0 || has(key))) out[key] = value
  }
  const toolUse = count(native.toolUsePromptTokenCount) ?? state.toolUse ?? 0
  const cacheRead = usage.cacheRead ?? 0
  const prompt = usage.input === undefined ? undefined : usage.input + cacheRead + (usage.cacheWrite ?? 0) - toolUse
  if (prompt !== undefined && prompt >= 0) {
    out.promptTokenCount = prompt
    put('cachedContentTokenCount', usage.cacheRead)
  }
  const reasoning = usage.reasoning ?? 0
  if (usage.output !== undefined && usage.output >= reasoning) {
    put('candidatesTokenCount', usage.output - reasoning)
    put('thoughtsTokenCount', usage.reasoning)
  }
  const total = totalTokens(usage)
  if (total !== undefined && prompt !== undefined && prompt >= 0) out.totalTokenCount = total
  return out
}
