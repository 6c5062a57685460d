import { MEDIA } from './media.js'
import { isObject, list, Tally, type JsonObject } from './tokens.js'

/**
 * An Ollama `/api/chat` or `/api/generate` body. Each model's chat template frames messages its own way
 * and is not in the body, so no framing is added.
 */
export function ollamaTokens(body: JsonObject): number | undefined {
  const tally = new Tally()
  if (Array.isArray(body.messages)) {
    for (const message of body.messages) {
      if (!isObject(message)) continue
      tally.text(message.content)
      tally.add(list(message.images).length * MEDIA.ollamaImage)
      for (const call of list(message.tool_calls)) {
        const fn = isObject(call) && isObject(call.function) ? call.function : undefined
        if (fn === undefined) continue
        tally.text(fn.name)
        tally.json(fn.arguments)
      }
    }
    for (const tool of list(body.tools)) {
      const fn = isObject(tool) && isObject(tool.function) ? tool.function : undefined
      if (fn === undefined) continue
      tally.text(fn.name)
      tally.text(fn.description)
      tally.json(fn.parameters)
    }
    return tally.tokens
  }
  if (typeof body.prompt !== 'string') return undefined
  tally.text(body.system)
  tally.text(body.prompt)
  tally.text(body.suffix)
  tally.add(list(body.images).length * MEDIA.ollamaImage)
  return tally.tokens
}
