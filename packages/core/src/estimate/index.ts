/**
 * Request-side token estimates (docs/estimate.md): what a prompt and a partial answer probably cost, counted
 * with OpenAI's public o200k_base tokenizer. usagewire uses them only where a request opts in, and the
 * record marks every value they fill as `estimate`.
 */
import { anthropicTokens } from './anthropic.js'
import { converseTokens } from './bedrock.js'
import { geminiTokens } from './gemini.js'
import { ollamaTokens } from './ollama.js'
import { chatTokens, responsesTokens } from './openai.js'
import { countText, isObject, list, type JsonObject } from './tokens.js'

type Reader = (body: JsonObject) => number | undefined

const READERS: Record<string, Reader> = {
  'anthropic-messages': anthropicTokens,
  'bedrock-invoke': anthropicTokens,
  'bedrock-converse': converseTokens,
  'openai-chat': chatTokens,
  'openai-responses': responsesTokens,
  gemini: geminiTokens,
  ollama: ollamaTokens,
}

/**
 * Prompt tokens of an LLM request body (parsed, or its raw JSON text or bytes), estimated with a public BPE
 * tokenizer; undefined when the body is none usagewire knows. `dialect` is a usagewire dialect id
 * (`anthropic-messages`, `openai-chat`, …); without it, or with one it does not know, the body is
 * recognised by its shape. Never throws.
 */
export function estimateInputTokens(body: unknown, dialect?: string): number | undefined {
  try {
    if (typeof body === 'string' || body instanceof Uint8Array) body = parse(body)
    if (!isObject(body)) return undefined
    const reader =
      (dialect !== undefined && Object.hasOwn(READERS, dialect) ? READERS[dialect] : undefined) ?? byShape(body)
    const tokens = reader?.(body)
    return tokens === undefined || !Number.isFinite(tokens) ? undefined : Math.max(0, Math.round(tokens))
  } catch {
    // raw text that is not JSON, a body too deep to walk or to stringify, a caller's BigInt: no estimate
    return undefined
  }
}

const utf8 = new TextDecoder()

/** A body not parsed yet (raw text or bytes), as JSON: a syntax error is no body (the caller's catch). */
function parse(raw: string | Uint8Array): unknown {
  return JSON.parse(typeof raw === 'string' ? raw : utf8.decode(raw))
}

/** Tokens of generated text (and tool-call argument text). Never throws; anything but a string is 0. */
export function estimateOutputTokens(text: string): number {
  try {
    return typeof text === 'string' ? countText(text) : 0
  } catch {
    return 0
  }
}

/** The reader for a body whose dialect is not given, by the members only one dialect has. */
function byShape(body: JsonObject): Reader | undefined {
  if (Array.isArray(body.contents)) return geminiTokens
  if (typeof body.input === 'string' || Array.isArray(body.input)) return responsesTokens
  const messages = body.messages
  if (!Array.isArray(messages)) {
    if (typeof body.instructions === 'string') return responsesTokens
    if (typeof body.prompt === 'string') return ollamaTokens
    return undefined
  }
  if (body.toolConfig !== undefined || body.inferenceConfig !== undefined) return converseTokens
  if (ANTHROPIC_MEMBERS.some((key) => body[key] !== undefined)) return anthropicTokens
  if (list(body.tools).some((tool) => isObject(tool) && tool.input_schema !== undefined)) return anthropicTokens
  if (body.options !== undefined || body.keep_alive !== undefined) return ollamaTokens
  for (const message of messages) {
    if (!isObject(message)) continue
    if (Array.isArray(message.images)) return ollamaTokens
    for (const block of list(message.content)) {
      if (!isObject(block)) continue
      if (block.type === undefined) return converseTokens
      if (ANTHROPIC_BLOCKS.has(block.type)) return anthropicTokens
    }
  }
  return chatTokens
}

/** Request members that only Anthropic Messages has. */
const ANTHROPIC_MEMBERS = ['anthropic_version', 'system', 'thinking', 'stop_sequences', 'top_k'] as const

/** Content block types that only Anthropic Messages uses (`text` is everyone's). */
const ANTHROPIC_BLOCKS = new Set<unknown>([
  'image',
  'document',
  'tool_use',
  'tool_result',
  'thinking',
  'redacted_thinking',
  'server_tool_use',
  'search_result',
])
