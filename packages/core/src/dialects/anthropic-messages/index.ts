import { isObject, type Usage } from '../../usage.js'
import { AnyOf, member, needles } from '../bytes.js'
import type { DialectReader, DialectSpec, EventReading, JsonObject, TextSink, UsageBlock, WireEvent } from '../types.js'
import { fromAnthropicUsage, ServerToolCounts, writeAnthropicUsage } from './usage.js'
import { Buffer } from '../../buffer.js'

const USAGE_EVENTS = ['message_start', 'message_delta', 'error'].map((name) => Buffer.from(name))
const START_PATH = ['message', 'usage'] as const
const DELTA_PATH = ['usage'] as const
// The same path as a delta's, a different array: `write` tells a whole body (which carries the TTL split)
// from a `message_delta` (which never does) by it.
const BODY_PATH = ['usage'] as const

/**
 * Anthropic Messages (docs/dialects/anthropic-messages.md). Usage rides on `message_start.message.usage`
 * and on every `message_delta.usage`; both are cumulative snapshots of the whole message. The rewrite
 * writes the best values known into each of them, so the last `message_delta` carries the complete
 * totals every SDK version accumulates correctly, and never writes a value that is not known.
 */
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined)

export const anthropicMessages = {
  id: 'anthropic-messages' as const,
  // Vertex AI serves the same wire on `…/publishers/anthropic/models/{m}:streamRawPredict` and `:rawPredict`
  // (docs/dialects/anthropic-messages.md#vertex-ai); a body of another dialect there is recognised as such.
  routes: ['/v1/messages', ':streamRawPredict', ':rawPredict'],
  usageEvents: USAGE_EVENTS,
  // Every event the reader reads is a `message_start` or `message_delta` (both contain `ge_`, named or
  // not) or an `error` (`rror`). A `"usage"` key elsewhere is never read, so it is not searched for: a
  // search for `ge"` as well would stop at every `ge` of the text.
  quick: needles('ge_', 'rror'),
  recognizeEvent(name, json) {
    const kind = name ?? (isObject(json) ? json.type : undefined)
    return kind === 'message_start' || kind === 'ping' || kind === 'content_block_start'
  },
  recognizeBody: (json) => json.type === 'message',
  text: anthropicText,
  textKeys: new Set(['text', 'partial_json', 'thinking']),
  reader: (): DialectReader => new AnthropicReader(),
} satisfies DialectSpec

/** The text of a `content_block_delta`, or of a whole message's content blocks; thinking is reasoning. */
export function anthropicText(json: JsonObject, into: TextSink): void {
  if (json.type === 'content_block_delta' && isObject(json.delta)) {
    const { text, partial_json, thinking } = json.delta
    const answer = str(text) ?? str(partial_json)
    if (answer !== undefined) into.add(answer)
    else if (typeof thinking === 'string') into.add(thinking, true)
    return
  }
  if (json.type !== 'message' || !Array.isArray(json.content)) return
  for (const block of json.content) {
    if (!isObject(block)) continue
    if (typeof block.text === 'string') into.add(block.text)
    else if (typeof block.thinking === 'string') into.add(block.thinking, true)
    else if (block.type === 'tool_use' && block.input !== undefined) into.add(JSON.stringify(block.input))
  }
}

/** Some translators send Anthropic events without `event:` lines: those are read when they mention usage. */
const UNNAMED = [member('usage', '{'), member('error')]

const LARGE_PATHS = [['type'], ['usage'], ['delta', 'stop_reason'], ['message', 'usage'], ['message', 'model']]

// One reader per response: what most responses never use is made when first needed.
class AnthropicReader implements DialectReader {
  private unnamed: AnyOf | undefined // only a stream without `event:` lines is tested byte by byte
  private readonly serverTools = new ServerToolCounts()
  readonly largePaths = LARGE_PATHS

  mayCarry(buf: Buffer, start: number, end: number): boolean {
    return (this.unnamed ??= new AnyOf(UNNAMED)).test(buf, start, end)
  }

  read(event: WireEvent): EventReading | undefined {
    const { json } = event
    switch (json.type) {
      case 'message_start': {
        const message = isObject(json.message) ? json.message : {}
        return {
          where: 'message_start',
          start: true,
          model: typeof message.model === 'string' ? message.model : undefined,
          usage: this.block(message.usage, 'message_start.message.usage', START_PATH),
        }
      }
      case 'message_delta': {
        // Several deltas may come (server tools); the one with a stop reason ends the message, so a
        // stream cut before it has partial usage only (docs/peer-bugs.md rows 27, 43).
        const stopped = isObject(json.delta) && json.delta.stop_reason != null
        return {
          where: 'message_delta',
          final: stopped,
          ended: stopped,
          usage: this.block(json.usage, 'message_delta.usage', DELTA_PATH),
        }
      }
      case 'error':
        return { where: 'error', error: errorOf(json) }
      default:
        return undefined
    }
  }

  readBody(json: JsonObject): EventReading | undefined {
    if (json.type === 'error') return { where: 'body', error: errorOf(json) }
    const usage = this.block(json.usage, 'body.usage', BODY_PATH)
    return {
      where: 'body',
      model: typeof json.model === 'string' ? json.model : undefined,
      final: usage !== undefined,
      ended: true,
      usage,
    }
  }

  write(native: JsonObject, usage: Usage, path: readonly string[]): JsonObject {
    return this.serverTools.restore(writeAnthropicUsage(native, usage, path !== DELTA_PATH))
  }

  private block(native: unknown, at: string, path: readonly string[]): UsageBlock | undefined {
    if (!isObject(native)) return undefined
    this.serverTools.observe(native)
    const { usage, sources } = fromAnthropicUsage(native, at)
    return { path, native, usage, sources }
  }
}

function errorOf(json: JsonObject): string {
  const detail = isObject(json.error) ? json.error : {}
  return String(detail.type ?? detail.message ?? 'error')
}
