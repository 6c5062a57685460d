/**
 * Bedrock Converse and ConverseStream bodies (docs/dialects/bedrock-converse.md): AWS's model-neutral
 * answer, usage as a `TokenUsage` whose `inputTokens` excludes the cache and whose `cacheDetails` split the
 * cache writes by TTL. The stream is one AWS event stream message per member of the `ConverseStreamOutput`
 * union, usage only on `metadata`, after `messageStop`.
 */
import { eventMessage } from './eventstream.js'
import { idFragment, textDeltas } from './sse.js'
import type { RequestContext, TrueUsage } from './types.js'

/** Bedrock's `TokenUsage`: disjoint input, a total counting every bucket, the TTL split when there is one. */
export function tokenUsage(truth: TrueUsage): Record<string, unknown> {
  const details = [
    ...(truth.cacheWrite5m ? [{ ttl: '5m', inputTokens: truth.cacheWrite5m }] : []),
    ...(truth.cacheWrite1h ? [{ ttl: '1h', inputTokens: truth.cacheWrite1h }] : []),
  ]
  return {
    inputTokens: truth.input,
    outputTokens: truth.output,
    totalTokens: truth.input + truth.cacheRead + truth.cacheWrite + truth.output,
    cacheReadInputTokens: truth.cacheRead,
    cacheWriteInputTokens: truth.cacheWrite,
    ...(details.length > 0 && { cacheDetails: details }),
  }
}

export interface ConverseBody {
  text: string
  usage: Record<string, unknown>
  /** Reasoning text before the answer (`reasoningContent`). */
  reasoning?: string
  /** A tool use after the text; the answer then stops for `tool_use`. */
  toolUse?: { toolUseId: string; name: string; input: Record<string, unknown> }
}

const SIGNATURE = 'converseDoctorSignature'

export function converseBody(_ctx: RequestContext, body: ConverseBody): unknown {
  const content: unknown[] = []
  if (body.reasoning !== undefined)
    content.push({ reasoningContent: { reasoningText: { text: body.reasoning, signature: SIGNATURE } } })
  content.push({ text: body.text })
  if (body.toolUse) content.push({ toolUse: body.toolUse })
  return {
    output: { message: { role: 'assistant', content } },
    stopReason: body.toolUse ? 'tool_use' : 'end_turn',
    usage: body.usage,
    metrics: { latencyMs: 412 },
  }
}

export function converseStream(ctx: RequestContext, body: ConverseBody): Uint8Array[] {
  let n = 0
  // `p` pads each payload against length side channels; deterministic here.
  const event = (type: string, payload: object) => {
    const padding = idFragment(ctx.seq + n, 4 + ((ctx.seq + n * 7) % 29))
    n++
    return eventMessage(type, payload, padding)
  }
  const frames = [event('messageStart', { role: 'assistant' })]
  let index = 0
  if (body.reasoning !== undefined) {
    for (const text of textDeltas(body.reasoning))
      frames.push(event('contentBlockDelta', { contentBlockIndex: index, delta: { reasoningContent: { text } } }))
    frames.push(
      event('contentBlockDelta', { contentBlockIndex: index, delta: { reasoningContent: { signature: SIGNATURE } } }),
      event('contentBlockStop', { contentBlockIndex: index }),
    )
    index++
  }
  for (const text of textDeltas(body.text))
    frames.push(event('contentBlockDelta', { contentBlockIndex: index, delta: { text } }))
  frames.push(event('contentBlockStop', { contentBlockIndex: index }))
  if (body.toolUse) {
    index++
    const { toolUseId, name, input } = body.toolUse
    const json = JSON.stringify(input)
    frames.push(event('contentBlockStart', { contentBlockIndex: index, start: { toolUse: { toolUseId, name } } }))
    for (let at = 0; at < json.length; at += 12)
      frames.push(
        event('contentBlockDelta', {
          contentBlockIndex: index,
          delta: { toolUse: { input: json.slice(at, at + 12) } },
        }),
      )
    frames.push(event('contentBlockStop', { contentBlockIndex: index }))
  }
  frames.push(
    event('messageStop', { stopReason: body.toolUse ? 'tool_use' : 'end_turn' }),
    event('metadata', { usage: body.usage, metrics: { latencyMs: 412 } }),
  )
  return frames
}
