/** Small raw event lists for the reader and rule tests: SSE text built the way providers write it. */
import { parseSse, type WireEvent } from '@usagewire/doctor'

type Event = { event?: string | null; data: unknown }

/** SSE text of `events`: an `event:` line unless `event` is null, one `data:` line, a blank line. */
export function sseText(events: Event[]): string {
  return events
    .map(({ event, data }) => {
      const payload = typeof data === 'string' ? data : JSON.stringify(data)
      const name = event === null ? undefined : (event ?? (data as { type?: string }).type)
      return (name === undefined ? '' : `event: ${name}\n`) + `data: ${payload}\n\n`
    })
    .join('')
}

export const sse = (events: Event[]): WireEvent[] => parseSse(sseText(events))

/** Anthropic events named after their `type`. */
export const start = (usage: object) => ({
  data: {
    type: 'message_start',
    message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'm', content: [], usage },
  },
})
export const block = { data: { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } } }
export const text = (t: string) => ({
  data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } },
})
export const blockStop = { data: { type: 'content_block_stop', index: 0 } }
export const delta = (usage: object) => ({
  data: { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage },
})
export const stop = { data: { type: 'message_stop' } }
export const ping = { event: 'ping', data: { type: 'ping' } }

/** A whole Anthropic stream around the given start and delta usages. */
export const anthropic = (startUsage: object, ...deltaUsages: object[]) =>
  sse([start(startUsage), block, ping, text('Hello'), text(' there.'), blockStop, ...deltaUsages.map(delta), stop])

/** Chat chunks: data-only, `[DONE]` last. */
export const chunk = (choices: unknown[], usage?: unknown) => ({
  event: null,
  data: { id: 'c1', object: 'chat.completion.chunk', choices, ...(usage !== undefined && { usage }) },
})
export const choice = (delta: object, finish: string | null = null) => ({ index: 0, delta, finish_reason: finish })
export const done = { event: null, data: '[DONE]' }

/** Responses events named after their `type`. */
export const response = (type: string, usage: unknown) => ({
  data: {
    type,
    sequence_number: 0,
    response: { id: 'resp_1', object: 'response', status: 'completed', output: [], usage },
  },
})
export const textDelta = { data: { type: 'response.output_text.delta', sequence_number: 1, delta: 'Hi' } }
