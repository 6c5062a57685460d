import { countTokens } from 'gpt-tokenizer/encoding/o200k_base'

/**
 * Text that looks like a special token (`<|endoftext|>`) is counted as the plain text it is: a provider
 * tokenizes a user's text that way, and the tokenizer would otherwise throw.
 */
const PLAIN = { disallowedSpecial: new Set<string>() }

/**
 * BPE merges a piece (a run of letters, of symbols or of spaces) in time quadratic in its length: 20,000
 * letters in one run take a third of a second. Runs this long are cut into slices of this length, so
 * counting stays linear; a cut costs at most one token, and real words are far shorter.
 */
const RUN = 64
const LONG_RUN = new RegExp(`[\\p{L}\\p{M}]{${RUN},}|[^\\s\\p{L}\\p{N}]{${RUN},}|\\s{${RUN},}`, 'gu')

/** The o200k_base token count of `text` (the tokenizer of OpenAI's GPT-4o, 4.1, 5 and o-series models). */
export function countText(text: string): number {
  const runs = text.length < RUN ? undefined : longRuns(text)
  if (runs === undefined) return text.length === 0 ? 0 : countTokens(text, PLAIN)
  let total = 0
  let at = 0
  for (let r = 0; r < runs.length; r += 2) {
    const start = runs[r]!
    const end = runs[r + 1]!
    if (start > at) total += countTokens(text.slice(at, start), PLAIN)
    for (let i = start; i < end;) {
      let cut = Math.min(i + RUN, end)
      // never split a surrogate pair
      if (cut < end && isLowSurrogate(text.charCodeAt(cut))) cut++
      total += countTokens(text.slice(i, cut), PLAIN)
      i = cut
    }
    at = end
  }
  if (at < text.length) total += countTokens(text.slice(at), PLAIN)
  return total
}

/**
 * The [start, end) pairs of the pieces in `text` too long to merge, or undefined when there are none. A
 * char-code pass finds the stretches that could hold one (at least RUN characters between a switch from
 * ASCII whitespace to ASCII non-whitespace or back; any other character extends the stretch it is in), and
 * only those are searched with the Unicode-aware pattern, which is costly across a whole prompt.
 */
function longRuns(text: string): number[] | undefined {
  let found: number[] | undefined
  let start = 0
  let space = isAsciiSpace(text.charCodeAt(0))
  for (let i = 1; i <= text.length; i++) {
    if (i < text.length) {
      const code = text.charCodeAt(i)
      if (code >= 128 || isAsciiSpace(code) === space) continue
    }
    if (i - start >= RUN) {
      const stretch = text.slice(start, i)
      LONG_RUN.lastIndex = 0
      for (let run = LONG_RUN.exec(stretch); run !== null; run = LONG_RUN.exec(stretch)) {
        ;(found ??= []).push(start + run.index, start + run.index + run[0].length)
      }
    }
    start = i
    space = !space
  }
  return found
}

function isAsciiSpace(code: number): boolean {
  return code === 32 || (code >= 9 && code <= 13)
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff
}

/** A running token count over the parts of one request. */
export class Tally {
  tokens = 0

  /** Counts `value` when it is a string; anything else counts nothing. */
  text(value: unknown): void {
    if (typeof value === 'string' && value.length > 0) this.tokens += countText(value)
  }

  /** Counts a JSON value as the JSON text a model reads (a string is counted as it is). */
  json(value: unknown): void {
    if (value === undefined || value === null) return
    if (typeof value === 'string') return this.text(value)
    this.text(JSON.stringify(value))
  }

  add(tokens: number): void {
    this.tokens += tokens
  }
}

export type JsonObject = Record<string, unknown>

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** `value` when it is an array, else an empty one. */
export function list(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : []
}

/** The first of `keys` that `object` has (Gemini's REST API takes both `inlineData` and `inline_data`). */
export function member(object: JsonObject, ...keys: string[]): unknown {
  for (const key of keys) {
    const value = object[key]
    if (value !== undefined) return value
  }
  return undefined
}
