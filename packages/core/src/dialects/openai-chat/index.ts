import type { Dialect } from '../record.js'
import { isObject, type JsonObject } from '../usage.js'
import { member, MemberScanner, OBJECT, STRING } from './needle.js'
import { CHAT_NAMES, fromOpenAIUsage, toOpenAIUsage } from './openai-usage.js'
import type { DialectContext, DialectHandler, UsageRewrite } from './types.js'

const USAGE = member('usage', OBJECT)
const ERROR = member('error')
const FINISH = member('finish_reason', STRING)
const DONE = Buffer.from('data: [DONE]')

/** The `data: [DONE]` sentinel (the space is optional), on bytes. */
function isDone(buf: Buffer, start: number, end: number): boolean {
  if (buf[start] !== 0x64 /* d */ || buf[start + 5] === undefined) return false
  let at = start
  for (let i = 0; i < DONE.length; i++, at++) {
    if (i === 5 && buf[at] !== 0x20) i++ // no space after the colon
    if (buf[at] !== DONE[i] || at >= end) return false
  }
  return true
}

/**
 * OpenAI Chat Completions and its compatibles (WIRE.md §5, §8). Data-only SSE: usage is an object on a
 * `choices: []` chunk, on the finish chunk (DeepSeek, Mistral, OpenRouter; PEERS.md §2 rows 10, 11), on
 * every chunk cumulatively (vLLM `continuous_usage_stats`, row 42) or under `x_groq.usage`. Every other
 * chunk says `"usage": null`, which the byte test rejects, so those chunks are never parsed.
 *
 * A usage block is final on or after the finish chunk (OpenAI's `choices: []` chunk, DeepSeek's and
 * Mistral's finish chunk). Before it, a usage block is a preview (row 37) or a continuous-usage snapshot
 * (row 42): final only if `[DONE]` closes the stream whole.
 */
export class OpenAIChat implements DialectHandler {
  readonly name: Dialect = 'openai-chat'
  readonly eventNames: readonly Buffer[] = []
  private readonly usageKey = new MemberScanner(USAGE)
  private readonly errorKey = new MemberScanner(ERROR)
  private readonly finishKey = new MemberScanner(FINISH)
  private usageSeen = false
  private finishSeen = false

  mayCarry(buf: Buffer, start: number, end: number): boolean {
    if (this.usageKey.test(buf, start, end) || this.errorKey.test(buf, start, end)) return true
    // A finish chunk without usage is noted on bytes, without parsing it.
    if (this.finishKey.test(buf, start, end)) this.finishSeen = true
    return isDone(buf, start, end)
  }

  onEvent(_name: string | undefined, json: JsonObject, ctx: DialectContext): UsageRewrite | undefined {
    if (noteModelAndError(json, ctx)) return undefined
    const choices = Array.isArray(json.choices) ? json.choices : []
    if (choices.some((c) => isObject(c) && c.finish_reason != null)) this.finishSeen = true
    const rewrite = readBlock(json, 'chunk.usage', ctx)
    if (rewrite) {
      this.usageSeen = true
      if (this.finishSeen) ctx.state.final = true
    }
    return rewrite
  }

  onEnd(ctx: DialectContext): void {
    if (this.usageSeen && ctx.state.done) ctx.state.final = true
  }

  onBody(json: JsonObject, ctx: DialectContext): UsageRewrite | undefined {
    if (noteModelAndError(json, ctx)) return undefined
    const rewrite = readBlock(json, 'body.usage', ctx)
    ctx.state.final = rewrite !== undefined
    return rewrite
  }
}

const USAGE_PATH = ['usage'] as const
const GROQ_PATH = ['x_groq', 'usage'] as const

function readBlock(json: JsonObject, at: string, ctx: DialectContext): UsageRewrite | undefined {
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
  ctx.ledger.observe('stream', reading.usage, reading.sources)
  return { path, before: native, after: toOpenAIUsage(native, ctx.ledger.usage(), CHAT_NAMES) }
}

function noteModelAndError(json: JsonObject, ctx: DialectContext): boolean {
  if (typeof json.model === 'string' && json.model !== '') ctx.state.model = json.model
  if (json.error === undefined || json.error === null) return false
  const detail = isObject(json.error) ? json.error : {}
  ctx.state.error = String(detail.type ?? detail.code ?? detail.message ?? json.error)
  return true
}
