/**
 * SSE framing that keeps every event's raw bytes (docs/architecture.md#framers, docs/transport.md#sse-framing).
 *
 * eventsource-parser hands out parsed fields, never the bytes of an event or where its `data:` value sits,
 * and usagewire must forward untouched events byte-for-byte and splice a rewritten usage block into the
 * lines that carry it. So events are cut here on blank-line boundaries in the byte stream (LF, CRLF and CR
 * line ends), and the field rules of the SSE spec are applied only to the events a dialect reads
 * (sse.test.ts checks this reading against eventsource-parser on any stream and chunking).
 *
 * The cost of framing is linear in the bytes whatever the chunking and line ends: the scan position and
 * line state survive from one chunk to the next, so bytes are searched once; an event held across chunks
 * is kept as a list of pieces and copied once, when it completes (or never, when it turns out to pass).
 */
import { NO_NAME, type DecodedEvent, type EventSink, type Framer, type PayloadScanner } from './types.js'

const LF = 0x0a
const CR = 0x0d
const COLON = 0x3a
const SPACE = 0x20

const LF_BYTE = Buffer.from('\n')
const EMPTY = Buffer.alloc(0)
const DATA_COLON = Buffer.from('data:')
const EVENT_COLON = Buffer.from('event:')

// Where the payload reader stands in the line it is reading: 0–3 bytes of "data" matched so far, the
// whole field name, its colon (the optional space not yet seen), inside the value, or another line.
const NAME = 4
const AFTER_COLON = 5
const VALUE = 6
const OTHER = 7

const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/** The fields of one event that usagewire reads, with where its data lines sit in the buffer. */
export interface SseEvent extends DecodedEvent {
  /** The `event:` field, or undefined (empty or absent: the spec's default type, "message"). */
  name: string | undefined
  /** The values of the data lines joined with "\n", as the spec defines. */
  data: string
  /** How many `data` lines the event has. */
  dataLines: number
  /** Byte range of the first data line's value (after the optional space). */
  dataStart: number
  dataEnd: number
  /** The first data line has a colon, and a space after it (a value that starts with one needs it). */
  dataColon: boolean
  dataSpaced: boolean
  /** Where the first data line starts, and where its line terminator ends. */
  linesStart: number
  firstLineEnd: number
  /** Where the last data line's value ends (its terminator and every later byte are kept). */
  linesEnd: number
}

/**
 * Cuts a byte stream into SSE events for an {@link EventSink}. Untouched events leave as they came (a
 * chunk of whole events comes back as the same Buffer). An event not yet complete is held, unless the
 * sink says it may leave at once, or it grows over `maxEventBytes`: then its bytes leave as they come
 * and its payload may still be read on the way. Holding costs no latency either, as no client can act
 * on half an event. Nothing in an SSE stream is beyond it (any line ends, any sizes), so it never stops
 * on its own and never calls `sink.stopped`.
 */
/**
 * Finds line ends in one buffer: the next LF and the next CR are each searched again only once passed,
 * so every byte is searched once for each whatever the line ends, and a stream without CR costs one CR
 * search per chunk.
 */
class LineEnds {
  private buf: Buffer = Buffer.alloc(0)
  private lf = -1
  /** The CR found last (the buffer's length when there is none after the position asked). */
  cr = -1

  /** Starts on `buf`; `cr`, when known, is its first CR at or after the first position asked, else -1. */
  on(buf: Buffer, cr: number): void {
    this.buf = buf
    this.lf = -1
    this.cr = cr
  }

  /** The first line end (LF or CR) at or after `pos`, or the buffer's length. */
  next(pos: number): number {
    if (this.lf < pos) {
      const i = this.buf.indexOf(LF, pos)
      this.lf = i === -1 ? this.buf.length : i
    }
    if (this.cr < pos) {
      const i = this.buf.indexOf(CR, pos)
      this.cr = i === -1 ? this.buf.length : i
    }
    return this.lf < this.cr ? this.lf : this.cr
  }
}

export class SseFramer implements Framer<SseEvent> {
  // One per use: framing may hand an event to the sink, which decodes it, in the middle of a search.
  private readonly frameEnds = new LineEnds()
  private readonly streamEnds = new LineEnds()
  private readonly decodeEnds = new LineEnds()
  readonly kind = 'sse' as const
  /** Set once `stop()` was called: every byte is then handed back as it comes. */
  stopped = false

  private seen = 0 // stream bytes pushed so far
  // The stream's first bytes may be a BOM, which belongs to no event; they are held while too few to tell.
  private begun = false
  private bom: Buffer | undefined
  // Inside push or end: a sink that stops the framer gets nothing back from stop(), as the bytes held
  // then leave with what push or end returns.
  private busy = false

  // Line state where the last chunk ended.
  private lineStart = true
  // The last chunk ended on a CR that ended a line: an LF first in the next chunk completes that CRLF.
  private afterCR = false

  // The event in progress, held: its pieces, their length, its stream offset, whether its first line ended.
  private readonly held: Buffer[] = []
  private heldBytes = 0
  private eventAt = 0
  private headDone = false

  // The event in progress is leaving as it comes (it passes, or grew too large); its payload is read for
  // `scanner`, if any, with `field` the reader's place in the current line.
  private streaming = false
  private scanner: PayloadScanner | undefined
  private field = 0
  private dataLines = 0

  constructor(private readonly maxEventBytes: number) {}

  push(chunk: Buffer, sink: EventSink): Buffer[] {
    let base = this.seen
    this.seen += chunk.length
    if (this.stopped) return [chunk]
    if (chunk.length === 0) return []
    let pos = 0
    if (!this.begun) {
      const bom = this.bom
      if (bom !== undefined) {
        this.bom = undefined
        base -= bom.length
        chunk = Buffer.concat([bom, chunk])
      }
      if (chunk.length < 3 && isBomPrefix(chunk)) {
        this.bom = Buffer.from(chunk)
        return []
      }
      this.begun = true
      if (chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) pos = 3
    } else if (this.afterCR) {
      this.afterCR = false
      if (chunk[0] === LF) pos = 1
    }
    this.busy = true
    try {
      if (this.streaming) {
        pos = this.stream(chunk, pos)
        if (pos === -1 || this.stopped) return [chunk]
      }
      if (this.heldBytes > 0) return this.frame(chunk, pos, base, sink, -1)
      const cr = chunk.indexOf(CR, pos)
      if (cr !== -1) return this.frame(chunk, pos, base, sink, cr)
      const end = chunk[pos] === LF ? pos + 1 : lfEventEnd(chunk, pos)
      if (end === chunk.length && pos === 0 && end <= this.maxEventBytes) {
        // The most common chunk of all, one whole event: no loop, no slicing.
        const replacement = sink.event(chunk, 0, end, base)
        return [replacement === undefined || this.stopped ? chunk : toBuffer(replacement)]
      }
      return this.frameLF(chunk, pos, end, base, sink, undefined, 0)
    } finally {
      this.busy = false
    }
  }

  end(sink: EventSink): Buffer[] {
    if (this.stopped) return []
    this.busy = true
    try {
      if (!this.begun) {
        this.begun = true
        const bom = this.bom
        this.bom = undefined
        return bom ? [bom] : []
      }
      if (this.streaming) {
        this.streaming = false
        const scanner = this.scanner
        if (scanner) {
          this.scanner = undefined
          this.endLine(scanner)
          scanner.end()
        }
        return []
      }
      if (this.heldBytes === 0) return []
      // A last event without its blank line is still an event: a truncated stream still yields its usage.
      const event = this.release(EMPTY, 0, 0)
      const replacement = sink.event(event, 0, event.length, this.eventAt)
      return [replacement === undefined || this.stopped ? event : toBuffer(replacement)]
    } finally {
      this.busy = false
    }
  }

  stop(): Buffer[] {
    this.stopped = true
    if (this.busy) return []
    const out: Buffer[] = []
    if (this.bom) out.push(this.bom)
    this.bom = undefined
    out.push(...this.held)
    this.held.length = 0
    this.heldBytes = 0
    return out
  }

  /**
   * Cuts events out of `chunk` from `pos`, where an event starts (or the held one goes on); `base` is the
   * stream offset of `chunk[0]`, and `cr` the first CR at or after `pos` when known (else -1).
   */
  private frame(chunk: Buffer, pos: number, base: number, sink: EventSink, cr: number): Buffer[] {
    const len = chunk.length
    let out: Buffer[] | undefined
    let flushed = 0 // chunk bytes before this index are in `out`, or replaced there
    let eventStart = this.heldBytes > 0 ? -1 : pos // -1: the event began in an earlier chunk
    let atLineStart = this.lineStart
    let headDone = this.headDone
    let headEnd = -1 // where the event's first line ended, when that was in this chunk
    const ends = this.frameEnds
    ends.on(chunk, cr)
    while (pos < len) {
      const eol = ends.next(pos)
      if (eol === len) break
      let next = eol + 1
      if (eol === ends.cr) {
        if (next === len) this.afterCR = true
        else if (chunk[next] === LF) next++
      }
      if (eol !== pos || !atLineStart) {
        atLineStart = true
        pos = next
        if (!headDone) {
          headDone = true
          headEnd = next
        }
        // The blank line that most often follows is seen by a look at one byte, not by a search.
        const b = chunk[next]
        if (b === LF) next++
        else if (b === CR) {
          next++
          if (next === len) this.afterCR = true
          else if (chunk[next] === LF) next++
        } else continue
      }
      // A blank line ends at `next`: so does the event. One over the bound is never handed over whole,
      // however it was cut, so that what the sink does with it does not depend on the chunking.
      if (eventStart >= 0) {
        const replacement =
          next - eventStart > this.maxEventBytes
            ? this.oversizedWhole(chunk, eventStart, next, base + eventStart, sink)
            : sink.event(chunk, eventStart, next, base + eventStart)
        if (this.stopped) return finish(out, chunk, flushed)
        if (replacement !== undefined) {
          out ??= []
          if (eventStart > flushed) out.push(chunk.subarray(flushed, eventStart))
          out.push(toBuffer(replacement))
          flushed = next
        }
      } else {
        const event = this.release(chunk, 0, next)
        const replacement =
          event.length > this.maxEventBytes
            ? this.oversizedWhole(event, 0, event.length, this.eventAt, sink)
            : sink.event(event, 0, event.length, this.eventAt)
        out ??= []
        if (this.stopped) {
          out.push(event)
          return finish(out, chunk, next)
        }
        out.push(replacement === undefined ? event : toBuffer(replacement))
        flushed = next
      }
      pos = next
      eventStart = next
      headDone = false
      headEnd = -1
      // No CR in the rest of the chunk: the rest is cut by the LF rules alone.
      if (cr === len) {
        this.lineStart = true
        return this.frameLF(chunk, next, -2, base, sink, out, flushed)
      }
    }
    this.lineStart = pos < len ? false : atLineStart
    if (eventStart === len) {
      this.headDone = false
      return finish(out, chunk, flushed)
    }
    return this.pending(chunk, eventStart, headDone, headEnd, base, out, flushed, sink)
  }

  /**
   * `frame` for the common case: `pos` starts an event and no CR follows in `chunk`. An event ends at the
   * first "\n\n", found by one search per line and a look at the byte after each LF: the loop that keeps
   * an LF stream as fast as a framer that knows no other line end. `end` is where the event at `pos`
   * ends when the caller found it already (-1: not in this chunk), else -2.
   */
  private frameLF(
    chunk: Buffer,
    pos: number,
    end: number,
    base: number,
    sink: EventSink,
    out: Buffer[] | undefined,
    flushed: number,
  ): Buffer[] {
    const len = chunk.length
    while (pos < len) {
      if (end === -2) end = chunk[pos] === LF ? pos + 1 : lfEventEnd(chunk, pos)
      if (end === -1) break
      const replacement =
        end - pos > this.maxEventBytes
          ? this.oversizedWhole(chunk, pos, end, base + pos, sink)
          : sink.event(chunk, pos, end, base + pos)
      if (this.stopped) return finish(out, chunk, flushed)
      if (replacement !== undefined) {
        out ??= []
        if (pos > flushed) out.push(chunk.subarray(flushed, pos))
        out.push(toBuffer(replacement))
        flushed = end
      }
      pos = end
      end = -2
    }
    if (pos === len) {
      this.lineStart = true
      this.headDone = false
      return finish(out, chunk, flushed)
    }
    this.lineStart = chunk[len - 1] === LF
    // The first line of the event left over, searched once more (once per chunk).
    const lf = chunk.indexOf(LF, pos)
    const headEnd = lf === -1 ? -1 : lf + 1
    return this.pending(chunk, pos, headEnd !== -1, headEnd, base, out, flushed, sink)
  }

  /**
   * The event in progress did not end in `chunk`: it leaves now if the sink says it may, or leaves as it
   * comes once it is too large to hold; otherwise the chunk's part of it is held.
   */
  private pending(
    chunk: Buffer,
    eventStart: number,
    headDone: boolean,
    headEnd: number,
    base: number,
    out: Buffer[] | undefined,
    flushed: number,
    sink: EventSink,
  ): Buffer[] {
    const len = chunk.length
    let from = eventStart // the chunk's bytes of the event not yet held
    if (eventStart >= 0) this.eventAt = base + eventStart
    else from = 0
    // Asked once per event, when its first line ends: a name decides it, and only an `event:` line has one.
    if (headEnd !== -1 && this.namedHead(chunk, from)) {
      let head = chunk
      let start = from
      let end = len
      if (eventStart < 0) {
        head = this.release(chunk, 0, headEnd)
        start = 0
        end = head.length
        from = headEnd
      }
      const passes = sink.passes(head, start, end)
      if (passes || this.stopped) {
        this.headDone = false
        this.streaming = !this.stopped
        this.scanner = undefined
        if (head === chunk) return finish(out, chunk, flushed)
        return finish([head], chunk, from)
      }
      if (head !== chunk) {
        this.held.push(head)
        this.heldBytes = head.length
      }
    }
    if (this.heldBytes + len - from > this.maxEventBytes) {
      let head = chunk
      let start = from
      if (this.heldBytes > 0) {
        head = this.release(chunk, from, len)
        start = 0
      }
      const scanner = sink.oversized(head, start, head.length, this.eventAt)
      this.headDone = false
      if (!this.stopped) {
        this.streaming = true
        this.scanner = scanner
        if (scanner) {
          // Its payload so far is read from the head; the line state at the head's end is the chunk's.
          this.field = 0
          this.dataLines = 0
          this.lineStart = true
          this.afterCR = false
          this.stream(head, start)
        }
      }
      if (head === chunk) return finish(out, chunk, flushed)
      return finish([head], chunk, len)
    }
    this.headDone = headDone
    if (eventStart > 0) {
      // A copy, so that a few bytes held never keep a whole chunk alive; an event's later pieces are
      // mostly whole chunks, kept as they are.
      this.held.push(Buffer.from(chunk.subarray(eventStart)))
      this.heldBytes = len - eventStart
      out ??= []
      if (eventStart > flushed) out.push(chunk.subarray(flushed, eventStart))
      return out
    }
    this.held.push(from === 0 ? chunk : chunk.subarray(from))
    this.heldBytes += len - from
    return out ?? []
  }

  /** A complete event over the bound: it leaves as it came, its payload read by the sink's scanner. */
  private oversizedWhole(buf: Buffer, start: number, end: number, at: number, sink: EventSink): undefined {
    const scanner = sink.oversized(buf, start, end, at)
    if (scanner === undefined || this.stopped) return undefined
    // The framing loop keeps its own line state; only where a chunk ends matters to the next one.
    const afterCR = this.afterCR
    this.scanner = scanner
    this.field = 0
    this.dataLines = 0
    this.lineStart = true
    this.stream(buf, start)
    this.afterCR = afterCR
    return undefined
  }

  /** The held pieces and `chunk[from, to)` as one buffer, copied once; nothing is held afterwards. */
  private release(chunk: Buffer, from: number, to: number): Buffer {
    const held = this.held
    const total = this.heldBytes + to - from
    if (to > from) held.push(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to))
    const event = held.length === 1 ? held[0]! : Buffer.concat(held, total)
    held.length = 0
    this.heldBytes = 0
    return event
  }

  /** The event in progress (held pieces, then `chunk` from `from`) starts with an `event:` field. */
  private namedHead(chunk: Buffer, from: number): boolean {
    let k = 0
    const held = this.held
    for (let p = 0; p < held.length && k < 6; p++) {
      const piece = held[p]!
      for (let i = 0; i < piece.length && k < 6; i++, k++) if (piece[i] !== EVENT_COLON[k]) return false
    }
    for (let i = from; k < 6; i++, k++) if (chunk[i] !== EVENT_COLON[k]) return false
    return true
  }

  /**
   * The event in progress leaves as it comes: finds its blank line in `buf` from `pos` and returns the
   * index past it (-1 when it is not there), reading the payload on the way when there is a scanner.
   */
  private stream(buf: Buffer, pos: number): number {
    const len = buf.length
    const scanner = this.scanner
    let atLineStart = this.lineStart
    const ends = this.streamEnds
    ends.on(buf, -1)
    for (;;) {
      const eol = ends.next(pos)
      if (scanner !== undefined && eol > pos) this.feed(scanner, buf, pos, eol)
      if (eol === len) {
        this.lineStart = pos < len ? false : atLineStart
        return -1
      }
      let next = eol + 1
      if (eol === ends.cr) {
        if (next === len) this.afterCR = true
        else if (buf[next] === LF) next++
      }
      if (eol === pos && atLineStart) {
        this.streaming = false
        this.lineStart = true
        if (scanner !== undefined) {
          this.scanner = undefined
          this.field = 0
          scanner.end()
        }
        return next
      }
      if (scanner !== undefined) this.endLine(scanner)
      atLineStart = true
      pos = next
    }
  }

  /**
   * Hands the scanner the payload bytes of `buf[from, to)`, part of one line. Only the few bytes of a
   * field name are looked at one by one (a state, not a held prefix, so a name split across chunks is
   * still recognised); a value goes to the scanner as a range.
   */
  private feed(scanner: PayloadScanner, buf: Buffer, from: number, to: number): void {
    let state = this.field
    if (state === VALUE) {
      scanner.write(buf, from, to)
      return
    }
    let i = from
    while (i < to && state < VALUE) {
      const b = buf[i]!
      if (state < NAME) {
        state = b === DATA_COLON[state] ? state + 1 : OTHER
        i++
      } else if (state === NAME) {
        if (b !== COLON) state = OTHER
        else {
          this.dataLine(scanner)
          state = AFTER_COLON
          i++
        }
      } else {
        if (b === SPACE) i++
        state = VALUE
      }
    }
    this.field = state
    if (state === VALUE && i < to) scanner.write(buf, i, to)
  }

  /** A line of the streaming event ended: a bare `data` line is a data line with an empty value. */
  private endLine(scanner: PayloadScanner): void {
    if (this.field === NAME) this.dataLine(scanner)
    this.field = 0
  }

  /** Data lines are joined with LF, as the spec builds an event's data. */
  private dataLine(scanner: PayloadScanner): void {
    if (this.dataLines++ > 0) scanner.write(LF_BYTE, 0, 1)
  }

  matchName(buf: Buffer, start: number, end: number, names: readonly Buffer[]): number {
    return matchEventName(buf, start, end, names)
  }

  decode(buf: Buffer, start: number, end: number): SseEvent | undefined {
    // Only events a dialect reads get here. A view bounds each line-end search to the event: a search
    // for a CR that an LF stream never has would otherwise run to the end of a large chunk, per event.
    const v = buf.subarray(start, end)
    const n = v.length
    let name: string | undefined
    let data = ''
    let lines = 0
    let dataStart = 0
    let dataEnd = 0
    let dataColon = false
    let dataSpaced = false
    let linesStart = 0
    let firstLineEnd = 0
    let linesEnd = 0
    let pos = 0
    const ends = this.decodeEnds
    ends.on(v, -1)
    while (pos < n) {
      const eol = ends.next(pos)
      let next = eol + 1
      if (eol === ends.cr && v[next] === LF) next++
      const isData = isField(v, pos, eol, DATA_COLON)
      if (isData || isField(v, pos, eol, EVENT_COLON)) {
        const colon = pos + (isData ? 4 : 5)
        let valueStart = colon === eol ? eol : colon + 1
        const spaced = valueStart < eol && v[valueStart] === SPACE
        if (spaced) valueStart++
        const value = v.toString('utf8', valueStart, eol)
        if (!isData) name = value === '' ? undefined : value
        else {
          if (lines === 0) {
            data = value
            linesStart = pos
            dataStart = valueStart
            dataEnd = eol
            dataColon = colon !== eol
            dataSpaced = spaced
            firstLineEnd = next > n ? n : next
          } else data = `${data}\n${value}`
          linesEnd = eol
          lines++
        }
      }
      pos = next
    }
    if (lines === 0) return undefined
    return {
      name,
      data,
      dataLines: lines,
      dataStart: start + dataStart,
      dataEnd: start + dataEnd,
      dataColon,
      dataSpaced,
      linesStart: start + linesStart,
      firstLineEnd: start + firstLineEnd,
      linesEnd: start + linesEnd,
    }
  }

  encode(buf: Buffer, start: number, end: number, event: SseEvent, data: string): Buffer {
    if (
      event.dataLines === 1 &&
      event.dataColon &&
      (event.dataSpaced || data.charCodeAt(0) !== SPACE) &&
      data.indexOf('\n') === -1 &&
      data.indexOf('\r') === -1
    ) {
      // One line stays one line: only its value changes, every other byte is kept.
      return Buffer.concat([
        buf.subarray(start, event.dataStart),
        Buffer.from(data, 'utf8'),
        buf.subarray(event.dataEnd, end),
      ])
    }
    // Every piece of the new data gets its own `data: ` line, ended as the event ends its lines. Other
    // lines found between the old data lines are kept, in their order, ahead of the new data lines.
    const eol = lineEndOf(buf, start, end, event)
    const kept: Buffer[] = []
    if (event.dataLines > 1) {
      const v = buf.subarray(event.firstLineEnd, event.linesEnd)
      let pos = 0
      while (pos < v.length) {
        const { eol: lineEnd, next } = nextLine(v, pos)
        if (!isField(v, pos, lineEnd, DATA_COLON)) kept.push(v.subarray(pos, next))
        pos = next
      }
    }
    const lines = data.split(/\r\n|\r|\n/)
    return Buffer.concat([
      buf.subarray(start, event.linesStart),
      ...kept,
      Buffer.from(`data: ${lines.join(`${eol}data: `)}`, 'utf8'),
      buf.subarray(event.linesEnd, end),
    ])
  }
}

/** Index just past the first "\n\n" at or after `from` in a chunk without CR, or -1. */
function lfEventEnd(buf: Buffer, from: number): number {
  let i = buf.indexOf(LF, from)
  while (i !== -1) {
    const next = buf[i + 1]
    if (next === LF) return i + 2
    if (next === undefined) return -1
    i = buf.indexOf(LF, i + 2)
  }
  return -1
}

/** Where `push` returns: what `out` holds, then `chunk` from `from` (the chunk itself when nothing else). */
function finish(out: Buffer[] | undefined, chunk: Buffer, from: number): Buffer[] {
  if (out === undefined) return from === 0 ? [chunk] : from < chunk.length ? [chunk.subarray(from)] : []
  if (from < chunk.length) out.push(from === 0 ? chunk : chunk.subarray(from))
  return out
}

function isBomPrefix(chunk: Buffer): boolean {
  return chunk[0] === 0xef && (chunk.length < 2 || chunk[1] === 0xbb)
}

/**
 * The line `buf[pos, eol)` is the field whose name and colon are `field` (a bare name without colon is
 * the field too, with an empty value).
 */
function isField(buf: Buffer, pos: number, eol: number, field: Buffer): boolean {
  const n = field.length - 1
  if (eol - pos < n) return false
  for (let i = 0; i < n; i++) if (buf[pos + i] !== field[i]) return false
  return pos + n === eol || buf[pos + n] === COLON
}

/** The line at `pos` in `buf`: where it ends, and where the next one starts. */
function nextLine(buf: Buffer, pos: number): { eol: number; next: number } {
  let eol = pos
  while (eol < buf.length && buf[eol] !== LF && buf[eol] !== CR) eol++
  let next = eol + 1
  if (buf[eol] === CR && buf[next] === LF) next++
  return { eol, next: next > buf.length ? buf.length : next }
}

/** The line terminator the event uses: its first data line's, else the first it has, else LF. */
function lineEndOf(buf: Buffer, start: number, end: number, event: SseEvent): string {
  let at = event.dataEnd
  if (event.firstLineEnd === at) {
    at = start + nextLine(buf.subarray(start, end), 0).eol
    if (at >= end) return '\n'
  }
  return buf[at] === CR ? (buf[at + 1] === LF ? '\r\n' : '\r') : '\n'
}

/**
 * Which of `names` the event's first line `event: <name>` carries (its index), -1 for another name, or
 * NO_NAME when the first line is not an `event:` field with a name. Plain byte reads: events that cannot
 * carry usage are never decoded, and a call into Buffer's native methods per event would cost more than
 * the compare.
 */
function matchEventName(buf: Buffer, start: number, end: number, names: readonly Buffer[]): number {
  if (
    end - start < 7 ||
    buf[start] !== 0x65 /* e */ ||
    buf[start + 1] !== 0x76 /* v */ ||
    buf[start + 2] !== 0x65 /* e */ ||
    buf[start + 3] !== 0x6e /* n */ ||
    buf[start + 4] !== 0x74 /* t */ ||
    buf[start + 5] !== 0x3a /* : */
  ) {
    return NO_NAME
  }
  const at = buf[start + 6] === 0x20 ? start + 7 : start + 6
  // An empty name is the spec's default type, as if the event had no name at all.
  if (buf[at] === LF || buf[at] === CR) return NO_NAME
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
