import { MEDIA } from './media.js'
import { isObject, list, member, Tally, type JsonObject } from './tokens.js'

/**
 * A Gemini `generateContent` body (Google AI and Vertex AI): `contents[].parts[]`, `systemInstruction` and
 * function declarations. The REST API takes camelCase and snake_case names alike. Google documents no
 * per-turn framing.
 */
export function geminiTokens(body: JsonObject): number | undefined {
  const contents = body.contents
  if (!Array.isArray(contents)) return undefined
  const tally = new Tally()
  const system = member(body, 'systemInstruction', 'system_instruction')
  if (typeof system === 'string') tally.text(system)
  else if (isObject(system)) geminiParts(tally, system.parts)
  for (const content of contents) if (isObject(content)) geminiParts(tally, content.parts)
  for (const tool of list(body.tools)) {
    if (!isObject(tool)) continue
    for (const fn of list(member(tool, 'functionDeclarations', 'function_declarations'))) {
      if (!isObject(fn)) continue
      tally.text(fn.name)
      tally.text(fn.description)
      tally.json(member(fn, 'parameters', 'parametersJsonSchema', 'parameters_json_schema'))
    }
  }
  return tally.tokens
}

function geminiParts(tally: Tally, parts: unknown): void {
  for (const part of list(parts)) {
    if (!isObject(part)) continue
    if (typeof part.text === 'string') {
      tally.text(part.text)
      continue
    }
    const data = member(part, 'inlineData', 'inline_data', 'fileData', 'file_data')
    if (isObject(data)) {
      const mime = member(data, 'mimeType', 'mime_type')
      if (typeof mime === 'string' && (mime.startsWith('image/') || mime === 'application/pdf'))
        tally.add(MEDIA.geminiImage)
      continue
    }
    const call = member(part, 'functionCall', 'function_call')
    if (isObject(call)) {
      tally.text(call.name)
      tally.json(call.args)
      continue
    }
    const response = member(part, 'functionResponse', 'function_response')
    if (isObject(response)) {
      tally.text(response.name)
      tally.json(response.response)
      continue
    }
    const code = member(part, 'executableCode', 'executable_code')
    if (isObject(code)) {
      tally.text(code.code)
      continue
    }
    const result = member(part, 'codeExecutionResult', 'code_execution_result')
    if (isObject(result)) tally.text(result.output)
  }
}
