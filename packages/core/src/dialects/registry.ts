import type { Dialect } from '../record.js'
import { matchRoute, routeOf } from '../routes.js'
import { isObject, type JsonObject } from '../usage.js'
import { AnthropicMessages } from './anthropic.js'
import { OpenAIChat } from './openai-chat.js'
import { OpenAIResponses } from './openai-responses.js'
import type { DialectHandler } from './types.js'

export type { DialectHandler, DialectContext, ResponseState, UsageRewrite } from './types.js'

const FACTORIES: Record<Dialect, () => DialectHandler> = {
  'anthropic-messages': () => new AnthropicMessages(),
  'openai-chat': () => new OpenAIChat(),
  'openai-responses': () => new OpenAIResponses(),
}

export const DIALECTS = Object.keys(FACTORIES) as Dialect[]

/** A fresh handler (handlers keep per-response scan state). */
export function createDialect(dialect: Dialect): DialectHandler {
  return FACTORIES[dialect]()
}

/** The dialect an endpoint speaks, from its path (query ignored: Claude Code sends `/v1/messages?beta=true`). */
export function dialectForPath(path: string): Dialect | undefined {
  return matchRoute(routeOf(path))?.dialect
}

/** The dialect of a stream, from its first event, when the path did not tell. */
export function sniffEvent(name: string | undefined, json: unknown): Dialect | undefined {
  const type = isObject(json) && typeof json.type === 'string' ? json.type : undefined
  const kind = name ?? type
  if (kind === 'message_start' || kind === 'ping' || kind === 'content_block_start') return 'anthropic-messages'
  if (kind?.startsWith('response.')) return 'openai-responses'
  if (isObject(json) && json.object === 'chat.completion.chunk') return 'openai-chat'
  return undefined
}

/** The dialect of a whole JSON body, when the path did not tell. */
export function sniffBody(json: JsonObject): Dialect | undefined {
  if (json.type === 'message') return 'anthropic-messages'
  if (json.object === 'chat.completion') return 'openai-chat'
  if (json.object === 'response') return 'openai-responses'
  return undefined
}
