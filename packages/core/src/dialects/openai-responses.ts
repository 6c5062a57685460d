import { isObject, type JsonObject } from '../usage.js'
import { MemberScanner, OBJECT } from './needle.js'
import { fromOpenAIUsage, RESPONSES_NAMES, toOpenAIUsage } from './openai-usage.js'
import type { DialectContext, DialectHandler, UsageRewrite } from './types.js'

const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed'])

/**
 * OpenAI Responses (WIRE.md §6). Usage sits in `response.usage` of the terminal event:
 * `response.completed`, `response.incomplete` or `response.failed` (PEERS.md §2 row 38). On the way out
 * `input_tokens_details.cached_tokens` and `output_tokens_details.reasoning_tokens` are always present:
 * the schema requires them and strict clients (Codex) abort without them (row 36). `sequence_number`
 * is never touched.
 */
export function openaiResponses(): DialectHandler {
  const usageKey = new MemberScanner('usage', OBJECT)
  const errorKey = new MemberScanner('error', OBJECT)

  function readUsage(response: JsonObject, at: string, path: string[], ctx: DialectContext): UsageRewrite | undefined {
    if (typeof response.model === 'string') ctx.state.model = response.model
    if (response.status === 'failed') {
      const detail = isObject(response.error) ? response.error : {}
      ctx.state.error = String(detail.code ?? detail.message ?? 'failed')
    }
    const native = response.usage
    if (!isObject(native)) return undefined
    ctx.state.final = true
    const reading = fromOpenAIUsage(native, RESPONSES_NAMES, at)
    ctx.ledger.observe('stream', reading.usage, reading.sources)
    const after = toOpenAIUsage(native, ctx.ledger.usage(), RESPONSES_NAMES, { requireDetails: true })
    return { path, before: native, after }
  }

  return {
    name: 'openai-responses',
    eventNames: ['response.created', 'response.completed', 'response.incomplete', 'response.failed', 'error'].map(
      (name) => Buffer.from(name),
    ),
    mayCarry: (buf, start, end) => usageKey.test(buf, start, end) || errorKey.test(buf, start, end),
    onEvent(_name, json, ctx) {
      const type = String(json.type)
      if (type === 'error') {
        // Two shapes exist: top-level code/message (SDK type) and a nested `error` object (recorded streams).
        const detail = isObject(json.error) ? json.error : json
        ctx.state.error = String(detail.code ?? detail.type ?? detail.message ?? 'error')
        return undefined
      }
      if (!isObject(json.response)) return undefined
      if (!TERMINAL.has(type)) {
        if (typeof json.response.model === 'string') ctx.state.model = json.response.model
        return undefined
      }
      return readUsage(json.response, `${type}.response.usage`, ['response', 'usage'], ctx)
    },
    onBody(json, ctx) {
      if (isObject(json.error) && json.object !== 'response') {
        ctx.state.error = String(json.error.code ?? json.error.type ?? json.error.message ?? 'error')
        return undefined
      }
      return readUsage(json, 'body.usage', ['usage'], ctx)
    },
  }
}
