import type { Dialect } from '../record.js'
import { isObject, type JsonObject } from '../usage.js'
import { member, NamedEvents, OBJECT } from './needle.js'
import { fromOpenAIUsage, RESPONSES_NAMES, toOpenAIUsage } from './openai-usage.js'
import type { DialectContext, DialectHandler, UsageRewrite } from './types.js'

const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed'])
const EVENT_NAMES = ['response.created', ...TERMINAL, 'error'].map((name) => Buffer.from(name))
const USAGE = member('usage', OBJECT)
const ERROR = member('error', OBJECT)
const EVENT_PATH = ['response', 'usage'] as const
const BODY_PATH = ['usage'] as const

/**
 * OpenAI Responses (WIRE.md §6). Usage sits in `response.usage` of the terminal event:
 * `response.completed`, `response.incomplete` or `response.failed` (PEERS.md §2 row 38). On the way out
 * `input_tokens_details.cached_tokens` and `output_tokens_details.reasoning_tokens` are always present:
 * the schema requires them and strict clients (Codex) abort without them (row 36). `sequence_number`
 * is never touched.
 */
export class OpenAIResponses extends NamedEvents implements DialectHandler {
  readonly name: Dialect = 'openai-responses'
  readonly eventNames = EVENT_NAMES
  constructor() {
    super(USAGE, ERROR)
  }

  onEvent(_name: string | undefined, json: JsonObject, ctx: DialectContext): UsageRewrite | undefined {
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
    return readUsage(json.response, `${type}.response.usage`, EVENT_PATH, ctx)
  }

  onBody(json: JsonObject, ctx: DialectContext): UsageRewrite | undefined {
    if (isObject(json.error) && json.object !== 'response') {
      ctx.state.error = String(json.error.code ?? json.error.type ?? json.error.message ?? 'error')
      return undefined
    }
    return readUsage(json, 'body.usage', BODY_PATH, ctx)
  }
}

function readUsage(
  response: JsonObject,
  at: string,
  path: readonly string[],
  ctx: DialectContext,
): UsageRewrite | undefined {
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
