import { count, isObject, label, type JsonObject, type Usage, type UsageSources } from '../../usage.js'

/** Field names of an OpenAI-shaped usage object: Chat Completions and Responses differ only in names. */
export interface OpenAIUsageNames {
  prompt: string
  completion: string
  promptDetails: string
  completionDetails: string
}

export const CHAT_NAMES: OpenAIUsageNames = {
  prompt: 'prompt_tokens',
  completion: 'completion_tokens',
  promptDetails: 'prompt_tokens_details',
  completionDetails: 'completion_tokens_details',
}

export const RESPONSES_NAMES: OpenAIUsageNames = {
  prompt: 'input_tokens',
  completion: 'output_tokens',
  promptDetails: 'input_tokens_details',
  completionDetails: 'output_tokens_details',
}

/** How an OpenAI-shaped block was read, so the record and tests can say why. */
export interface OpenAIReading {
  usage: Usage
  sources: UsageSources
  /** False when the evidence showed `prompt_tokens` leaving the cache out (a translator's Anthropic-style count). */
  promptIncludesCache: boolean
  /** False when the evidence showed `completion_tokens` leaving reasoning out (xAI, some Gemini bridges). */
  completionIncludesReasoning: boolean
}

/**
 * The first candidate that is non-zero wins, else the first one present: translators write the real
 * count into one field and 0 (or nothing) into its twin (docs/peer-bugs.md rows 5, 6, 8).
 */
function pick(candidates: Array<[unknown, string]>): [number, string] | undefined {
  let zero: [number, string] | undefined
  for (const [value, path] of candidates) {
    const n = count(value)
    if (n === undefined) continue
    if (n > 0) return [n, path]
    zero ??= [n, path]
  }
  return zero
}

/** The counts of an OpenAI-shaped block and the inclusion rules its own numbers show. */
interface Shape {
  cacheRead: [number, string] | undefined
  cacheWrite: [number, string] | undefined
  prompt: number | undefined
  completion: number | undefined
  reasoning: number | undefined
  promptIncludesCache: boolean
  completionIncludesReasoning: boolean
}

/**
 * Reads the counts of a block and decides, from the block alone, what its prompt and completion counts
 * include (docs/dialects/openai-chat.md#prompt-inclusion, docs/dialects/openai-chat.md#reasoning-inclusion).
 */
function shapeOf(native: JsonObject, names: OpenAIUsageNames, at: string): Shape {
  const promptDetails = isObject(native[names.promptDetails]) ? (native[names.promptDetails] as JsonObject) : {}
  const completionDetails = isObject(native[names.completionDetails])
    ? (native[names.completionDetails] as JsonObject)
    : {}
  const pd = label(at, names.promptDetails)
  const cacheRead = pick([
    [promptDetails.cached_tokens, label(pd, 'cached_tokens')],
    [native.cache_read_input_tokens, label(at, 'cache_read_input_tokens')],
    [native.prompt_cache_hit_tokens, label(at, 'prompt_cache_hit_tokens')],
  ])
  const cacheWrite = pick([
    [promptDetails.cache_write_tokens, label(pd, 'cache_write_tokens')],
    [promptDetails.cache_creation_tokens, label(pd, 'cache_creation_tokens')],
    [native.cache_creation_input_tokens, label(at, 'cache_creation_input_tokens')],
  ])
  const prompt = count(native[names.prompt])
  const completion = count(native[names.completion])
  const reasoning = count(completionDetails.reasoning_tokens)
  const total = count(native.total_tokens)
  const cache = (cacheRead?.[0] ?? 0) + (cacheWrite?.[0] ?? 0)

  let promptIncludesCache = true
  if (prompt !== undefined && cache > 0) {
    const excludedByTotal = total !== undefined && completion !== undefined && total === prompt + completion + cache
    if (prompt < cache || excludedByTotal) promptIncludesCache = false
  }
  const completionIncludesReasoning = !(
    completion !== undefined &&
    reasoning !== undefined &&
    reasoning > 0 &&
    total !== undefined &&
    prompt !== undefined &&
    total !== prompt + completion &&
    total === prompt + (promptIncludesCache ? 0 : cache) + completion + reasoning
  )
  return { cacheRead, cacheWrite, prompt, completion, reasoning, promptIncludesCache, completionIncludesReasoning }
}

/**
 * Reads an OpenAI-shaped usage block into canonical buckets, resolving the disagreements translating
 * gateways and compatible servers produce from the evidence in the block itself:
 * - cache counts may sit in `*_details.cached_tokens` / `cache_write_tokens`, in Anthropic-named extension
 *   fields (`cache_read_input_tokens`, `cache_creation_input_tokens`), in LiteLLM's
 *   `cache_creation_tokens`, or in DeepSeek's `prompt_cache_hit_tokens`;
 * - `prompt_tokens` includes the cache by OpenAI's semantics, but translators send it without
 *   (docs/peer-bugs.md row 21): when `total_tokens == prompt + completion + cache`, or the cache alone
 *   exceeds `prompt_tokens`, the prompt left the cache out (the guard of Helicone PR #5652);
 * - `completion_tokens` includes reasoning, except where `total_tokens == prompt + completion + reasoning`
 *   shows it did not (xAI, docs/dialects/openai-chat.md#xai; Gemini thoughts through Portkey,
 *   docs/peer-bugs.md rows 24, 58).
 */
export function fromOpenAIUsage(native: JsonObject, names: OpenAIUsageNames, at: string): OpenAIReading {
  const shape = shapeOf(native, names, at)
  const { cacheRead, cacheWrite, prompt, completion, reasoning, promptIncludesCache, completionIncludesReasoning } =
    shape
  const usage: Usage = {}
  const sources: UsageSources = {}
  if (cacheRead) [usage.cacheRead, sources.cacheRead] = cacheRead
  if (cacheWrite) [usage.cacheWrite, sources.cacheWrite] = cacheWrite
  const cache = (cacheRead?.[0] ?? 0) + (cacheWrite?.[0] ?? 0)
  if (prompt !== undefined) {
    usage.input = promptIncludesCache ? prompt - cache : prompt
    sources.input = label(at, names.prompt)
  }
  if (completion !== undefined) {
    usage.output = completionIncludesReasoning ? completion : completion + (reasoning ?? 0)
    sources.output = label(at, names.completion)
  }
  if (reasoning !== undefined) {
    // Reasoning is part of the output: a block that says more of it than its whole output (some vLLM
    // versions, docs/dialects/openai-chat.md#vllm) is held to its output.
    usage.reasoning = usage.output !== undefined && reasoning > usage.output ? usage.output : reasoning
    sources.reasoning = label(label(at, names.completionDetails), 'reasoning_tokens')
  }
  return { usage, sources, promptIncludesCache, completionIncludesReasoning }
}

export interface OpenAIWriteOptions {
  /** Write `cached_tokens` / `reasoning_tokens` even when not known (as 0): the Responses schema requires them. */
  requireDetails?: boolean
}

/**
 * Writes canonical values back into an OpenAI-shaped usage block (a copy) so it is self-consistent by
 * OpenAI's own semantics: prompt includes cache reads and writes, `cached_tokens` is the cache reads,
 * `cache_write_tokens` where known, completion includes reasoning, `total = prompt + completion`. The one
 * exception is a block that shows reasoning counted outside its completion (xAI): it is written back in
 * that convention, `total = prompt + completion + reasoning`.
 * Extension fields a translator added (`cache_read_input_tokens`, …) are kept and made to agree.
 */
export function toOpenAIUsage(
  native: JsonObject,
  usage: Usage,
  names: OpenAIUsageNames,
  options: OpenAIWriteOptions = {},
): JsonObject {
  const out: JsonObject = { ...native }
  const promptDetails: JsonObject = isObject(native[names.promptDetails])
    ? { ...(native[names.promptDetails] as JsonObject) }
    : {}
  const completionDetails: JsonObject = isObject(native[names.completionDetails])
    ? { ...(native[names.completionDetails] as JsonObject) }
    : {}

  if (usage.input !== undefined) {
    out[names.prompt] = usage.input + (usage.cacheRead ?? 0) + (usage.cacheWrite ?? 0)
  }
  // A block that counts reasoning outside its completion (xAI's documented convention) keeps that
  // convention: its own clients add the two, so folding reasoning in would count it twice
  // (docs/dialects/openai-chat.md#writing-the-block).
  const apart =
    !shapeOf(native, names, 'written').completionIncludesReasoning &&
    usage.output !== undefined &&
    usage.reasoning !== undefined &&
    usage.reasoning <= usage.output
  if (usage.output !== undefined) out[names.completion] = apart ? usage.output - usage.reasoning! : usage.output
  const prompt = count(out[names.prompt])
  const completion = count(out[names.completion])
  if (prompt !== undefined && completion !== undefined) {
    out.total_tokens = prompt + completion + (apart ? usage.reasoning! : 0)
  }

  if (usage.cacheRead !== undefined) promptDetails.cached_tokens = usage.cacheRead
  else if (options.requireDetails && count(promptDetails.cached_tokens) === undefined) promptDetails.cached_tokens = 0
  if (usage.cacheWrite !== undefined && (usage.cacheWrite > 0 || 'cache_write_tokens' in promptDetails)) {
    promptDetails.cache_write_tokens = usage.cacheWrite
  }
  if ('cache_creation_tokens' in promptDetails && usage.cacheWrite !== undefined) {
    promptDetails.cache_creation_tokens = usage.cacheWrite
  }
  if (usage.reasoning !== undefined) completionDetails.reasoning_tokens = usage.reasoning
  else if (options.requireDetails && count(completionDetails.reasoning_tokens) === undefined) {
    completionDetails.reasoning_tokens = 0
  }

  if (Object.keys(promptDetails).length > 0 || isObject(native[names.promptDetails])) {
    out[names.promptDetails] = promptDetails
  }
  if (Object.keys(completionDetails).length > 0 || isObject(native[names.completionDetails])) {
    out[names.completionDetails] = completionDetails
  }
  if ('cache_read_input_tokens' in native && usage.cacheRead !== undefined)
    out.cache_read_input_tokens = usage.cacheRead
  if ('cache_creation_input_tokens' in native && usage.cacheWrite !== undefined) {
    out.cache_creation_input_tokens = usage.cacheWrite
  }
  if ('prompt_cache_hit_tokens' in native && usage.cacheRead !== undefined)
    out.prompt_cache_hit_tokens = usage.cacheRead
  if ('prompt_cache_miss_tokens' in native && usage.input !== undefined) {
    out.prompt_cache_miss_tokens = usage.input + (usage.cacheWrite ?? 0)
  }
  return out
}
