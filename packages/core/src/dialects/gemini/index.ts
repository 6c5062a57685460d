import { isObject, type Usage } from '../../usage.js'
import { AnyOf, member, MemberScanner, needles } from '../bytes.js'
import type { DialectReader, DialectSpec, EventReading, JsonObject, UsageBlock, WireEvent } from '../types.js'
import { freshState, fromGeminiUsage, toGeminiUsage, type GeminiState } from './usage.js'
import { Buffer } from '../../buffer.js'

const STREAM = ':streamGenerateContent'

/**
 * Gemini API and Vertex AI Gemini (docs/dialects/gemini.md). Every chunk of a stream is a
 * `GenerateContentResponse` whose `usageMetadata` is a cumulative snapshot of the whole response so far;
 * the last one holds the totals (docs/dialects/gemini.md#cumulative-snapshots). With `alt=sse` the chunks
 * are data-only SSE events; without it they are the elements of one JSON array sent over time, which is
 * why the stream route declares `jsonArrayRoutes` (docs/dialects/gemini.md#stream-encodings).
 */
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined)

export const gemini = {
  id: 'gemini' as const,
  // Suffixes: the Gemini API (`/v1beta/models/{m}:…`) and Vertex (`…/publishers/google/models/{m}:…`).
  routes: [STREAM, ':generateContent'],
  jsonArrayRoutes: [STREAM],
  usageEvents: [],
  // Every chunk the reader reads says `"usageMetadata"` (`eM`), an error (`rror`) or a finish reason (`hR`).
  quick: needles('eM', 'rror', 'hR'),
  recognizeEvent: (_name, json) => isObject(json) && isGeminiResponse(json),
  recognizeBody: (json) => isGeminiResponse(json),
  // A part with `thought: true` is the model's thinking (a thought summary): reasoning.
  textKeys: new Set(['text']),
  text(json, into) {
    if (!Array.isArray(json.candidates)) return
    for (const candidate of json.candidates) {
      const parts = isObject(candidate) && isObject(candidate.content) ? candidate.content.parts : undefined
      if (!Array.isArray(parts)) continue
      for (const part of parts) {
        if (isObject(part) && typeof part.text === 'string') into.add(part.text, part.thought === true)
      }
    }
  },
  reader: (): DialectReader => new GeminiReader(),
} satisfies DialectSpec

function isGeminiResponse(json: JsonObject): boolean {
  if (json.object !== undefined || json.type !== undefined) return false
  return Array.isArray(json.candidates) || isObject(json.usageMetadata) || isObject(json.promptFeedback)
}

const LARGE_PATHS = [['usageMetadata'], ['modelVersion'], ['error'], ['promptFeedback', 'blockReason']]
const CARRIERS = [member('usageMetadata', '{'), member('error')]
const FINISH = member('finishReason', '"')
const USAGE_PATH = ['usageMetadata'] as const

/**
 * The response has ended once a candidate states a finish reason, or the prompt was blocked (no
 * candidates then). A snapshot read on or after that point is final
 * (docs/dialects/gemini.md#end-truncation-errors).
 */
class GeminiReader implements DialectReader {
  private readonly carriers = new AnyOf(CARRIERS)
  private readonly finish = new MemberScanner(FINISH)
  private readonly state: GeminiState = freshState()
  private finished = false
  private usageSeen = false
  readonly largePaths = LARGE_PATHS

  mayCarry(buf: Buffer, start: number, end: number): boolean {
    if (this.carriers.test(buf, start, end)) return true
    // A finish chunk without usage is noted on bytes, without parsing it.
    if (!this.finished && this.finish.test(buf, start, end)) this.finished = true
    return false
  }

  read(event: WireEvent): EventReading | undefined {
    return this.reading(event.json, `chunk@${event.at}`, 'chunk.usageMetadata')
  }

  readBody(json: JsonObject): EventReading | undefined {
    const reading = this.reading(json, 'body', 'body.usageMetadata')
    return { ...reading, final: reading.usage !== undefined, ended: true }
  }

  end(): { final?: boolean; ended?: boolean } {
    return { final: this.usageSeen && this.finished, ended: this.finished }
  }

  write(native: JsonObject, usage: Usage): JsonObject {
    return toGeminiUsage(native, usage, this.state)
  }

  private reading(json: JsonObject, where: string, at: string): EventReading {
    const model = typeof json.modelVersion === 'string' && json.modelVersion !== '' ? json.modelVersion : undefined
    const error = errorOf(json)
    if (error !== undefined) return { where, error, model }
    if (finishes(json)) this.finished = true
    const usage = block(json.usageMetadata, at, this.state)
    if (usage) this.usageSeen = true
    return { where, model, usage, final: usage !== undefined && this.finished, ended: this.finished }
  }
}

function block(native: unknown, at: string, state: GeminiState): UsageBlock | undefined {
  if (!isObject(native)) return undefined
  const { usage, sources } = fromGeminiUsage(native, at, state)
  // `promptTokenCount` includes the cache: one snapshot of the prompt (docs/usage-model.md#one-block-one-snapshot).
  return { path: USAGE_PATH, native, usage, sources, whole: true, field: 'usageMetadata' }
}

function finishes(json: JsonObject): boolean {
  if (isObject(json.promptFeedback) && json.promptFeedback.blockReason != null) return true
  if (!Array.isArray(json.candidates)) return false
  return json.candidates.some((c) => isObject(c) && typeof c.finishReason === 'string' && c.finishReason !== '')
}

/** `{"error": {"code", "message", "status"}}`, whole body or one element of a stream. */
function errorOf(json: JsonObject): string | undefined {
  if (json.error === undefined || json.error === null) return undefined
  const detail = isObject(json.error) ? json.error : {}
  return String(detail.status ?? detail.message ?? detail.code ?? json.error)
}
