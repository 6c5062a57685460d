/**
 * The raw bytes a client received, cut into what its SDK sees: SSE events (docs/transport.md#sse-framing)
 * or one JSON body. Pure functions, so every reader rule can be checked on small event lists.
 */

/** One SSE event as a reader sees it: its `event:` name (null without one), its data, the data as JSON. */
export interface WireEvent {
  event: string | null
  data: string
  /** The data parsed, when it is JSON; `undefined` otherwise (`[DONE]`, malformed). */
  json?: unknown
}

/**
 * Cuts an SSE body into events the way the SDKs' line decoders do: `\n`, `\r\n` or `\r` line ends, a blank
 * line ends an event, `data:` lines joined with `\n`, comments (`:`) skipped, one space after the colon
 * dropped. An event still open at the end is kept (a stream cut before its blank line).
 */
export function parseSse(text: string): WireEvent[] {
  const events: WireEvent[] = []
  let name: string | null = null
  let data: string[] = []
  let any = false
  const flush = () => {
    if (any && (data.length > 0 || name !== null)) {
      const joined = data.join('\n')
      const event: WireEvent = { event: name, data: joined }
      try {
        event.json = JSON.parse(joined)
      } catch {
        // Not JSON: `[DONE]`, or a malformed event a reader must decide about.
      }
      events.push(event)
    }
    name = null
    data = []
    any = false
  }
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '') {
      flush()
      continue
    }
    if (line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') {
      name = value
      any = true
    } else if (field === 'data') {
      data.push(value)
      any = true
    }
  }
  flush()
  return events
}

/** A JSON body, or `undefined` when it is not one. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

export type Json = Record<string, unknown>

export const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** A non-negative count, or undefined when the field says nothing (absent, null, not a number). */
export function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined
}

/** `object.a.b…`, or undefined as soon as a step is not an object. */
export function at(object: unknown, ...path: string[]): unknown {
  let value = object
  for (const key of path) {
    if (!isObject(value)) return undefined
    value = value[key]
  }
  return value
}
