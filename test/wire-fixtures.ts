/**
 * Response bodies as the providers write them, for the integration tests and the conformance matrix:
 * SSE events, Anthropic Messages, OpenAI Chat and Responses streams and bodies, and the headers they go with.
 */

export const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' } as const
export const JSON_HEADERS = { 'content-type': 'application/json' } as const

/** One named SSE event (Anthropic, OpenAI Responses). */
export const sseEvent = (name: string, data: unknown): string => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`

/** One data-only SSE event (OpenAI Chat Completions). */
export const sseData = (data: unknown): string => `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`

export const ANTHROPIC_MODEL = 'claude-sonnet-4-6'
export const CHAT_MODEL = 'gpt-4o-2024-08-06'
export const RESPONSES_MODEL = 'gpt-5-2025-08-07'

export interface AnthropicStreamSpec {
  model?: string
  /** `message_start.message.usage` */
  start: Record<string, unknown>
  /** `message_delta.usage` */
  delta: Record<string, unknown>
  /** Text deltas of the single text block. */
  texts?: string[]
}

/** The events of one Anthropic Messages stream, each as its own string (so each can be its own write). */
export function anthropicStream({
  model = ANTHROPIC_MODEL,
  start,
  delta,
  texts = ['Hello', ', wörld ✓'],
}: AnthropicStreamSpec): string[] {
  return [
    sseEvent('message_start', {
      type: 'message_start',
      message: {
        id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: start,
      },
    }),
    sseEvent('content_block_start', {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'text', text: '' },
    }),
    sseEvent('ping', { type: 'ping' }),
    ...texts.map((text) =>
      sseEvent('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }),
    ),
    sseEvent('content_block_stop', { type: 'content_block_stop', index: 0 }),
    sseEvent('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: delta,
    }),
    sseEvent('message_stop', { type: 'message_stop' }),
  ]
}

/** A non-streaming Anthropic Messages body. */
export function anthropicMessage(
  usage: Record<string, unknown>,
  text = 'Héllo ✓',
  model = ANTHROPIC_MODEL,
): Record<string, unknown> {
  return {
    id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
    type: 'message',
    role: 'assistant',
    model,
    content: [{ type: 'text', text }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage,
  }
}

/** An OpenAI chat stream ending with a usage-only chunk (`choices: []`) and `[DONE]`. */
export function chatStream(usage: Record<string, unknown>, texts = ['Hel', 'lo ✓'], model = CHAT_MODEL): string[] {
  const base = {
    id: 'chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG',
    object: 'chat.completion.chunk',
    created: 1741570283,
    model,
  }
  return [
    sseData({
      ...base,
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
      usage: null,
    }),
    ...texts.map((content) =>
      sseData({ ...base, choices: [{ index: 0, delta: { content }, finish_reason: null }], usage: null }),
    ),
    sseData({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: null }),
    sseData({ ...base, choices: [], usage }),
    sseData('[DONE]'),
  ]
}

/** A non-streaming chat completion body. */
export function chatCompletion(
  usage: Record<string, unknown>,
  content = 'Héllo ✓',
  model = CHAT_MODEL,
): Record<string, unknown> {
  return {
    id: 'chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG',
    object: 'chat.completion',
    created: 1741570283,
    model,
    choices: [
      { index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' },
    ],
    usage,
  }
}

const RESPONSE_ID = 'resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b'
const RESPONSE_ITEM = {
  id: 'msg_67ccd2bf17f0819081ff3bb2cf6508e6',
  type: 'message',
  status: 'in_progress',
  role: 'assistant',
  content: [] as unknown[],
}

function responseObject(
  status: string,
  extra: Record<string, unknown>,
  model = RESPONSES_MODEL,
): Record<string, unknown> {
  return {
    id: RESPONSE_ID,
    object: 'response',
    created_at: 1741476542,
    status,
    model,
    output: [],
    usage: null,
    ...extra,
  }
}

/** An OpenAI Responses stream ending in `response.completed` with `usage`. */
export function responsesStream(usage: Record<string, unknown>, text = 'Hello ✓', model = RESPONSES_MODEL): string[] {
  const item = RESPONSE_ITEM
  const part = { type: 'output_text', text: '', annotations: [] }
  let seq = 0
  const ev = (type: string, data: Record<string, unknown>) => sseEvent(type, { type, sequence_number: seq++, ...data })
  const done = { ...item, status: 'completed', content: [{ ...part, text }] }
  return [
    ev('response.created', { response: responseObject('in_progress', {}, model) }),
    ev('response.in_progress', { response: responseObject('in_progress', {}, model) }),
    ev('response.output_item.added', { output_index: 0, item }),
    ev('response.content_part.added', { item_id: item.id, output_index: 0, content_index: 0, part }),
    ev('response.output_text.delta', { item_id: item.id, output_index: 0, content_index: 0, delta: text }),
    ev('response.output_text.done', { item_id: item.id, output_index: 0, content_index: 0, text }),
    ev('response.content_part.done', { item_id: item.id, output_index: 0, content_index: 0, part: { ...part, text } }),
    ev('response.output_item.done', { output_index: 0, item: done }),
    ev('response.completed', { response: responseObject('completed', { output: [done], usage }, model) }),
  ]
}

/** A non-streaming Responses body. */
export function responsesBody(usage: Record<string, unknown>, text = 'Héllo ✓'): Record<string, unknown> {
  const output = [{ ...RESPONSE_ITEM, status: 'completed', content: [{ type: 'output_text', text, annotations: [] }] }]
  return responseObject('completed', { output, usage })
}

/** Cuts an SSE body into `{ name, data }` events (enough for the bodies these tests produce). */
export function parseSse(text: string): Array<{ name: string | undefined; data: string }> {
  return text
    .split(/\r?\n\r?\n/)
    .filter((block) => block.trim() !== '')
    .map((block) => {
      let name: string | undefined
      const data: string[] = []
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith('event:')) name = line.slice(6).trim()
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
      }
      return { name, data: data.join('\n') }
    })
}
