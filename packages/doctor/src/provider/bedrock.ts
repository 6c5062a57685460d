/**
 * Bedrock InvokeModelWithResponseStream bodies for an Anthropic model (docs/dialects/bedrock-invoke.md):
 * one AWS event stream `chunk` message per Anthropic event, and on the last (`message_stop`) AWS's own
 * counts, `amazon-bedrock-invocationMetrics`. InvokeModel answers with the Anthropic message as JSON.
 */
import { anthropicEvents, type AnthropicBody } from './anthropic.js'
import { chunkMessage } from './eventstream.js'
import { idFragment } from './sse.js'
import type { RequestContext, TrueUsage } from './types.js'

export interface BedrockBody extends AnthropicBody {
  /** `amazon-bedrock-invocationMetrics` on the last chunk. */
  metrics: Record<string, unknown>
}

/** The metrics as AWS writes them: input excludes cache, the cache counts present when caching applied. */
export function invocationMetrics(truth: TrueUsage): Record<string, unknown> {
  return {
    inputTokenCount: truth.input,
    outputTokenCount: truth.output,
    invocationLatency: 2210,
    firstByteLatency: 640,
    cacheReadInputTokenCount: truth.cacheRead,
    cacheWriteInputTokenCount: truth.cacheWrite,
  }
}

export function bedrockStream(ctx: RequestContext, body: BedrockBody): Uint8Array[] {
  const events = anthropicEvents(ctx, body)
  const last = events.length - 1
  events[last] = { ...events[last], 'amazon-bedrock-invocationMetrics': body.metrics }
  // `p` pads each payload to a length that says nothing about the text; deterministic here.
  return events.map((event, i) => chunkMessage(event, idFragment(ctx.seq + i, 4 + ((ctx.seq + i * 7) % 29))))
}
