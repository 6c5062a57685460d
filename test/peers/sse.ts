/**
 * What a client of a peer reads, event by event, with eventsource-parser: for the answers a test must see as
 * they came, where an SDK's stream helper throws before it can show them or keeps only its totals.
 */
import { createParser } from 'eventsource-parser'

export interface SseEvent {
  event: string
  data: any
}

export interface SseAnswer {
  status: number
  contentType: string | null
  events: SseEvent[]
}

/** A parser that adds each event to `events`. */
function collect(events: SseEvent[]) {
  return createParser({
    onEvent: (event) => {
      // A data line that is not JSON fails the test here ([DONE] aside): the answer must stay valid SSE.
      if (event.data !== '[DONE]') events.push({ event: event.event ?? '', data: JSON.parse(event.data) })
    },
  })
}

/** POSTs `body` as JSON and reads the SSE answer, every event as it came. */
export async function postSse(url: string, headers: Record<string, string>, body: unknown): Promise<SseAnswer> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  const events: SseEvent[] = []
  const parser = collect(events)
  const decoder = new TextDecoder()
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    parser.feed(decoder.decode(chunk, { stream: true }))
  }
  return { status: response.status, contentType: response.headers.get('content-type'), events }
}

/** The events of an SSE body read whole. */
export function parseSse(body: string): SseEvent[] {
  const events: SseEvent[] = []
  collect(events).feed(body)
  return events
}

/** The text of an Anthropic stream's `content_block_delta` events. */
export const textOf = (events: SseEvent[]): string =>
  events
    .filter((e) => e.event === 'content_block_delta')
    .map((e) => e.data.delta?.text ?? '')
    .join('')

/** The headers an Anthropic client sends, `key` as its `x-api-key`. */
export const anthropicHeaders = (key: string): Record<string, string> => ({
  'x-api-key': key,
  'anthropic-version': '2023-06-01',
})
