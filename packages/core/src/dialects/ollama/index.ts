import { isObject, type Usage } from '../../usage.js'
import { AnyOf, member, needles } from '../bytes.js'
import type { DialectReader, DialectSpec, EventReading, JsonObject, UsageBlock, WireEvent } from '../types.js'
import { countsOf, fromOllamaUsage, toOllamaUsage } from './usage.js'
import { Buffer, indexOf } from '../../buffer.js'

/**
 * Ollama's native API, `/api/chat` and `/api/generate` (docs/dialects/ollama.md). A stream is one JSON
 * object per line (`application/x-ndjson`); only the last, `"done": true`, carries counts, as members of
 * its own beside the durations (docs/dialects/ollama.md#where-the-counts-ride). `"stream": false` answers
 * that object alone as `application/json`. Ollama's `/v1/…` routes are OpenAI's dialects.
 */
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined)

export const ollama = {
  id: 'ollama' as const,
  routes: ['/api/chat', '/api/generate'],
  usageEvents: [],
  // Every line the reader reads says `"done":true` (`true`) or carries an error (`rror`).
  quick: needles('true', 'rror'),
  recognizeEvent: (_name, json) => isObject(json) && isOllamaResponse(json),
  recognizeBody: (json) => isOllamaResponse(json),
  // `thinking` (of `message` on /api/chat, of the object on /api/generate) is reasoning.
  text(json, into) {
    const from = isObject(json.message) ? json.message : json
    const thinking = str(from.thinking)
    const answer = isObject(json.message) ? str(json.message.content) : str(json.response)
    if (thinking) into.add(thinking, true)
    if (answer) into.add(answer)
  },
  reader: (): DialectReader => new OllamaReader(),
} satisfies DialectSpec

function isOllamaResponse(json: JsonObject): boolean {
  return typeof json.done === 'boolean' && typeof json.created_at === 'string' && typeof json.model === 'string'
}

const DONE = Buffer.from('"done"')
const ERROR = new AnyOf([member('error')])
const COLON = 0x3a
const T = 0x74
const isSpace = (b: number | undefined): boolean => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d

const LARGE_PATHS = [
  ['done'],
  ['model'],
  ['error'],
  ['prompt_eval_count'],
  ['prompt_eval_cached_count'],
  ['eval_count'],
]

/**
 * Reads the `done: true` object of a stream, or a whole body. Lines before it carry text and no counts,
 * and are let through on bytes alone: `"done"` followed by `false`.
 */
class OllamaReader implements DialectReader {
  // The last search for `"done"`, kept per buffer: a chunk of many lines costs one search per line.
  private searched: Buffer | undefined
  private searchedFrom = 0
  private found = -1
  readonly largePaths = LARGE_PATHS

  mayCarry(buf: Buffer, start: number, end: number): boolean {
    return this.doneTrue(buf, start, end) || ERROR.test(buf, start, end)
  }

  /** The line `buf[start, end)` has the member `"done"` with a value that starts `t`. */
  private doneTrue(buf: Buffer, start: number, end: number): boolean {
    let from = start
    for (;;) {
      if (buf !== this.searched || from < this.searchedFrom || (this.found !== -1 && this.found < from)) {
        this.searched = buf
        this.searchedFrom = from
        this.found = indexOf.call(buf, DONE, from)
      }
      const at = this.found
      if (at === -1 || at + DONE.length > end) return false
      let i = at + DONE.length
      while (i < end && isSpace(buf[i])) i++
      if (buf[i] === COLON) {
        i++
        while (i < end && isSpace(buf[i])) i++
        return buf[i] === T
      }
      // The string "done" as a value: look further in the same line.
      from = at + 1
    }
  }

  read(event: WireEvent): EventReading | undefined {
    return this.reading(event.json, `done@${event.at}`, 'done')
  }

  readBody(json: JsonObject): EventReading | undefined {
    return { ...this.reading(json, 'body', 'body'), ended: true }
  }

  write(native: JsonObject, usage: Usage): JsonObject {
    return toOllamaUsage(native, usage)
  }

  private reading(json: JsonObject, where: string, at: string): EventReading {
    const model = typeof json.model === 'string' && json.model !== '' ? json.model : undefined
    const error = errorOf(json)
    if (error !== undefined) return { where, error, model }
    if (json.done !== true) return { where, model }
    const usage = block(json, at)
    return { where, model, usage, final: usage !== undefined, ended: true }
  }
}

function block(json: JsonObject, at: string): UsageBlock | undefined {
  const native = countsOf(json)
  if (!native) return undefined
  const { usage, sources } = fromOllamaUsage(native, at)
  // The counts are members of the object itself (an empty path); `prompt_eval_count` includes the cached
  // part, so the block is one snapshot of the prompt (docs/usage-model.md#one-block-one-snapshot).
  return { path: [], native, usage, sources, whole: true, field: '' }
}

/** `{"error": "…"}`, a whole body or a line of a stream (docs/dialects/ollama.md#end-truncation-errors). */
function errorOf(json: JsonObject): string | undefined {
  if (json.error === undefined || json.error === null) return undefined
  if (isObject(json.error)) return String(json.error.message ?? json.error.type ?? 'error')
  return String(json.error)
}
