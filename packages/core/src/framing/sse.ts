/**
 * SSE framing that keeps every event's raw bytes.
 *
 * eventsource-parser hands out parsed fields, never the bytes of an event or where its `data:` value sits,
 * and usagewire must forward untouched events byte-for-byte and splice a rewritten usage block into the
 * one line that carries it. So events are cut here on blank-line boundaries in the byte stream (LF, CRLF
 * and CR line ends), and the field rules of the SSE spec are applied only to the events that may carry
 * usage (test/sse-oracle.test.ts checks this reading against eventsource-parser).
 */

const LF = 0x0a
const CR = 0x0d
const LFLF = Buffer.from('\n\n')

/** A callback that sees one complete event, `buf[start, end)`, and returns its replacement bytes, if any. */
export type EventVisitor = (buf: Buffer, start: number, end: number) => Uint8Array | undefined

export interface SseFramer {
  /** Cuts `chunk` into events; returns the bytes to send now (untouched chunks come back as the same Buffer). */
  push(chunk: Buffer, visit: EventVisitor): Buffer[]
  /** The stream ended: a last event without its blank line is still an event (PEERS.md §2 row 52). */
  end(visit: EventVisitor): Buffer[]
  /** Bytes held back because they are the start of an event not yet complete. */
  pending(): Buffer | undefined
  /** From now on hand back every byte as it comes (fail open); returns the bytes it was holding. */
  stop(): Buffer[]
  /** Set once the framer stopped: by `stop()`, or because an event grew past `maxEventBytes`. */
  readonly stopped: boolean
}

/** Index just past the blank line that ends the event starting at `start`, or -1 if it is not complete. */
export function findEventEnd(buf: Buffer, start: number, crMode: boolean): number {
  if (!crMode) {
    // Common case, no CR anywhere in the stream: a blank line is exactly "\n\n" (or "\n" at the very start).
    if (buf[start] === LF) return start + 1
    const at = buf.indexOf(LFLF, start)
    return at === -1 ? -1 : at + 2
  }
  let lineStart = start
  for (let i = start; i < buf.length; i++) {
    const b = buf[i]
    if (b !== LF && b !== CR) continue
    let next = i + 1
    if (b === CR) {
      if (next === buf.length && i !== lineStart) return -1 // a CR ending a line may still be half of a CRLF
      if (buf[next] === LF) next++
    }
    if (i === lineStart) return next // an empty line: the event ends here
    lineStart = next
    i = next - 1
  }
  return -1
}

/**
 * @param onOverflow told where (an index into the buffer being cut) an event grew past `maxEventBytes`;
 *   the framer has stopped by then.
 */
export function createSseFramer(maxEventBytes: number, onOverflow?: (start: number) => void): SseFramer {
  let carry: Buffer | undefined
  let crMode = false
  // A blank line that ended on a lone CR at the end of a chunk may be the CR of a CRLF: its LF, if it
  // comes, belongs to that terminator and is forwarded as it is.
  let skipLeadingLF = false

  let stopped = false
  const framer: SseFramer = {
    get stopped() {
      return stopped
    },
    stop() {
      stopped = true
      const held = carry ? [carry] : []
      carry = undefined
      return held
    },
    pending: () => carry,
    push(chunk, visit) {
      if (stopped) return [chunk]
      if (!crMode && chunk.indexOf(CR) !== -1) crMode = true
      const buf = carry ? Buffer.concat([carry, chunk]) : chunk
      carry = undefined
      const out: Buffer[] = []
      let start = 0
      if (skipLeadingLF) {
        skipLeadingLF = false
        if (buf[0] === LF) start = 1
      }
      let flushed = 0 // bytes before this index are already in `out`
      while (start < buf.length) {
        const end = findEventEnd(buf, start, crMode)
        if (end === -1) break
        const replacement = visit(buf, start, end)
        if (stopped) break
        if (replacement) {
          if (start > flushed) out.push(buf.subarray(flushed, start))
          out.push(Buffer.isBuffer(replacement) ? replacement : Buffer.from(replacement))
          flushed = end
        }
        start = end
        if (end === buf.length && buf[end - 1] === CR) skipLeadingLF = true
      }
      if (start < buf.length) {
        if (stopped || buf.length - start > maxEventBytes) {
          if (!stopped) {
            stopped = true
            onOverflow?.(start)
          }
          out.push(flushed === 0 ? buf : buf.subarray(flushed))
          return out
        }
        carry = Buffer.from(buf.subarray(start))
      }
      if (flushed === 0 && start === buf.length) out.push(buf)
      else if (start > flushed) out.push(buf.subarray(flushed, start))
      return out
    },
    end(visit) {
      const rest = carry
      carry = undefined
      if (!rest || stopped) return rest ? [rest] : []
      return [Buffer.from(visit(rest, 0, rest.length) ?? rest)]
    },
  }
  return framer
}

/** The fields of one event that usagewire reads, with where its `data:` value sits in the buffer. */
export interface SseEvent {
  /** The `event:` field, or undefined (the spec's default type, "message"). */
  name: string | undefined
  /** The data lines joined with "\n", as the spec defines. */
  data: string
  /** Byte range of the first `data:` value (after the optional space), for splicing. */
  dataStart: number
  dataEnd: number
  /** More than one `data:` line: a splice must rewrite them all. */
  multiline: boolean
  /** Byte range covering every data line (from the first to the end of the last, terminator excluded). */
  linesStart: number
  linesEnd: number
}

/** Reads `event:` and `data:` of the event at `buf[start, end)`; comments and other fields are skipped. */
export function parseEvent(buf: Buffer, start: number, end: number): SseEvent | undefined {
  let name: string | undefined
  const data: string[] = []
  let dataStart = -1
  let dataEnd = -1
  let linesStart = -1
  let linesEnd = -1
  let pos = start
  while (pos < end) {
    let eol = pos
    while (eol < end && buf[eol] !== LF && buf[eol] !== CR) eol++
    let next = eol + 1
    if (buf[eol] === CR && buf[next] === LF) next++
    if (eol > pos && buf[pos] !== 0x3a /* ':' comment */) {
      let colon = buf.indexOf(0x3a, pos)
      if (colon === -1 || colon > eol) colon = eol
      const field = buf.toString('latin1', pos, colon)
      let valueStart = colon + 1
      if (valueStart < eol && buf[valueStart] === 0x20) valueStart++
      if (valueStart > eol) valueStart = eol
      if (field === 'data') {
        if (dataStart === -1) {
          dataStart = valueStart
          dataEnd = eol
          linesStart = pos
        }
        linesEnd = eol
        data.push(buf.toString('utf8', valueStart, eol))
      } else if (field === 'event') {
        name = buf.toString('utf8', valueStart, eol)
      }
    }
    pos = next
  }
  if (dataStart === -1) return undefined
  return { name, data: data.join('\n'), dataStart, dataEnd, multiline: data.length > 1, linesStart, linesEnd }
}

/** The event with its data replaced by `data` (one `data:` line), every other byte kept. */
export function replaceData(buf: Buffer, start: number, end: number, event: SseEvent, data: string): Buffer {
  const from = event.multiline ? event.linesStart : event.dataStart
  const to = event.multiline ? event.linesEnd : event.dataEnd
  return Buffer.concat([
    buf.subarray(start, from),
    Buffer.from(event.multiline ? `data: ${data}` : data, 'utf8'),
    buf.subarray(to, end),
  ])
}

const EVENT_FIELD = Buffer.from('event:')

/** The event's first line is not an `event:` field. */
export const NO_EVENT_LINE = -2

/**
 * Which of `names` the event's first line `event: <name>` carries (its index), -1 for another name, or
 * NO_EVENT_LINE. A byte compare: events that cannot carry usage are never decoded, let alone JSON-parsed.
 */
export function matchEventName(buf: Buffer, start: number, end: number, names: readonly Buffer[]): number {
  if (end - start < 7 || buf[start] !== 0x65 /* e */ || buf.compare(EVENT_FIELD, 0, 6, start, start + 6) !== 0) {
    return NO_EVENT_LINE
  }
  let at = start + 6
  if (buf[at] === 0x20) at++
  for (let n = 0; n < names.length; n++) {
    const name = names[n]!
    const stop = at + name.length
    if (stop >= end) continue
    const after = buf[stop]
    if ((after === LF || after === CR) && buf.compare(name, 0, name.length, at, stop) === 0) return n
  }
  return -1
}
