/**
 * SSE framing that keeps every event's raw bytes.
 *
 * eventsource-parser hands out parsed fields, never the bytes of an event or where its `data:` value sits,
 * and usagewire must forward untouched events byte-for-byte and splice a rewritten usage block into the
 * one line that carries it. So events are cut here on blank-line boundaries in the byte stream (LF, CRLF
 * and CR line ends), and the field rules of the SSE spec are applied only to the events that may carry
 * usage (sse.test.ts checks this reading against eventsource-parser on any stream and chunking).
 */

const LF = 0x0a
const CR = 0x0d

/**
 * A callback that sees one complete event, `buf[start, end)` (`at`: where it starts in the whole stream),
 * and returns its replacement bytes, if any.
 */
export type EventVisitor = (buf: Buffer, start: number, end: number, at: number) => Uint8Array | undefined

/**
 * Index just past the blank line that ends the event starting at `start` in a stream without CR, or -1.
 * `indexOf` of a byte is a memchr: faster than a two-byte needle or a JS loop on events of any size.
 */
function lfEventEnd(buf: Buffer, start: number): number {
  if (buf[start] === LF) return start + 1 // a leading empty line
  return nextLFLF(buf, start)
}

/** Index just past the next "\n\n" at or after `from`, or -1. */
function nextLFLF(buf: Buffer, from: number): number {
  let i = buf.indexOf(LF, from)
  while (i !== -1) {
    const next = buf[i + 1]
    if (next === LF) return i + 2
    if (next === undefined) return -1
    i = buf.indexOf(LF, i + 2)
  }
  return -1
}

/** The same for streams with CR or CRLF line ends: each line end is CR, LF or CRLF. */
function crEventEnd(buf: Buffer, start: number): number {
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

/** Index just past the blank line that ends the event starting at `start`, or -1 if it is not complete. */
export function findEventEnd(buf: Buffer, start: number, crMode: boolean): number {
  return crMode ? crEventEnd(buf, start) : lfEventEnd(buf, start)
}

const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/**
 * Says whether an event not yet complete, `buf[start, end)`, may leave before its end: it is one the
 * visitor would not read (its `event:` line is complete and names an event that cannot carry usage).
 */
export type PassTest = (buf: Buffer, start: number, end: number) => boolean

/**
 * Cuts a byte stream into SSE events. Complete events are handed to a visitor; untouched ones leave as
 * they came (a chunk of whole events comes back as the same Buffer). The start of an event not yet
 * complete is held back, unless `passes` says it may leave at once; holding costs no latency either, as
 * no client can act on half an event.
 */
export class SseFramer {
  private carry: Buffer | undefined
  /** The stream has CR line ends somewhere: events are cut by the slower rules that allow them. */
  crMode = false
  // A blank line that ended on a lone CR at the end of a chunk may be the CR of a CRLF: its LF, if it
  // comes, belongs to that terminator and is forwarded as it is.
  private skipLeadingLF = false
  // An event that passed before its end: its bytes keep leaving until the blank line that ends it.
  private passing = false
  private lastWasLF = false
  private seen = 0 // stream bytes pushed so far
  /** Set once the framer stopped: by `stop()`, an event over `maxEventBytes`, or line ends it cannot follow. */
  stopped = false

  /**
   * @param onStop told why and where in the stream the framer stopped on its own; it then hands back
   *   every byte as it comes.
   */
  constructor(
    private readonly maxEventBytes: number,
    private readonly onStop?: (reason: string, at: number) => void,
    private readonly passes?: PassTest,
  ) {}

  /** Bytes held back because they are the start of an event not yet complete. */
  pending(): Buffer | undefined {
    return this.carry
  }

  /** From now on hand back every byte as it comes (fail open); returns the bytes it was holding. */
  stop(): Buffer[] {
    this.stopped = true
    const held = this.carry ? [this.carry] : []
    this.carry = undefined
    return held
  }

  private halt(reason: string, at: number): void {
    this.stopped = true
    this.onStop?.(reason, at)
  }

  /** Cuts `chunk` into events; returns the bytes to send now. */
  push(chunk: Buffer, visit: EventVisitor): Buffer[] {
    const base = this.seen
    this.seen += chunk.length
    if (this.stopped) return [chunk]
    if (!this.crMode && chunk.indexOf(CR) !== -1) {
      this.crMode = true
      if (this.passing) {
        // The end of the event already sent would have to be found with line ends it did not use.
        this.halt('line ends changed from LF to CR in the middle of an event', base)
        return [chunk]
      }
    }
    if (this.passing) {
      const end = this.lastWasLF && chunk[0] === LF ? 1 : nextLFLF(chunk, 0)
      if (end === -1) {
        this.lastWasLF = chunk[chunk.length - 1] === LF
        return [chunk]
      }
      this.passing = false
      return end === chunk.length ? [chunk] : this.cut(chunk, end, 0, base, visit, [])
    }
    const carry = this.carry
    if (this.crMode || this.skipLeadingLF) {
      this.carry = undefined
      const buf = carry ? Buffer.concat([carry, chunk]) : chunk
      let start = 0
      if (this.skipLeadingLF) {
        this.skipLeadingLF = false
        if (buf[0] === LF) start = 1
      }
      return this.cut(buf, start, 0, base - (carry?.length ?? 0), visit, [])
    }
    if (!carry) {
      // The common case, one whole event per chunk: no loop, no slicing.
      const end = lfEventEnd(chunk, 0)
      if (end === chunk.length) {
        const replacement = visit(chunk, 0, end, base)
        return [replacement && !this.stopped ? toBuffer(replacement) : chunk]
      }
      return this.cut(chunk, 0, 0, base, visit, [])
    }
    // Complete the held event with the head of this chunk, copying only that event, not the chunk.
    const end = carry[carry.length - 1] === LF && chunk[0] === LF ? 1 : nextLFLF(chunk, 0)
    if (end === -1) {
      this.carry = undefined
      return this.cut(Buffer.concat([carry, chunk]), 0, 0, base - carry.length, visit, [])
    }
    this.carry = undefined
    const event = Buffer.concat([carry, chunk.subarray(0, end)])
    const out = this.cut(event, 0, 0, base - carry.length, visit, [])
    if (this.stopped) {
      if (end < chunk.length) out.push(chunk.subarray(end))
      return out
    }
    return end < chunk.length ? this.cut(chunk, end, end, base, visit, out) : out
  }

  /**
   * Visits the complete events of `buf` from `start`; the bytes before `flushed` were already handed out
   * and `base` is the stream offset of `buf[0]`.
   */
  private cut(buf: Buffer, start: number, flushed: number, base: number, visit: EventVisitor, out: Buffer[]): Buffer[] {
    while (start < buf.length) {
      const end = this.crMode ? crEventEnd(buf, start) : lfEventEnd(buf, start)
      if (end === -1) break
      const replacement = visit(buf, start, end, base + start)
      if (this.stopped) break
      if (replacement) {
        if (start > flushed) out.push(buf.subarray(flushed, start))
        out.push(toBuffer(replacement))
        flushed = end
      }
      start = end
      if (this.crMode && end === buf.length && buf[end - 1] === CR) this.skipLeadingLF = true
    }
    if (start < buf.length && !this.stopped) {
      if (!this.crMode && this.passes?.(buf, start, buf.length)) {
        // An event no one will read: its bytes leave now, with the rest of the chunk.
        this.passing = true
        this.lastWasLF = buf[buf.length - 1] === LF
        start = buf.length
      } else if (buf.length - start > this.maxEventBytes) {
        this.halt(`event over maxEventBytes (${this.maxEventBytes})`, base + start)
      } else {
        this.carry = Buffer.from(buf.subarray(start))
      }
    }
    if (this.stopped) {
      out.push(flushed === 0 ? buf : buf.subarray(flushed))
      return out
    }
    if (flushed === 0 && start === buf.length) out.push(buf)
    else if (start > flushed) out.push(buf.subarray(flushed, start))
    return out
  }

  /** The stream ended: a last event without its blank line is still an event (PEERS.md §2 row 52). */
  end(visit: EventVisitor): Buffer[] {
    const rest = this.carry
    this.carry = undefined
    if (!rest || this.stopped) return rest ? [rest] : []
    return [toBuffer(visit(rest, 0, rest.length, this.seen - rest.length) ?? rest)]
  }
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
  let data: string | undefined
  let lines = 0
  let dataStart = -1
  let dataEnd = -1
  let linesStart = -1
  let linesEnd = -1
  let pos = start
  // Only events that may carry usage get here, so finding line ends with two searches is cheap enough.
  let lf = buf.indexOf(LF, start)
  let cr = buf.indexOf(CR, start)
  while (pos < end) {
    if (lf !== -1 && lf < pos) lf = buf.indexOf(LF, pos)
    if (cr !== -1 && cr < pos) cr = buf.indexOf(CR, pos)
    let eol = Math.min(lf === -1 ? end : lf, cr === -1 ? end : cr, end)
    let next = eol + 1
    if (buf[eol] === CR && buf[next] === LF) next++
    if (eol > pos && buf[pos] !== 0x3a /* ':' comment */) {
      let colon = buf.indexOf(0x3a, pos)
      if (colon === -1 || colon > eol) colon = eol
      let valueStart = colon + 1
      if (valueStart < eol && buf[valueStart] === 0x20) valueStart++
      if (valueStart > eol) valueStart = eol
      if (isField(buf, pos, colon, DATA_FIELD)) {
        if (dataStart === -1) {
          dataStart = valueStart
          dataEnd = eol
          linesStart = pos
        }
        linesEnd = eol
        const value = buf.toString('utf8', valueStart, eol)
        data = data === undefined ? value : `${data}\n${value}`
        lines++
      } else if (isField(buf, pos, colon, EVENT_FIELD)) {
        name = buf.toString('utf8', valueStart, eol)
      }
    }
    pos = next
  }
  if (data === undefined) return undefined
  return { name, data, dataStart, dataEnd, multiline: lines > 1, linesStart, linesEnd }
}

const DATA_FIELD = Buffer.from('data')
const EVENT_FIELD = Buffer.from('event')

function isField(buf: Buffer, start: number, end: number, field: Buffer): boolean {
  if (end - start !== field.length) return false
  for (let i = 0; i < field.length; i++) if (buf[start + i] !== field[i]) return false
  return true
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

/** The event's first line is not an `event:` field. */
export const NO_EVENT_LINE = -2

/**
 * Which of `names` the event's first line `event: <name>` carries (its index), -1 for another name, or
 * NO_EVENT_LINE. Plain byte reads: events that cannot carry usage are never decoded, let alone parsed,
 * and a call into Buffer's native methods per event would cost more than the compare.
 */
export function matchEventName(buf: Buffer, start: number, end: number, names: readonly Buffer[]): number {
  if (
    end - start < 7 ||
    buf[start] !== 0x65 /* e */ ||
    buf[start + 1] !== 0x76 /* v */ ||
    buf[start + 2] !== 0x65 /* e */ ||
    buf[start + 3] !== 0x6e /* n */ ||
    buf[start + 4] !== 0x74 /* t */ ||
    buf[start + 5] !== 0x3a /* : */
  ) {
    return NO_EVENT_LINE
  }
  const at = buf[start + 6] === 0x20 ? start + 7 : start + 6
  for (let n = 0; n < names.length; n++) {
    const name = names[n]!
    const stop = at + name.length
    if (stop >= end) continue
    let i = 0
    while (i < name.length && buf[at + i] === name[i]) i++
    if (i === name.length && (buf[stop] === LF || buf[stop] === CR)) return n
  }
  return -1
}
