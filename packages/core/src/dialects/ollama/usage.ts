import { count, label, promptTotal, type JsonObject, type Usage, type UsageSources } from '../../usage.js'

/**
 * Ollama's counts on the final (`done: true`) object ⇄ canonical buckets
 * (docs/dialects/ollama.md#fields-and-inclusion).
 *
 *   input      prompt_eval_count − prompt_eval_cached_count
 *   cacheRead  prompt_eval_cached_count
 *   output     eval_count
 *
 * The counts sit among the object's own members, next to the durations, which are left as they are.
 */

/** The count members, in the order Ollama writes them. */
export const COUNT_FIELDS = ['prompt_eval_count', 'prompt_eval_cached_count', 'eval_count'] as const

/** The count members an object carries, as a block of their own (absent ones left out). */
export function countsOf(json: JsonObject): JsonObject | undefined {
  let block: JsonObject | undefined
  for (const key of COUNT_FIELDS) if (json[key] !== undefined) (block ??= {})[key] = json[key]
  return block
}

/**
 * Reads the counts. `prompt_eval_count` is the whole prompt, the part reused from the KV cache included;
 * older servers left it out when the prompt was cached, and then the prompt is not known: nothing is
 * written for it, least of all a 0 (docs/dialects/ollama.md#a-cached-prompt).
 */
export function fromOllamaUsage(native: JsonObject, at: string): { usage: Usage; sources: UsageSources } {
  const usage: Usage = {}
  const sources: UsageSources = {}
  const prompt = count(native.prompt_eval_count)
  const cached = count(native.prompt_eval_cached_count)
  const output = count(native.eval_count)
  if (prompt !== undefined) {
    // A cached count larger than the prompt means this prompt count left the cache out: nothing is
    // subtracted then (the guard of docs/dialects/openai-chat.md#prompt-inclusion).
    usage.input = prompt - (cached !== undefined && cached <= prompt ? cached : 0)
    sources.input = label(at, 'prompt_eval_count')
  }
  if (cached !== undefined) {
    usage.cacheRead = cached
    sources.cacheRead = label(at, 'prompt_eval_cached_count')
  }
  if (output !== undefined) {
    usage.output = output
    sources.output = label(at, 'eval_count')
  }
  return { usage, sources }
}

/**
 * Writes the best values known into a copy of the count block (docs/dialects/ollama.md#writing):
 * `prompt_eval_count` is the whole prompt, `eval_count` the output. The cached count is written only where
 * the object already has it, or when it is not 0. Unknown values are never written.
 */
export function toOllamaUsage(native: JsonObject, usage: Usage): JsonObject {
  const out: JsonObject = { ...native }
  const prompt = promptTotal(usage)
  if (prompt !== undefined) {
    out.prompt_eval_count = prompt
    const cached = usage.cacheRead
    if (cached !== undefined && (cached > 0 || native.prompt_eval_cached_count != null)) {
      out.prompt_eval_cached_count = cached
    }
  }
  if (usage.output !== undefined) out.eval_count = usage.output
  return out
}
