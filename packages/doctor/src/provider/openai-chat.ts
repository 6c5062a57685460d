/**
 * OpenAI Chat Completions bodies (docs/dialects/openai-chat.md): `chat.completion` JSON, and the
 * data-only SSE stream of `chat.completion.chunk`s ending in `data: [DONE]`. With
 * `stream_options.include_usage`, every chunk carries `"usage": null` and one extra chunk with
 * `choices: []` carries the usage (docs/dialects/openai-chat.md#where-usage-rides); every chunk
 * carries `obfuscation` padding unless the client turned it off (docs/transport.md#sse-framing).
 */
import { idFragment, sseEvent, textDeltas } from './sse.js'
import type { RequestContext, TrueUsage } from './types.js'

export const CHAT_MODEL = 'gpt-4.1-2025-04-14'

export type ChatUsage = Record<string, unknown>

/** OpenAI's own usage: `prompt_tokens` includes cached tokens, `completion_tokens` includes reasoning. */
export function chatUsage(truth: TrueUsage): ChatUsage {
  const prompt = truth.input + truth.cacheRead + truth.cacheWrite
  return {
    prompt_tokens: prompt,
    completion_tokens: truth.output,
    total_tokens: prompt + truth.output,
    prompt_tokens_details: { cached_tokens: truth.cacheRead, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: truth.reasoning,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  }
}

export interface ChatBody {
  text: string
  usage: ChatUsage
  /**
   * Where the stream carries the usage:
   * - `usage-chunk`: OpenAI's extra `choices: []` chunk, only when the client asked for it;
   * - `finish-chunk`: on the chunk with `finish_reason`, always (DeepSeek, Mistral, some translators).
   */
  usageOn?: 'usage-chunk' | 'finish-chunk'
  /** The model the answer names; default CHAT_MODEL. */
  model?: string
  /** A function call after the text; the choice then finishes with `tool_calls`. */
  toolCall?: { id: string; name: string; arguments: string }
}

function completionId(ctx: RequestContext): string {
  return `chatcmpl-${idFragment(ctx.seq, 29)}`
}

const FINGERPRINT = 'fp_b3f1157249'

const toolCalls = (call: NonNullable<ChatBody['toolCall']>) => [
  { id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } },
]

export function chatCompletion(ctx: RequestContext, body: ChatBody): unknown {
  return {
    id: completionId(ctx),
    object: 'chat.completion',
    created: ctx.created,
    model: body.model ?? CHAT_MODEL,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: body.text,
          ...(body.toolCall && { tool_calls: toolCalls(body.toolCall) }),
          refusal: null,
          annotations: [],
        },
        logprobs: null,
        finish_reason: body.toolCall ? 'tool_calls' : 'stop',
      },
    ],
    usage: body.usage,
    service_tier: 'default',
    system_fingerprint: FINGERPRINT,
  }
}

export function chatStream(ctx: RequestContext, body: ChatBody): string[] {
  const usageOn = body.usageOn ?? 'usage-chunk'
  const usageKey = ctx.includeUsage || usageOn === 'finish-chunk'
  let n = 0
  const chunk = (choices: unknown[], usage: ChatUsage | null): string => {
    const data: Record<string, unknown> = {
      id: completionId(ctx),
      object: 'chat.completion.chunk',
      created: ctx.created,
      model: body.model ?? CHAT_MODEL,
      service_tier: 'default',
      system_fingerprint: FINGERPRINT,
      choices,
    }
    if (usageKey) data.usage = usage
    // Random-length padding against length side channels; deterministic here.
    if (ctx.includeObfuscation) data.obfuscation = idFragment(ctx.seq * 1000 + n, 2 + ((ctx.seq + n * 7) % 12))
    n++
    return sseEvent(data)
  }
  const choice = (delta: unknown, finishReason: string | null) => ({
    index: 0,
    delta,
    logprobs: null,
    finish_reason: finishReason,
  })

  const events = [chunk([choice({ role: 'assistant', content: '', refusal: null }, null)], null)]
  for (const content of textDeltas(body.text)) events.push(chunk([choice({ content }, null)], null))
  if (body.toolCall) {
    const { id, name, arguments: args } = body.toolCall
    const call = { index: 0, id, type: 'function', function: { name, arguments: '' } }
    events.push(chunk([choice({ tool_calls: [call] }, null)], null))
    for (let at = 0; at < args.length; at += 12) {
      const part = { index: 0, function: { arguments: args.slice(at, at + 12) } }
      events.push(chunk([choice({ tool_calls: [part] }, null)], null))
    }
  }
  const finish = body.toolCall ? 'tool_calls' : 'stop'
  events.push(chunk([choice({}, finish)], usageOn === 'finish-chunk' ? body.usage : null))
  if (usageOn === 'usage-chunk' && ctx.includeUsage) events.push(chunk([], body.usage))
  events.push(sseEvent('[DONE]'))
  return events
}
