import { isObject, type JsonObject } from '../usage.js'
import { MemberScanner, OBJECT, STRING } from './needle.js'
import { CHAT_NAMES, fromOpenAIUsage, toOpenAIUsage } from './openai-usage.js'
import type { DialectContext, DialectHandler, UsageRewrite } from './types.js'

/**
 * OpenAI Chat Completions and its compatibles (WIRE.md §5, §8). Data-only SSE: usage is an object on a
 * `choices: []` chunk, on the finish chunk (DeepSeek, Mistral, OpenRouter; PEERS.md §2 rows 10, 11), on
 * every chunk cumulatively (vLLM `continuous_usage_stats`, row 42) or under `x_groq.usage`. Every other
 * chunk says `"usage": null`, which the byte test rejects, so those chunks are never parsed.
 */
const DATA = Buffer.from('data:')
const DONE = Buffer.from('[DONE]')

/** The `data: [DONE]` sentinel (the space is optional), on bytes. */
function isDone(buf: Buffer, start: number, end: number): boolean {
  if (end - start < 11 || buf.compare(DATA, 0, 5, start, start + 5) !== 0) return false
  const at = buf[start + 5] === 0x20 ? start + 6 : start + 5
  return at + 6 <= end && buf.compare(DONE, 0, 6, at, at + 6) === 0
}

export function openaiChat(): DialectHandler {
  const usageKey = new MemberScanner('usage', OBJECT)
  const errorKey = new MemberScanner('error')
  const finishKey = new MemberScanner('finish_reason', STRING)
  let usageSeen = false
  let finishSeen = false

  function readBlock(json: JsonObject, at: string, ctx: DialectContext): UsageRewrite | undefined {
    const groq = isObject(json.x_groq) && isObject(json.x_groq.usage)
    const path = isObject(json.usage) ? ['usage'] : groq ? ['x_groq', 'usage'] : undefined
    if (!path) return undefined
    const native = (groq && !isObject(json.usage) ? (json.x_groq as JsonObject).usage : json.usage) as JsonObject
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

  return {
    name: 'openai-chat',
    eventNames: [],
    mayCarry: (buf, start, end) =>
      usageKey.test(buf, start, end) ||
      errorKey.test(buf, start, end) ||
      finishKey.test(buf, start, end) ||
      isDone(buf, start, end),
    onEvent(_name, json, ctx) {
      if (noteModelAndError(json, ctx)) return undefined
      const choices = Array.isArray(json.choices) ? json.choices : []
      if (choices.some((c) => isObject(c) && c.finish_reason != null)) finishSeen = true
      const rewrite = readBlock(json, 'chunk.usage', ctx)
      // A usage block is final on or after the finish chunk (OpenAI's `choices: []` chunk, DeepSeek's and
      // Mistral's finish chunk, PEERS.md §2 rows 10, 11). Before it, a usage block is a preview (row 37)
      // or a continuous-usage snapshot (vLLM, row 42): final only if `[DONE]` closes the stream whole.
      if (rewrite) {
        usageSeen = true
        if (finishSeen) ctx.state.final = true
      }
      return rewrite
    },
    onEnd(ctx) {
      if (usageSeen && ctx.state.done) ctx.state.final = true
    },
    onBody(json, ctx) {
      if (noteModelAndError(json, ctx)) return undefined
      const rewrite = readBlock(json, 'body.usage', ctx)
      ctx.state.final = rewrite !== undefined
      return rewrite
    },
  }
}
