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
import { LineEnds } from './line-ends.js'
import { DATA_COLON, decodeEvent, encodeEvent, EVENT_COLON, matchEventName, type SseEvent } from './sse-event.js'
import type { EventSink, Framer, PayloadScanner } from './types.js'
import { finish, joinHeld, toBuffer } from './pieces.js'
import { Buffer, indexOf } from '../buffer.js'

export type { SseEvent } from './sse-event.js'

const LF = 0x0a
const CR = 0x0d
const COLON = 0x3a
const SPACE = 0x20

const LF_BYTE = Buffer.from('\n')
const EMPTY = Buffer.alloc(0)

// Where the payload reader stands in the line it is reading: 0–3 bytes of "data" matched so far, the
// whole field name, its colon (the optional space not yet seen), inside the value, or another line.
const NAME = 4
const AFTER_COLON = 5
const VALUE = 6
const OTHER = 7

/** From this size on a chunk is likely to hold many events: frameLF asks the sink where in it to frame. */
const QUICK_HINT = 512

const STREAM_ENDS = new LineEnds()
const DECODE_ENDS = new LineEnds()

/**
 * Cuts a byte stream into SSE events for an {@link EventSink}. Untouched events leave as they came (a
 * chunk of whole events comes back as the same Buffer). An event not yet complete is held, unless the
 * sink says it may leave at once, or it grows over `maxEventBytes`: then its bytes leave as they come
 * and its payload may still be read on the way. Holding costs no latency either, as no client can act
 * on half an event. Nothing in an SSE stream is beyond it (any line ends, any sizes), so it never stops
 * on its own and never calls `sink.stopped`.
 */
export class SseFramer implements Framer<SseEvent> {
  // Its own: framing may hand an event to the sink, which decodes it, in the middle of a search. The
  // searches of `stream` and `decode` run to their end without handing anything on, so all framers
  // share theirs (STREAM_ENDS, DECODE_ENDS): two objects fewer per response.
  private readonly frameEnds = new LineEnds()
  // While the sink is asked about an event of this chunk from this index on, which holds no CR: the event
  // is decoded without searching for one (only set for the length of that call).
  private lfChunk: Buffer | undefined
  private lfFrom = 0
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
      // Where the event that streamed ended its search for CR: past `pos`, it is the first CR from `pos`.
      let crFrom = -1
      if (this.streaming) {
        pos = this.stream(chunk, pos)
        if (pos === -1 || this.stopped) return [chunk]
        crFrom = STREAM_ENDS.cr
      }
      // A chunk of many events, when the sink matches whole events exactly (templates): neither the held
      // event's end nor the chunk's line ends need a search first (frameLF looks for a CR only where it
      // frames an event itself).
      const exact = chunk.length - pos >= QUICK_HINT && crFrom < pos && sink.exactSkips?.() === true
      if (this.heldBytes > 0) {
        const rest = exact ? (sink.completes?.(this.held, this.heldBytes, chunk, pos) ?? -1) : -1
        if (rest === -1) return this.frame(chunk, pos, base, sink, -1)
        // The held event ends `rest` bytes into the chunk and passes: it leaves as its pieces.
        const out = this.held.splice(0)
        this.heldBytes = 0
        this.lineStart = true
        this.headDone = false
        return this.frameLF(chunk, pos + rest, -2, base, sink, out, 0, pos + rest)
      }
      if (exact) return this.frameLF(chunk, pos, -2, base, sink, undefined, 0, pos)
      const len = chunk.length
      let asked: number | undefined
      if (crFrom < pos && len - pos >= QUICK_HINT && chunk[len - 1] === LF && chunk[len - 2] === LF) {
        // A chunk that ends in a blank line holds whole events, whatever its line ends: when the sink
        // reads none of them, it leaves as it came, and its line ends are never searched.
        asked = sink.readsFrom(chunk, pos, false)
        if (asked >= len) {
          this.lineStart = true
          this.headDone = false
          return [chunk]
        }
      }
      const cr = crFrom >= pos ? (crFrom === len ? -1 : crFrom) : indexOf.call(chunk, CR, pos)
      if (cr !== -1) return this.frame(chunk, pos, base, sink, cr)
      // A chunk of many events may leave unframed (frameLF asks the sink): no need to find the first end.
      if (len - pos >= QUICK_HINT) return this.frameLF(chunk, pos, -2, base, sink, undefined, 0, len, asked)
      const end = chunk[pos] === LF ? pos + 1 : lfEventEnd(chunk, pos)
      if (end === chunk.length && pos === 0 && end <= this.maxEventBytes) {
        // The most common chunk of all, one whole event: no loop, no slicing.
        const replacement = this.eventLF(sink, chunk, 0, end, base)
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
  private frame(
    chunk: Buffer,
    pos: number,
    base: number,
    sink: EventSink,
    cr: number,
    out?: Buffer[],
    flushed = 0, // chunk bytes before this index are in `out`, or replaced there
  ): Buffer[] {
    const len = chunk.length
    let eventStart = this.heldBytes > 0 ? -1 : pos // -1: the event began in an earlier chunk
    let atLineStart = this.lineStart
    let headDone = this.headDone
    let headEnd = -1 // where the event's first line ended, when that was in this chunk
    const ends = this.frameEnds
    ends.on(cr)
    while (pos < len) {
      const eol = ends.next(chunk, pos)
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
      if (ends.cr === len) {
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
   *
   * `crFrom` below the chunk's length: whether a CR follows from there is not known yet. Then the sink is
   * asked only for exact answers, and a CR is looked for once an event is to be framed here; if there is
   * one, `frame` goes on from that event.
   */
  private frameLF(
    chunk: Buffer,
    pos: number,
    end: number,
    base: number,
    sink: EventSink,
    out: Buffer[] | undefined,
    flushed: number,
    crFrom = chunk.length,
    asked?: number, // the sink's answer to readsFrom(chunk, pos) when the caller asked already
  ): Buffer[] {
    const len = chunk.length
    // The sink's byte search says where in the rest of the chunk the first event it may read is: the
    // whole events before that one leave as they came, not cut into events, and the search goes on after
    // it; only the event the chunk ends in, if any, is framed when none is left (docs/architecture.md#byte-tests).
    let quick = end === -2
    while (pos < len) {
      if (end === -2) {
        if (quick) {
          // -1 (the sink cannot tell: its dialect is known once the first event is read) frames one event
          // and asks again after it.
          const exact = crFrom < len
          const hit = asked ?? sink.readsFrom(chunk, pos, exact)
          asked = undefined
          if (hit >= len) {
            const boundary = exact || (chunk[len - 1] === LF && chunk[len - 2] === LF) ? len : lastEventEnd(chunk)
            if (boundary === len) {
              this.lineStart = true
              this.headDone = false
              return finish(out, chunk, flushed)
            }
            if (boundary > pos) pos = boundary
            quick = false
          } else if (hit >= 0) pos = exact ? hit : eventStartBefore(chunk, pos, hit)
        }
        if (crFrom < len) {
          const cr = indexOf.call(chunk, CR, pos > crFrom ? pos : crFrom)
          if (cr !== -1) {
            this.lineStart = true
            this.headDone = false
            return this.frame(chunk, pos, base, sink, cr, out, flushed)
          }
          crFrom = len
        }
        end = chunk[pos] === LF ? pos + 1 : lfEventEnd(chunk, pos)
      }
      if (end === -1) break
      const replacement =
        end - pos > this.maxEventBytes
          ? this.oversizedWhole(chunk, pos, end, base + pos, sink)
          : this.eventLF(sink, chunk, pos, end, base + pos)
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
    const lf = indexOf.call(chunk, LF, pos)
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
    const event = joinHeld(this.held, this.heldBytes, chunk, from, to)
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
    const ends = STREAM_ENDS
    ends.on(-1)
    for (;;) {
      const eol = ends.next(buf, pos)
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

  /** `sink.event` for an event of a chunk that has no CR from `start` on. */
  private eventLF(sink: EventSink, chunk: Buffer, start: number, end: number, at: number): Uint8Array | undefined {
    this.lfChunk = chunk
    this.lfFrom = start
    try {
      return sink.event(chunk, start, end, at)
    } finally {
      this.lfChunk = undefined
    }
  }

  matchName(buf: Buffer, start: number, end: number, names: readonly Buffer[], firsts?: Uint8Array): number {
    return matchEventName(buf, start, end, names, firsts)
  }

  decode(buf: Buffer, start: number, end: number): SseEvent | undefined {
    return decodeEvent(buf, start, end, DECODE_ENDS, buf === this.lfChunk && start >= this.lfFrom)
  }

  encode(buf: Buffer, start: number, end: number, event: SseEvent, data: string): Buffer {
    return encodeEvent(buf, start, end, event, data)
  }
}

/**
 * Index just past the first "\n\n" at or after `from` in a chunk without CR, or -1. One search per line
 * for a single byte: Buffer's search for one byte costs a tenth of its search for two.
 */
function lfEventEnd(buf: Buffer, from: number): number {
  let i = indexOf.call(buf, LF, from)
  while (i !== -1) {
    const next = buf[i + 1]
    if (next === LF) return i + 2
    if (next === undefined) return -1
    i = indexOf.call(buf, LF, i + 2)
  }
  return -1
}

/**
 * Where the event that `at` is in starts, in a chunk without CR whose bytes from `from` are whole events
 * up to there: just past the last "\n\n" before `at`, or `from`. Searched back from `at`, one line at a time.
 */
function eventStartBefore(buf: Buffer, from: number, at: number): number {
  let i = at > 0 ? buf.lastIndexOf(LF, at - 1) : -1
  while (i > from) {
    if (buf[i - 1] === LF) return i + 1
    // A negative offset would count from the end again.
    i = i >= 2 ? buf.lastIndexOf(LF, i - 2) : -1
  }
  return from
}

/** Index just past the last "\n\n" of a chunk without CR, or -1; searched back from its end. */
function lastEventEnd(buf: Buffer): number {
  let i = buf.lastIndexOf(LF, buf.length - 1)
  while (i > 0) {
    if (buf[i - 1] === LF) return i + 1
    // A negative offset would count from the end again.
    i = i >= 2 ? buf.lastIndexOf(LF, i - 2) : -1
  }
  return -1
}

function isBomPrefix(chunk: Buffer): boolean {
  return chunk[0] === 0xef && (chunk.length < 2 || chunk[1] === 0xbb)
}
