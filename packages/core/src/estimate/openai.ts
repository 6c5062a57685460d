import { MEDIA } from './media.js'
import { isObject, list, Tally, type JsonObject } from './tokens.js'

/**
 * OpenAI's documented chat framing for the GPT-4o family: 3 tokens around every message (its role and
 * name are counted as text, a name costs 1 more), and 3 that prime the reply.
 */
const MESSAGE = 3
const NAME = 1
const REPLY = 3

/**
 * OpenAI's documented count of function definitions for the GPT-4o family: 7 per function, 3 to open its
 * properties, 3 per property, an enum -3 and 3 per value, and 12 closing the list.
 */
const FUNCTION = 7
const PROPERTIES = 3
const PROPERTY = 3
const ENUM = -3
const ENUM_VALUE = 3
const FUNCTIONS_END = 12
/** Nested schemas deeper than this are counted as their JSON text. */
const MAX_DEPTH = 8

/** An OpenAI Chat Completions body: messages, tool calls, and `tools` or `functions`. */
export function chatTokens(body: JsonObject): number | undefined {
  const messages = body.messages
  if (!Array.isArray(messages)) return undefined
  const tally = new Tally()
  for (const message of messages) {
    if (!isObject(message)) continue
    tally.add(MESSAGE)
    tally.text(message.role)
    if (typeof message.name === 'string') {
      tally.text(message.name)
      tally.add(NAME)
    }
    parts(tally, message.content)
    tally.text(message.refusal)
    for (const call of list(message.tool_calls)) {
      if (!isObject(call)) continue
      const fn = isObject(call.function) ? call.function : isObject(call.custom) ? call.custom : undefined
      if (fn === undefined) continue
      tally.text(fn.name)
      tally.json(fn.arguments ?? fn.input)
    }
    if (isObject(message.function_call)) {
      tally.text(message.function_call.name)
      tally.json(message.function_call.arguments)
    }
  }
  tally.add(REPLY)
  const functions: JsonObject[] = []
  for (const tool of list(body.tools)) {
    if (!isObject(tool)) continue
    if (isObject(tool.function)) functions.push(tool.function)
    else if (isObject(tool.custom)) customTool(tally, tool.custom)
  }
  for (const fn of list(body.functions)) if (isObject(fn)) functions.push(fn)
  functionDefinitions(tally, functions)
  return tally.tokens
}

/** An OpenAI Responses body: `instructions`, `input` as a string or items, and function tools. */
export function responsesTokens(body: JsonObject): number | undefined {
  const { input, instructions } = body
  if (typeof input !== 'string' && !Array.isArray(input) && typeof instructions !== 'string') return undefined
  const tally = new Tally()
  if (typeof instructions === 'string') {
    tally.add(MESSAGE)
    tally.text('system')
    tally.text(instructions)
  }
  if (typeof input === 'string') {
    tally.add(MESSAGE)
    tally.text('user')
    tally.text(input)
  } else for (const item of list(input)) if (isObject(item)) responsesItem(tally, item)
  tally.add(REPLY)
  const functions: JsonObject[] = []
  for (const tool of list(body.tools)) {
    if (!isObject(tool)) continue
    if (tool.type === 'function') functions.push(tool)
    else if (tool.type === 'custom') customTool(tally, tool)
  }
  functionDefinitions(tally, functions)
  return tally.tokens
}

function responsesItem(tally: Tally, item: JsonObject): void {
  switch (item.type) {
    case undefined:
    case 'message':
      tally.add(MESSAGE)
      tally.text(item.role)
      return parts(tally, item.content)
    case 'function_call':
    case 'custom_tool_call':
      tally.add(MESSAGE)
      tally.text(item.name)
      return tally.json(item.arguments ?? item.input)
    case 'function_call_output':
    case 'custom_tool_call_output':
      tally.add(MESSAGE)
      return parts(tally, item.output)
    default:
      // reasoning items of earlier turns are dropped; references and hosted tool calls are not in the body
      return
  }
}

/** Message content: a string, or parts of Chat (`text`, `image_url`, `file`) or Responses (`input_text`, …). */
function parts(tally: Tally, value: unknown): void {
  if (typeof value === 'string') return tally.text(value)
  for (const part of list(value)) {
    if (!isObject(part)) continue
    switch (part.type) {
      case 'image_url':
      case 'input_image': {
        const detail = isObject(part.image_url) ? part.image_url.detail : part.detail
        tally.add(detail === 'low' ? MEDIA.openaiImageLow : MEDIA.openaiImage)
        break
      }
      case 'file':
      case 'input_file':
        tally.add(MEDIA.openaiFile)
        break
      case 'refusal':
        tally.text(part.refusal)
        break
      default:
        tally.text(part.text)
    }
  }
}

function customTool(tally: Tally, tool: JsonObject): void {
  tally.text(tool.name)
  tally.text(tool.description)
  tally.json(tool.format)
}

function functionDefinitions(tally: Tally, functions: readonly JsonObject[]): void {
  if (functions.length === 0) return
  for (const fn of functions) {
    tally.add(FUNCTION)
    tally.text(`${string(fn.name)}:${withoutPeriod(string(fn.description))}`)
    properties(tally, fn.parameters, 0)
  }
  tally.add(FUNCTIONS_END)
}

function properties(tally: Tally, schema: unknown, depth: number): void {
  if (!isObject(schema) || !isObject(schema.properties)) return
  const props = Object.entries(schema.properties)
  if (props.length === 0) return
  tally.add(PROPERTIES)
  for (const [key, value] of props) {
    const prop = isObject(value) ? value : {}
    tally.add(PROPERTY)
    if (Array.isArray(prop.enum)) {
      tally.add(ENUM)
      for (const item of prop.enum) {
        tally.add(ENUM_VALUE)
        tally.json(item)
      }
    }
    tally.text(`${key}:${typeName(prop.type)}:${withoutPeriod(string(prop.description))}`)
    if (depth >= MAX_DEPTH) {
      tally.json(prop.properties)
      tally.json(prop.items)
      continue
    }
    properties(tally, prop, depth + 1)
    properties(tally, prop.items, depth + 1)
  }
}

function string(value: unknown): string {
  return typeof value === 'string' ? value : ''
}

function withoutPeriod(text: string): string {
  return text.endsWith('.') ? text.slice(0, -1) : text
}

function typeName(type: unknown): string {
  if (typeof type === 'string') return type
  if (Array.isArray(type)) return type.filter((t) => typeof t === 'string').join(' | ')
  return ''
}
