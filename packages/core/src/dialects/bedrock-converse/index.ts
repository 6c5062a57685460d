import { isObject, type Usage } from '../../usage.js'
import type { DialectReader, DialectSpec, EventReading, JsonObject, UsageBlock, WireEvent } from '../types.js'
import { fromConverseUsage, modelIdOf, streamInputIncludesCache, toConverseUsage } from './usage.js'
import { Buffer } from '../../buffer.js'

const USAGE_PATH = ['usage'] as const

/** The members of the ConverseStreamOutput union that are events (docs/dialects/bedrock-converse.md#conversestream). */
const STREAM_EVENTS = new Set([
  'messageStart',
  'contentBlockStart',
  'contentBlockDelta',
  'contentBlockStop',
  'messageStop',
  'metadata',
])

/**
 * Bedrock Converse and ConverseStream (docs/dialects/bedrock-converse.md). ConverseStream is an AWS event
 * stream whose frames are named by `:event-type`; only the last one, `metadata`, carries usage, so it is
 * the only frame read: the others leave unparsed, as they came. Converse answers one JSON body with
 * `usage` at its top. The model is in the path (`/model/{modelId}/converse`), not in the body: the reader
 * takes it from there, for the record and for the one model family whose streamed input includes the
 * cache (docs/dialects/bedrock-converse.md#inclusive-input-override).
 */
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined)

export const bedrockConverse = {
  id: 'bedrock-converse' as const,
  routes: ['/converse-stream', '/converse'],
  usageEvents: [Buffer.from('metadata')],
  recognizeEvent: (name) => name !== undefined && STREAM_EVENTS.has(name),
  recognizeBody: (json) =>
    isObject(json.usage) && json.usage.inputTokens !== undefined && (isObject(json.output) || 'stopReason' in json),
  // `reasoningContent` is reasoning, streamed or whole.
  text(json, into) {
    const delta = isObject(json.delta) ? json.delta : undefined
    if (!delta) {
      // A whole Converse answer: `output.message.content` blocks.
      const message = isObject(json.output) && isObject(json.output.message) ? json.output.message : undefined
      if (!message || !Array.isArray(message.content)) return
      for (const block of message.content) {
        if (!isObject(block)) continue
        if (typeof block.text === 'string') into.add(block.text)
        else if (isObject(block.toolUse) && block.toolUse.input !== undefined)
          into.add(JSON.stringify(block.toolUse.input))
        else if (isObject(block.reasoningContent) && isObject(block.reasoningContent.reasoningText)) {
          const reasoning = str(block.reasoningContent.reasoningText.text)
          if (reasoning !== undefined) into.add(reasoning, true)
        }
      }
      return
    }
    if (typeof delta.text === 'string') into.add(delta.text)
    else if (isObject(delta.toolUse)) {
      const input = str(delta.toolUse.input)
      if (input !== undefined) into.add(input)
    } else if (isObject(delta.reasoningContent)) {
      const reasoning = str(delta.reasoningContent.text)
      if (reasoning !== undefined) into.add(reasoning, true)
    }
  },
  reader: (route?: string): DialectReader => new BedrockConverseReader(modelIdOf(route)),
} satisfies DialectSpec

class BedrockConverseReader implements DialectReader {
  constructor(private readonly model: string | undefined) {}

  mayCarry(): boolean {
    return false // every ConverseStream frame is named; an unnamed one is none of this dialect's
  }

  read(event: WireEvent): EventReading | undefined {
    if (event.name !== 'metadata') return undefined
    // `metadata` comes after `messageStop` and ends the stream; a stream cut before it has no usage.
    const usage = this.block(event.json.usage, 'metadata.usage', streamInputIncludesCache(this.model))
    return { where: 'metadata', model: this.model, final: usage !== undefined, ended: true, usage }
  }

  readBody(json: JsonObject): EventReading | undefined {
    const usage = this.block(json.usage, 'body.usage', false)
    return { where: 'body', model: this.model, final: usage !== undefined, ended: true, usage }
  }

  write(native: JsonObject, usage: Usage): JsonObject {
    return toConverseUsage(native, usage)
  }

  private block(native: unknown, at: string, inclusive: boolean): UsageBlock | undefined {
    if (!isObject(native)) return undefined
    const { usage, sources } = fromConverseUsage(native, at, inclusive)
    return { path: USAGE_PATH, native, usage, sources }
  }
}
