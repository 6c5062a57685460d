/**
 * OpenAI Responses bodies (docs/dialects/openai-responses.md): the `response` object, and the
 * named-event SSE stream response.created → response.in_progress → output items and text deltas →
 * response.completed, every event with a monotonically increasing `sequence_number`. Usage is
 * `null` until the terminal event (docs/dialects/openai-responses.md#where-usage-rides).
 */
import { hexFragment, idFragment, sseEvent, textDeltas } from './sse.js'
import type { RequestContext, TrueUsage } from './types.js'

export const RESPONSES_MODEL = 'gpt-5-mini-2025-08-07'

export type ResponsesUsage = Record<string, unknown>

/** OpenAI's own usage: `input_tokens` includes cached tokens, `output_tokens` includes reasoning. */
export function responsesUsage(truth: TrueUsage): ResponsesUsage {
  const input = truth.input + truth.cacheRead + truth.cacheWrite
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: truth.cacheRead },
    output_tokens: truth.output,
    output_tokens_details: { reasoning_tokens: truth.reasoning },
    total_tokens: input + truth.output,
  }
}

export interface ResponsesBody {
  text: string
  usage: ResponsesUsage
  /** Emit a reasoning output item before the message (reasoning models do). */
  reasoningItem?: boolean
  /** The model the answer names; default RESPONSES_MODEL. */
  model?: string
  /** A function call item after the message. */
  functionCall?: { callId: string; name: string; arguments: string }
}

/**
 * OpenAI's response and item ids are hex after their prefix (`resp_677efb5139a88190b512bc3fef8e535d`,
 * `msg_67ccd2bf17f0819081ff3bb2cf6508e6`); they share a suffix within one response.
 */
function ids(ctx: RequestContext) {
  // One run of hex per response: each id its own 32 digits of it, all of them the same last 16.
  const hex = hexFragment(ctx.seq, 144)
  const suffix = hex.slice(128)
  return {
    response: `resp_${hex.slice(0, 32)}${suffix}`,
    reasoning: `rs_${hex.slice(32, 64)}${suffix}`,
    message: `msg_${hex.slice(64, 96)}${suffix}`,
    call: `fc_${hex.slice(96, 128)}${suffix}`,
  }
}

function responseObject(
  ctx: RequestContext,
  status: string,
  output: unknown[],
  usage: ResponsesUsage | null,
  model = RESPONSES_MODEL,
) {
  return {
    id: ids(ctx).response,
    object: 'response',
    created_at: ctx.created,
    status,
    background: false,
    error: null,
    incomplete_details: null,
    instructions: null,
    max_output_tokens: null,
    model,
    output,
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: 'medium', summary: null },
    service_tier: 'default',
    store: true,
    temperature: 1,
    text: { format: { type: 'text' }, verbosity: 'medium' },
    tool_choice: 'auto',
    tools: [],
    top_p: 1,
    truncation: 'disabled',
    usage,
    user: null,
    metadata: {},
  }
}

function outputItems(ctx: RequestContext, body: ResponsesBody) {
  const id = ids(ctx)
  const part = { type: 'output_text', annotations: [], logprobs: [], text: body.text }
  const message = { id: id.message, type: 'message', status: 'completed', content: [part], role: 'assistant' }
  const reasoning = { id: id.reasoning, type: 'reasoning', summary: [] }
  const call = body.functionCall && {
    id: id.call,
    type: 'function_call',
    status: 'completed',
    arguments: body.functionCall.arguments,
    call_id: body.functionCall.callId,
    name: body.functionCall.name,
  }
  const all: unknown[] = body.reasoningItem ? [reasoning, message] : [message]
  if (call) all.push(call)
  return { message, reasoning, call, part, all }
}

export function responsesBody(ctx: RequestContext, body: ResponsesBody): unknown {
  return responseObject(ctx, 'completed', outputItems(ctx, body).all, body.usage, body.model)
}

export function responsesStream(ctx: RequestContext, body: ResponsesBody): string[] {
  const items = outputItems(ctx, body)
  let seq = 0
  const event = (type: string, fields: Record<string, unknown>) =>
    sseEvent({ type, sequence_number: seq++, ...fields }, type)

  const events = [
    event('response.created', { response: responseObject(ctx, 'in_progress', [], null, body.model) }),
    event('response.in_progress', { response: responseObject(ctx, 'in_progress', [], null, body.model) }),
  ]
  let outputIndex = 0
  if (body.reasoningItem) {
    events.push(event('response.output_item.added', { output_index: outputIndex, item: items.reasoning }))
    events.push(event('response.output_item.done', { output_index: outputIndex, item: items.reasoning }))
    outputIndex++
  }
  const itemId = items.message.id
  const where = { item_id: itemId, output_index: outputIndex, content_index: 0 }
  events.push(
    event('response.output_item.added', {
      output_index: outputIndex,
      item: { ...items.message, status: 'in_progress', content: [] },
    }),
    event('response.content_part.added', { ...where, part: { ...items.part, text: '' } }),
  )
  textDeltas(body.text).forEach((delta, i) => {
    const obfuscation = ctx.includeObfuscation ? { obfuscation: idFragment(ctx.seq * 1000 + i, 3 + (i % 9)) } : {}
    events.push(event('response.output_text.delta', { ...where, delta, logprobs: [], ...obfuscation }))
  })
  events.push(
    event('response.output_text.done', { ...where, text: body.text, logprobs: [] }),
    event('response.content_part.done', { ...where, part: items.part }),
    event('response.output_item.done', { output_index: outputIndex, item: items.message }),
  )
  if (items.call) {
    const index = outputIndex + 1
    const callWhere = { item_id: items.call.id, output_index: index }
    events.push(
      event('response.output_item.added', {
        output_index: index,
        item: { ...items.call, status: 'in_progress', arguments: '' },
      }),
    )
    for (let at = 0; at < items.call.arguments.length; at += 12) {
      events.push(
        event('response.function_call_arguments.delta', {
          ...callWhere,
          delta: items.call.arguments.slice(at, at + 12),
        }),
      )
    }
    events.push(
      event('response.function_call_arguments.done', { ...callWhere, arguments: items.call.arguments }),
      event('response.output_item.done', { output_index: index, item: items.call }),
    )
  }
  events.push(
    event('response.completed', { response: responseObject(ctx, 'completed', items.all, body.usage, body.model) }),
  )
  return events
}
