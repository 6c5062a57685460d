/**
 * The dialects usagewire reads and rewrites. Adding one is adding its folder and one line here
 * (docs/adding-a-dialect.md).
 */
import { anthropicMessages } from './anthropic-messages/index.js'
import { bedrockConverse } from './bedrock-converse/index.js'
import { bedrockInvoke } from './bedrock-invoke/index.js'
import { gemini } from './gemini/index.js'
import { ollama } from './ollama/index.js'
import { openaiChat } from './openai-chat/index.js'
import { openaiResponses } from './openai-responses/index.js'
import type { DialectSpec, JsonObject } from './types.js'

export const DIALECTS = [
  anthropicMessages,
  openaiChat,
  openaiResponses,
  gemini,
  bedrockInvoke,
  bedrockConverse,
  ollama,
] as const satisfies readonly DialectSpec[]

/** The id of a dialect in the registry: `anthropic-messages`, `openai-chat`, `openai-responses`. */
export type DialectId = (typeof DIALECTS)[number]['id']

const BY_ID = new Map<string, DialectSpec>(DIALECTS.map((spec) => [spec.id, spec]))

export const DIALECT_IDS: readonly DialectId[] = DIALECTS.map((spec) => spec.id)

export function dialectById(id: string): DialectSpec | undefined {
  return BY_ID.get(id)
}

/** The dialect of a stream, from its first event, when the path did not tell. */
export function recognizeEvent(name: string | undefined, json: unknown): DialectSpec | undefined {
  return (DIALECTS as readonly DialectSpec[]).find((spec) => spec.recognizeEvent(name, json))
}

/** The dialect of a whole JSON body, when the path did not tell. */
export function recognizeBody(json: JsonObject): DialectSpec | undefined {
  return (DIALECTS as readonly DialectSpec[]).find((spec) => spec.recognizeBody(json))
}

/**
 * Whether `spec` streams an `application/json` body on `route` as a JSON array sent over time
 * (`DialectSpec.jsonArrayRoutes`): the content-type rule then picks the JSON-array framing.
 */
export function streamsJsonArray(spec: DialectSpec | undefined, route: string | undefined): boolean {
  const suffixes = spec?.jsonArrayRoutes
  if (!suffixes || route === undefined) return false
  const q = route.indexOf('?')
  const path = (q === -1 ? route : route.slice(0, q)).replace(/\/+$/, '').toLowerCase()
  return suffixes.some((suffix) => path.endsWith(suffix.toLowerCase()))
}
