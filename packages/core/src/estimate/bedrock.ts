import { MEDIA } from './media.js'
import { isObject, list, Tally, type JsonObject } from './tokens.js'

/**
 * A Bedrock Converse body: `system`, `messages[].content[]` blocks and `toolConfig`. Converse serves many
 * model families and the body does not say which, so no model's hidden tool prompt is added.
 */
export function converseTokens(body: JsonObject): number | undefined {
  const messages = body.messages
  if (!Array.isArray(messages)) return undefined
  const tally = new Tally()
  for (const block of list(body.system)) if (isObject(block)) converseBlock(tally, block, true)
  const turn = currentTurn(messages)
  messages.forEach((message, i) => {
    if (!isObject(message)) return
    for (const block of list(message.content)) if (isObject(block)) converseBlock(tally, block, i > turn)
  })
  const toolConfig = isObject(body.toolConfig) ? body.toolConfig : {}
  for (const tool of list(toolConfig.tools)) {
    const spec = isObject(tool) && isObject(tool.toolSpec) ? tool.toolSpec : undefined
    if (spec === undefined) continue
    tally.text(spec.name)
    tally.text(spec.description)
    tally.json(isObject(spec.inputSchema) ? spec.inputSchema.json : undefined)
  }
  return tally.tokens
}

/** Like Anthropic's: the last user message that is not only tool results opens the current turn. */
function currentTurn(messages: readonly unknown[]): number {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i]
    if (!isObject(message) || message.role !== 'user') continue
    if (list(message.content).some((block) => !isObject(block) || block.toolResult === undefined)) return i
  }
  return -1
}

/** One block; a block is known by its one member (`text`, `image`, `toolUse`, …). */
function converseBlock(tally: Tally, block: JsonObject, current: boolean, nested = false): void {
  if (typeof block.text === 'string') return tally.text(block.text)
  if (block.json !== undefined) return tally.json(block.json)
  if (isObject(block.image)) return tally.add(MEDIA.claudeImage)
  if (isObject(block.document)) return document(tally, block.document)
  if (isObject(block.toolUse)) {
    tally.text(block.toolUse.name)
    return tally.json(block.toolUse.input)
  }
  if (isObject(block.toolResult) && !nested) {
    for (const part of list(block.toolResult.content)) if (isObject(part)) converseBlock(tally, part, current, true)
    return
  }
  if (isObject(block.reasoningContent)) {
    const reasoning = block.reasoningContent.reasoningText
    if (current && isObject(reasoning)) tally.text(reasoning.text)
    return
  }
  if (isObject(block.guardContent) && isObject(block.guardContent.text)) tally.text(block.guardContent.text.text)
}

function document(tally: Tally, document: JsonObject): void {
  const source = isObject(document.source) ? document.source : {}
  if (typeof source.text === 'string') return tally.text(source.text)
  if (Array.isArray(source.content)) {
    for (const part of source.content) if (isObject(part)) tally.text(part.text)
    return
  }
  tally.add(MEDIA.claudeDocument)
}
