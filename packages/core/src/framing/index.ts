import { EventStreamFramer } from './eventstream.js'
import { JsonArrayFramer } from './json-array.js'
import { JsonFramer } from './json.js'
import { NdjsonFramer } from './ndjson.js'
import { SseFramer } from './sse.js'
import type { Framer, FramingKind } from './types.js'

export type { DecodedEvent, EventSink, Framer, FramingKind, PayloadScanner } from './types.js'
export { firstBytes, NO_NAME } from './types.js'

/**
 * The one content-type rule: which framer reads a body of this type, or undefined when usagewire does
 * not read it (docs/transport.md#which-responses-are-read). `text/event-stream` is a stream of SSE events;
 * `application/vnd.amazon.eventstream` a stream of AWS event stream messages; `application/x-ndjson` (and
 * `application/ndjson`) a stream of JSON lines;
 * `application/json` and any `+json` type is one whole JSON body, or, with `jsonArray` (a route its
 * dialect streams that way), a JSON array whose elements are events.
 */
export function framingFor(contentType: string | undefined, jsonArray = false): FramingKind | undefined {
  if (!contentType) return undefined
  const semi = contentType.indexOf(';')
  const type = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
  if (type === 'text/event-stream') return 'sse'
  if (type === 'application/vnd.amazon.eventstream') return 'eventstream'
  if (type === 'application/x-ndjson' || type === 'application/ndjson') return 'ndjson'
  if (type === 'application/json' || type.endsWith('+json')) return jsonArray ? 'json-array' : 'json'
  return undefined
}

/** Framings whose body is a stream of events (a client reads it as it arrives). */
export const isStreaming = (kind: FramingKind): boolean => kind !== 'json'

export function createFramer(kind: FramingKind, maxEventBytes: number): Framer {
  if (kind === 'json-array') return new JsonArrayFramer(maxEventBytes)
  if (kind === 'eventstream') return new EventStreamFramer(maxEventBytes)
  if (kind === 'ndjson') return new NdjsonFramer(maxEventBytes)
  return kind === 'sse' ? new SseFramer(maxEventBytes) : new JsonFramer(maxEventBytes)
}
