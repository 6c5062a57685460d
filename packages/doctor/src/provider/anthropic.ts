/**
 * Anthropic Messages bodies (docs/dialects/anthropic-messages.md): the non-streaming `Message`,
 * and the SSE sequence message_start → content_block_start → ping → content_block_delta… →
 * content_block_stop → message_delta → message_stop, with event names and payloads as the API
 * sends them.
 */
import { idFragment, sseEvent, textDeltas } from './sse.js'
import type { RequestContext, TrueUsage } from './types.js'

export const ANTHROPIC_MODEL = 'claude-sonnet-4-5-20250929'

/** A usage object as it appears in JSON; fields a translator omits are simply absent. */
export type AnthropicUsage = Record<string, unknown>

/** The full `Usage` of a non-streaming body or `message_start` (docs/dialects/anthropic-messages.md#fields). */
export function fullUsage(truth: TrueUsage, outputTokens = truth.output): AnthropicUsage {
  return {
    input_tokens: truth.input,
    cache_creation_input_tokens: truth.cacheWrite,
    cache_read_input_tokens: truth.cacheRead,
    cache_creation: {
      ephemeral_5m_input_tokens: truth.cacheWrite5m ?? truth.cacheWrite,
      ephemeral_1h_input_tokens: truth.cacheWrite1h ?? 0,
    },
    output_tokens: outputTokens,
    service_tier: 'standard',
  }
}

/**
 * `message_start` usage from the first-party API: complete input and cache counts, and an
 * output count that is only partial at this point ("often 1":
 * docs/dialects/anthropic-messages.md#where-usage-rides).
 */
export function startUsage(truth: TrueUsage): AnthropicUsage {
  return fullUsage(truth, 1)
}

/** First-party `message_delta` usage: cumulative whole-message totals, no TTL split, no tier. */
export function deltaUsage(truth: TrueUsage): AnthropicUsage {
  return {
    input_tokens: truth.input,
    cache_creation_input_tokens: truth.cacheWrite,
    cache_read_input_tokens: truth.cacheRead,
    output_tokens: truth.output,
  }
}

export interface AnthropicBody {
  text: string
  /** `message.usage` of `message_start` (streaming) or `usage` (non-streaming). */
  usage: AnthropicUsage
  /** The `usage` of each `message_delta`, in order; usually one. */
  deltaUsages?: AnthropicUsage[]
  /** The model the answer names; default ANTHROPIC_MODEL. */
  model?: string
  /** A thinking block before the text (extended thinking), with its signature. */
  thinking?: string
  /** A `tool_use` block after the text; the message then stops for `tool_use`. */
  toolUse?: { id: string; name: string; input: Record<string, unknown> }
}

function messageId(ctx: RequestContext): string {
  return `msg_01${idFragment(ctx.seq, 22)}`
}

const SIGNATURE = 'EqQBCkYIBxgCKkBdoctorSignature'

const stopReason = (body: AnthropicBody) => (body.toolUse ? 'tool_use' : 'end_turn')

export function anthropicMessage(ctx: RequestContext, body: AnthropicBody): unknown {
  const content: unknown[] = []
  if (body.thinking !== undefined) content.push({ type: 'thinking', thinking: body.thinking, signature: SIGNATURE })
  content.push({ type: 'text', text: body.text })
  if (body.toolUse) content.push({ type: 'tool_use', ...body.toolUse })
  return {
    id: messageId(ctx),
    type: 'message',
    role: 'assistant',
    model: body.model ?? ANTHROPIC_MODEL,
    content,
    stop_reason: stopReason(body),
    stop_sequence: null,
    usage: body.usage,
  }
}

/**
 * The streamed events as JSON, in order, without the `ping` only the first-party SSE stream has; the
 * same events Bedrock wraps in its `chunk` messages (bedrock.ts).
 */
export function anthropicEvents(ctx: RequestContext, body: AnthropicBody): Record<string, unknown>[] {
  const events: Record<string, unknown>[] = [
    {
      type: 'message_start',
      message: {
        id: messageId(ctx),
        type: 'message',
        role: 'assistant',
        model: body.model ?? ANTHROPIC_MODEL,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: body.usage,
      },
    },
  ]
  let index = 0
  if (body.thinking !== undefined) {
    events.push({
      type: 'content_block_start',
      index,
      content_block: { type: 'thinking', thinking: '', signature: '' },
    })
    for (const thinking of textDeltas(body.thinking)) {
      events.push({ type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking } })
    }
    events.push({ type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: SIGNATURE } })
    events.push({ type: 'content_block_stop', index })
    index++
  }
  events.push({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } })
  for (const text of textDeltas(body.text)) {
    events.push({ type: 'content_block_delta', index, delta: { type: 'text_delta', text } })
  }
  events.push({ type: 'content_block_stop', index })
  if (body.toolUse) {
    index++
    const { id, name, input } = body.toolUse
    events.push({ type: 'content_block_start', index, content_block: { type: 'tool_use', id, name, input: {} } })
    const json = JSON.stringify(input)
    for (let at = 0; at < json.length; at += 12) {
      events.push({
        type: 'content_block_delta',
        index,
        delta: { type: 'input_json_delta', partial_json: json.slice(at, at + 12) },
      })
    }
    events.push({ type: 'content_block_stop', index })
  }
  for (const usage of body.deltaUsages ?? []) {
    events.push({ type: 'message_delta', delta: { stop_reason: stopReason(body), stop_sequence: null }, usage })
  }
  events.push({ type: 'message_stop' })
  return events
}

export function anthropicStream(ctx: RequestContext, body: AnthropicBody): string[] {
  const events = anthropicEvents(ctx, body).map((event) => sseEvent(event, event.type as string))
  // After content_block_start; the API really sends this one with a space after the colon.
  events.splice(2, 0, sseEvent('{"type": "ping"}', 'ping'))
  return events
}
