/**
 * The truth in each client format's own convention (docs/usage-model.md#how-dialects-map): Anthropic's
 * `input_tokens` excludes the cache; OpenAI's `prompt_tokens` / `input_tokens` include the cached tokens,
 * and their totals are prompt + output. And the comparison of a reader's counts with it.
 */
import type { TrueUsage } from './provider/types.js'
import { FIELDS, type ClientFormat, type Counts } from './readers.js'

export function expectedCounts(format: ClientFormat, truth: TrueUsage): Counts {
  const prompt = truth.input + truth.cacheRead + truth.cacheWrite
  switch (format) {
    case 'anthropic':
      return { input: truth.input, cacheRead: truth.cacheRead, cacheWrite: truth.cacheWrite, output: truth.output }
    case 'openai-chat':
      return {
        prompt,
        cached: truth.cacheRead,
        cacheWrite: truth.cacheWrite,
        completion: truth.output,
        reasoning: truth.reasoning,
        total: prompt + truth.output,
      }
    case 'openai-responses':
      return {
        input: prompt,
        cached: truth.cacheRead,
        cacheWrite: truth.cacheWrite,
        output: truth.output,
        reasoning: truth.reasoning,
        total: prompt + truth.output,
      }
  }
}

/**
 * The fields where `reported` differs from `expected`, among `fields` (default: the format's own). A field
 * the reader does not report counts as 0, as a client that reads it does (`?? 0`). An OpenAI cache-write
 * count is compared only when reported: OpenAI states it only on newer models.
 */
export function differences(
  format: ClientFormat,
  expected: Counts,
  reported: Counts,
  fields: readonly string[] = FIELDS[format],
): string[] {
  const out: string[] = []
  for (const field of fields) if ((reported[field] ?? 0) !== (expected[field] ?? 0)) out.push(field)
  if (format !== 'anthropic' && reported.cacheWrite !== undefined && reported.cacheWrite !== expected.cacheWrite)
    out.push('cacheWrite')
  return out
}

/** The fields an aborted stream can still be judged on: Anthropic's prompt counts from `message_start`. */
export const ABORT_FIELDS: Partial<Record<ClientFormat, readonly string[]>> = {
  anthropic: ['input', 'cacheRead', 'cacheWrite'],
}
