import { isObject, type Usage } from '../../usage.js'
import { member, MemberScanner, NeedleScanner, needles, separatorAfter, type Separator } from '../bytes.js'
import { CHAT_NAMES, fromOpenAIUsage, toOpenAIUsage } from '../openai/usage.js'
import type { DialectReader, DialectSpec, EventReading, JsonObject, UsageBlock, WireEvent } from '../types.js'
import { Buffer, indexOf } from '../../buffer.js'

/** A usage block with a count in it: every count's name ends in `tokens` (docs/dialects/openai-chat.md). */
const TOKENS = Buffer.from('kens"')
const ERROR = member('error')
const FINISH = member('finish_reason', '"')

/**
 * OpenAI Chat Completions and its compatibles (docs/dialects/openai-chat.md). Data-only SSE: usage is an
 * object on a `choices: []` chunk, on the finish chunk (DeepSeek, Mistral, OpenRouter), on every chunk
 * cumulatively (vLLM continuous usage) or under `x_groq.usage`. Every other chunk says `"usage": null`,
 * which the byte test rejects, so those chunks are never parsed.
 */
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined)

/**
 * The generated text and the obfuscation padding: what differs between one chunk and the next. What the
 * reader reads (a usage block, an error, a finish reason that is a string, `[DONE]`) is never inside
 * such a value (docs/architecture.md#event-templates).
 */
const FREE_STRINGS: ReadonlySet<string> = new Set([
  'content',
  'reasoning_content',
  'reasoning',
  'refusal',
  'arguments',
  'obfuscation',
])

export const openaiChat = {
  id: 'openai-chat' as const,
  routes: ['/chat/completions'],
  usageEvents: [],
  // Azure's first chunk (prompt filter results) has an empty `object` (docs/dialects/openai-chat.md#azure-openai).
  recognizeEvent: (_name, json) =>
    isObject(json) && (json.object === 'chat.completion.chunk' || Array.isArray(json.prompt_filter_results)),
  recognizeBody: (json) => json.object === 'chat.completion',
  // `reasoning_content` (DeepSeek, vLLM) and `reasoning` (OpenRouter, Ollama) are reasoning.
  textKeys: new Set(['content', 'reasoning_content', 'reasoning', 'arguments']),
  text(json, into) {
    if (!Array.isArray(json.choices)) return
    for (const choice of json.choices) {
      // A chunk's delta, or a whole completion's message.
      const delta = !isObject(choice)
        ? undefined
        : isObject(choice.delta)
          ? choice.delta
          : isObject(choice.message)
            ? choice.message
            : undefined
      if (!delta) continue
      if (typeof delta.content === 'string') into.add(delta.content)
      const reasoning = str(delta.reasoning_content) ?? str(delta.reasoning)
      if (reasoning !== undefined) into.add(reasoning, true)
      if (Array.isArray(delta.tool_calls)) {
        for (const call of delta.tool_calls) {
          if (isObject(call) && isObject(call.function) && typeof call.function.arguments === 'string')
            into.add(call.function.arguments)
        }
      }
    }
  },
  reader: (): DialectReader => new ChatReader(),
  freeStrings: FREE_STRINGS,
} satisfies DialectSpec

/** `[DONE]`, the sentinel that ends a whole stream (the space after `data:` is optional). */
const DONE = Buffer.from('[DONE]')

/**
 * Quick needles (docs/architecture.md#byte-tests). Every event the reader reads has a token count
 * (`kens"` of `"prompt_tokens"`, …), an error (`rror`), a finish reason that is a string, or `[DONE]`.
 * `"finish_reason": null` is on every other chunk, so the finish needle has to include the colon and
 * the quote of a string value: it depends on how the provider's JSON writer separates them, which is
 * learnt from the first chunk that has the key. After the finish chunk it is no longer looked for.
 */
const QUICK_COMPACT = needles('kens"', 'rror', 'ason":"', 'DONE]')
const QUICK_SPACED = needles('kens"', 'rror', 'son": "', 'DONE]')
const QUICK_FINISHED = needles('kens"', 'rror', 'DONE]')
const FINISH_KEY = Buffer.from('"finish_reason"')
const LARGE_PATHS = [['usage'], ['x_groq', 'usage'], ['model'], ['error'], ['object']]

/**
 * A usage block is final on or after the finish chunk (OpenAI's `choices: []` chunk follows it; DeepSeek
 * and Mistral put usage on it). Before it, a block is a preview or a continuous-usage snapshot
 * (docs/peer-bugs.md rows 37, 42): final only if `[DONE]` closes the stream whole.
 */
class ChatReader implements DialectReader {
  private readonly tokens = new NeedleScanner(TOKENS)
  private readonly error = new MemberScanner(ERROR)
  private readonly finish = new MemberScanner(FINISH)
  private usageSeen = false
  private finishSeen = false
  private done = false
  // Learnt from the first chunk with a `finish_reason`; none when its writer spaces JSON unusually.
  private separator: Separator
  quick: readonly Buffer[] | undefined
  readonly largePaths = LARGE_PATHS

  mayCarry(buf: Buffer, start: number, end: number): boolean {
    if (this.separator === undefined) this.learn(buf, start, end)
    if (this.tokens.test(buf, start, end) || this.error.test(buf, start, end)) return true
    // A finish chunk without usage is noted on bytes, without parsing it.
    if (!this.finishSeen && this.finish.test(buf, start, end)) this.finished()
    // `[DONE]` is the only other payload read: a short event that mentions it.
    if (end - start > 32) return false
    const at = indexOf.call(buf, DONE, start)
    return at !== -1 && at < end
  }

  private learn(buf: Buffer, start: number, end: number): void {
    const separator = separatorAfter(buf, start, end, FINISH_KEY)
    if (separator === undefined) return
    this.separator = separator
    if (this.finishSeen) this.quick = QUICK_FINISHED
    else if (separator !== 'other') this.quick = separator === 'compact' ? QUICK_COMPACT : QUICK_SPACED
  }

  private finished(): void {
    this.finishSeen = true
    if (this.quick !== undefined) this.quick = QUICK_FINISHED
  }

  control(data: string): boolean {
    if (data.trim() !== '[DONE]') return false
    this.done = true
    return true
  }

  read(event: WireEvent): EventReading | undefined {
    const { json } = event
    const where = `chunk@${event.at}`
    const error = errorOf(json)
    if (error !== undefined) return { where, error, model: modelOf(json) }
    const choices = Array.isArray(json.choices) ? json.choices : []
    if (!this.finishSeen && choices.some((c) => isObject(c) && c.finish_reason != null)) this.finished()
    const usage = block(json, 'chunk.usage')
    if (usage) this.usageSeen = true
    const reading: EventReading = {
      where,
      model: modelOf(json),
      usage,
      final: usage !== undefined && this.finishSeen,
      ended: this.finishSeen,
    }
    if (usage && Array.isArray(json.choices) && json.choices.length === 0) reading.usageOnly = true
    return reading
  }

  end(): { final?: boolean; ended?: boolean } {
    return { final: this.usageSeen && this.done, ended: this.finishSeen || this.done }
  }

  readBody(json: JsonObject): EventReading | undefined {
    const error = errorOf(json)
    if (error !== undefined) return { where: 'body', error, model: modelOf(json) }
    const usage = block(json, 'body.usage')
    return { where: 'body', model: modelOf(json), usage, final: usage !== undefined, ended: true }
  }

  write(native: JsonObject, usage: Usage): JsonObject {
    return toOpenAIUsage(native, usage, CHAT_NAMES)
  }
}

const USAGE_PATH = ['usage'] as const
const GROQ_PATH = ['x_groq', 'usage'] as const

function block(json: JsonObject, at: string): UsageBlock | undefined {
  let path: readonly string[]
  let native: JsonObject
  if (isObject(json.usage)) {
    path = USAGE_PATH
    native = json.usage
  } else if (isObject(json.x_groq) && isObject(json.x_groq.usage)) {
    path = GROQ_PATH
    native = json.x_groq.usage
  } else {
    return undefined
  }
  const reading = fromOpenAIUsage(native, CHAT_NAMES, at)
  return { path, native, usage: reading.usage, sources: reading.sources, whole: true }
}

const modelOf = (json: JsonObject): string | undefined =>
  typeof json.model === 'string' && json.model !== '' ? json.model : undefined

function errorOf(json: JsonObject): string | undefined {
  if (json.error === undefined || json.error === null) return undefined
  const detail = isObject(json.error) ? json.error : {}
  return String(detail.type ?? detail.code ?? detail.message ?? json.error)
}
