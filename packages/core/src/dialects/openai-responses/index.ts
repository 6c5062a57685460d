import { isObject, type Usage } from '../../usage.js'
import { AnyOf, member, needles } from '../bytes.js'
import { fromOpenAIUsage, RESPONSES_NAMES, toOpenAIUsage } from '../openai/usage.js'
import type { DialectReader, DialectSpec, EventReading, JsonObject, UsageBlock, WireEvent } from '../types.js'
import { Buffer } from '../../buffer.js'

const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed'])
const USAGE_EVENTS = ['response.created', ...TERMINAL, 'error'].map((name) => Buffer.from(name))
const UNNAMED = [member('usage', '{'), member('error', '{')]
/**
 * Quick needles (docs/architecture.md#byte-tests), learnt from the stream's first event, read for its
 * model. Every later event the reader reads carries a response object, whose `"object": "response"`
 * (`ject"`, a rare letter) OpenAI always writes; or is an `error` (`rror`); or carries a usage object,
 * which has token counts (`kens"` of `"input_tokens"`, …). A server whose first response object has no
 * `object` member is searched for the terminal events' names instead: `response.completed` and
 * `response.incomplete` (`mplete`, which English text has too) and `response.failed` (`failed"`).
 */
const QUICK_OBJECT = needles('kens"', 'rror', 'ject"')
const QUICK_NAMES = needles('kens"', 'rror', 'mplete', 'failed"')
const EVENT_PATH = ['response', 'usage'] as const
const BODY_PATH = ['usage'] as const

/**
 * OpenAI Responses (docs/dialects/openai-responses.md). Usage sits in `response.usage` of the terminal
 * event: `response.completed`, `response.incomplete` or `response.failed`. On the way out
 * `input_tokens_details.cached_tokens` and `output_tokens_details.reasoning_tokens` are always present:
 * the schema requires them and strict clients abort without them. `sequence_number` is never touched.
 */
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined)

export const openaiResponses = {
  id: 'openai-responses' as const,
  routes: ['/responses'],
  usageEvents: USAGE_EVENTS,
  recognizeEvent(name, json) {
    const kind = name ?? (isObject(json) && typeof json.type === 'string' ? json.type : undefined)
    return kind?.startsWith('response.') === true
  },
  recognizeBody: (json) => json.object === 'response',
  // Reasoning summaries and reasoning text (`response.reasoning_summary_text.delta`,
  // `response.reasoning_text.delta`; a `reasoning` item's `summary` and `content`) are reasoning.
  textKeys: new Set(['delta']),
  textCounts: new Set(['sequence_number', 'output_index', 'content_index', 'summary_index']),
  text(json, into) {
    const type = json.type
    if (typeof type === 'string' && type.endsWith('.delta')) {
      const delta = str(json.delta)
      if (delta !== undefined) into.add(delta, type.startsWith('response.reasoning_'))
      return
    }
    // A whole response: its output items' text and function-call arguments.
    if (json.object !== 'response' || !Array.isArray(json.output)) return
    for (const item of json.output) {
      if (!isObject(item)) continue
      const reasoning = item.type === 'reasoning'
      if (typeof item.arguments === 'string') into.add(item.arguments)
      for (const parts of reasoning ? [item.summary, item.content] : [item.content]) {
        if (!Array.isArray(parts)) continue
        for (const part of parts) if (isObject(part) && typeof part.text === 'string') into.add(part.text, reasoning)
      }
    }
  },
  reader: (): DialectReader => new ResponsesReader(),
} satisfies DialectSpec

const LARGE_PATHS = [
  ['type'],
  ['response', 'usage'],
  ['response', 'model'],
  ['response', 'status'],
  ['response', 'error'],
  ['usage'],
  ['model'],
  ['object'],
  ['status'],
  ['error'],
]

class ResponsesReader implements DialectReader {
  private unnamed: AnyOf | undefined // only events without a name are tested byte by byte
  quick: readonly Buffer[] | undefined
  // A terminal event carries the whole output (long answers, images, audio): its usage is read on the way.
  readonly largePaths = LARGE_PATHS

  mayCarry(buf: Buffer, start: number, end: number): boolean {
    return (this.unnamed ??= new AnyOf(UNNAMED)).test(buf, start, end)
  }

  read(event: WireEvent): EventReading | undefined {
    const { json } = event
    this.quick ??= isObject(json.response) && json.response.object === 'response' ? QUICK_OBJECT : QUICK_NAMES
    const type = String(json.type)
    if (type === 'error') {
      // Two shapes exist: top-level code/message (the SDK's type) and a nested `error` object.
      const detail = isObject(json.error) ? json.error : json
      return { where: type, error: String(detail.code ?? detail.type ?? detail.message ?? 'error') }
    }
    if (!isObject(json.response)) return undefined
    if (!TERMINAL.has(type)) return { where: type, model: modelOf(json.response) }
    return readResponse(json.response, type, EVENT_PATH, `${type}.response.usage`)
  }

  readBody(json: JsonObject): EventReading | undefined {
    if (isObject(json.error) && json.object !== 'response') {
      return { where: 'body', error: String(json.error.code ?? json.error.type ?? json.error.message ?? 'error') }
    }
    return readResponse(json, 'body', BODY_PATH, 'body.usage')
  }

  write(native: JsonObject, usage: Usage): JsonObject {
    return toOpenAIUsage(native, usage, RESPONSES_NAMES, { requireDetails: true })
  }
}

function readResponse(response: JsonObject, where: string, path: readonly string[], at: string): EventReading {
  const reading: EventReading = { where, model: modelOf(response), ended: true }
  if (response.status === 'failed') {
    const detail = isObject(response.error) ? response.error : {}
    reading.error = String(detail.code ?? detail.message ?? 'failed')
  }
  const native = response.usage
  if (isObject(native)) {
    const { usage, sources } = fromOpenAIUsage(native, RESPONSES_NAMES, at)
    reading.usage = { path, native, usage, sources, whole: true } satisfies UsageBlock
    reading.final = true
  }
  return reading
}

const modelOf = (json: JsonObject): string | undefined => (typeof json.model === 'string' ? json.model : undefined)
