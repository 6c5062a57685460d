import { MEDIA } from './media.js'
import { isObject, list, Tally, type JsonObject } from './tokens.js'

/**
 * The system prompt Anthropic adds when a request defines tools, by `tool_choice`: `auto` or `none`, and
 * `any` or `tool` (docs/estimate.md#framing). Anthropic documents no per-message framing.
 */
const TOOL_PROMPT = 346
const TOOL_PROMPT_FORCED = 313

/** An Anthropic Messages body (also Bedrock InvokeModel's for Claude): system, messages and tools. */
export function anthropicTokens(body: JsonObject): number | undefined {
  const messages = body.messages
  if (!Array.isArray(messages)) return undefined
  const tally = new Tally()
  const system = body.system
  if (typeof system === 'string') tally.text(system)
  else for (const block of list(system)) if (isObject(block)) tally.text(block.text)
  const turn = currentTurn(messages)
  messages.forEach((message, i) => {
    if (isObject(message)) content(tally, message.content, i > turn, 0)
  })
  let tools = false
  for (const tool of list(body.tools)) {
    if (!isObject(tool)) continue
    tools = true
    tally.text(tool.name)
    tally.text(tool.description)
    tally.json(tool.input_schema)
  }
  if (tools) {
    const choice = isObject(body.tool_choice) ? body.tool_choice.type : undefined
    tally.add(choice === 'any' || choice === 'tool' ? TOOL_PROMPT_FORCED : TOOL_PROMPT)
  }
  return tally.tokens
}

/**
 * The index of the message that opens the current turn: the last user message that is not only tool
 * results. Thinking blocks of earlier assistant turns are dropped by Anthropic and count no tokens.
 */
function currentTurn(messages: readonly unknown[]): number {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i]
    if (!isObject(message) || message.role !== 'user') continue
    const body = message.content
    if (typeof body === 'string') return i
    if (list(body).some((block) => !isObject(block) || block.type !== 'tool_result')) return i
  }
  return -1
}

function content(tally: Tally, value: unknown, current: boolean, depth: number): void {
  if (typeof value === 'string') return tally.text(value)
  if (depth > 1) return
  for (const block of list(value)) if (isObject(block)) contentBlock(tally, block, current, depth)
}

function contentBlock(tally: Tally, block: JsonObject, current: boolean, depth: number): void {
  switch (block.type) {
    case 'image':
      return tally.add(MEDIA.claudeImage)
    case 'document':
      return document(tally, block, depth)
    case 'tool_use':
    case 'server_tool_use':
    case 'mcp_tool_use':
      tally.text(block.name)
      return tally.json(block.input)
    case 'tool_result':
    case 'mcp_tool_result':
      return content(tally, block.content, current, depth + 1)
    case 'search_result':
      tally.text(block.title)
      tally.text(block.source)
      return content(tally, block.content, current, depth + 1)
    case 'thinking':
      if (current) tally.text(block.thinking)
      return
    case 'redacted_thinking':
      return
    default:
      return tally.text(block.text)
  }
}

function document(tally: Tally, block: JsonObject, depth: number): void {
  tally.text(block.title)
  tally.text(block.context)
  const source = isObject(block.source) ? block.source : {}
  if (source.type === 'text') tally.text(source.data)
  else if (source.type === 'content') content(tally, source.content, true, depth + 1)
  else tally.add(MEDIA.claudeDocument)
}
