import type { Dialect } from '../record.js'
import { isObject, type JsonObject } from '../usage.js'
import { fromAnthropicUsage, toAnthropicUsage } from './anthropic-usage.js'
import { member, NamedEvents, OBJECT } from './needle.js'
import type { DialectContext, DialectHandler, UsageRewrite } from './types.js'

const EVENT_NAMES = ['message_start', 'message_delta', 'error'].map((name) => Buffer.from(name))
const USAGE = member('usage', OBJECT)
const ERROR = member('error')
const START_PATH = ['message', 'usage'] as const
const DELTA_PATH = ['usage'] as const

/**
 * Anthropic Messages (WIRE.md §1). Usage rides on `message_start.message.usage` and on every
 * `message_delta.usage`; both are cumulative snapshots of the whole message. The rewrite writes the best
 * values known into each of them, so the last `message_delta` carries the complete totals
 * (`input_tokens`, `cache_creation_input_tokens`, `cache_read_input_tokens`, `output_tokens`) that every
 * SDK version accumulates correctly (WIRE.md §1.5), and never writes a value that is not known.
 */
export class AnthropicMessages extends NamedEvents implements DialectHandler {
  readonly name: Dialect = 'anthropic-messages'
  readonly eventNames = EVENT_NAMES
  constructor() {
    super(USAGE, ERROR)
  }

  onEvent(_name: string | undefined, json: JsonObject, ctx: DialectContext): UsageRewrite | undefined {
    switch (json.type) {
      case 'message_start': {
        const message = isObject(json.message) ? json.message : {}
        if (typeof message.model === 'string') ctx.state.model = message.model
        return rewrite(message.usage, 'message_start.message.usage', START_PATH, ctx)
      }
      case 'message_delta':
        // Several deltas may come (server tools); the one with a stop reason ends the message, so a
        // stream cut before it has partial usage only (PEERS.md §2 rows 27, 43).
        if (isObject(json.delta) && json.delta.stop_reason != null) ctx.state.final = true
        return rewrite(json.usage, 'message_delta.usage', DELTA_PATH, ctx)
      case 'error':
        return error(json, ctx)
      default:
        return undefined
    }
  }

  onBody(json: JsonObject, ctx: DialectContext): UsageRewrite | undefined {
    if (json.type === 'error') return error(json, ctx)
    if (typeof json.model === 'string') ctx.state.model = json.model
    ctx.state.final = isObject(json.usage)
    return rewrite(json.usage, 'body.usage', DELTA_PATH, ctx)
  }
}

function rewrite(native: unknown, at: string, path: readonly string[], ctx: DialectContext): UsageRewrite | undefined {
  if (!isObject(native)) return undefined
  const { usage, sources } = fromAnthropicUsage(native, at)
  ctx.ledger.observe('stream', usage, sources)
  return { path, before: native, after: toAnthropicUsage(native, ctx.ledger.usage()) }
}

function error(json: JsonObject, ctx: DialectContext): undefined {
  const detail = isObject(json.error) ? json.error : {}
  ctx.state.error = String(detail.type ?? detail.message ?? 'error')
  return undefined
}
