/**
 * A JSON array sent over time, each top-level element an event (docs/transport.md#json-array-streams):
 * Gemini's `:streamGenerateContent` without `alt=sse` answers `[{…}\r\n,{…}\r\n]`, one element per chunk of
 * the response, the closing `]` only at the end (docs/dialects/gemini.md#stream-encodings).
 *
 * An element is handed to the sink as soon as its closing byte arrives, never waiting for the `]`. The
 * bytes between elements (`[`, `,`, `]`, whitespace) and every untouched element leave as they came; a
 * chunk with nothing to replace comes back as the same Buffer. The string, escape and depth state of the
 * element in progress survive from one chunk to the next, so every byte is looked at once: a held element
 * is never rescanned, and is copied once, when it completes. A top-level object that is not inside an
 * array (an error body) is one element. Anything else that is not a JSON array stops the framer: from
 * there every byte passes untouched (fail open).
 */
import type { EventSink, Framer } from './types.js'
import { finish, HeldEventFramer, toBuffer } from './pieces.js'
import { Buffer } from '../buffer.js'

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d

const isSpace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09

/** Where the framer stands between elements. */
const enum Phase {
  /** Before the `[` (or a bare top-level object). */
  Start,
  /** After `[` or `,`: an element (or, right after `[`, the `]`) comes next. */
  Element,
  /** After an element: `,` or `]` comes next. */
  Separator,
  /** Inside an element. */
  Value,
  /** After the `]` (or the bare object): only whitespace. */
  Done,
}

export class JsonArrayFramer extends HeldEventFramer implements Framer {
  readonly kind = 'json-array' as const

  private seen = 0 // stream bytes pushed so far
  private phase = Phase.Start
  private bare = false // the body is one object, not an array
  private afterOpen = false // `]` may close the array here (right after `[`)
  // Inside the element in progress.
  private depth = 0
  private inString = false
  private escape = false
  private scalar = false // a number, true, false or null: ends at the next delimiter
  // The element in progress, held: its pieces, their length, its stream offset.
  // The element in progress grew over the bound: its bytes leave as they come, read by `scanner`, if any.

  push(chunk: Buffer, sink: EventSink): Buffer[] {
    const base = this.seen
    this.seen += chunk.length
    if (this.stopped) return [chunk]
    if (chunk.length === 0) return []
    this.busy = true
    try {
      return this.frame(chunk, base, sink)
    } finally {
      this.busy = false
    }
  }

  private frame(chunk: Buffer, base: number, sink: EventSink): Buffer[] {
    const len = chunk.length
    let out: Buffer[] | undefined
    let flushed = 0 // chunk bytes before this index are in `out`, or replaced there
    let eventStart = this.phase === Phase.Value ? -1 : 0 // -1: the element began in an earlier chunk
    let i = 0
    while (i < len) {
      if (this.phase === Phase.Value) {
        const end = this.scan(chunk, i)
        if (end === -1) break
        this.phase = this.bare ? Phase.Done : Phase.Separator
        if (this.passing) {
          this.passing = false
          const scanner = this.scanner
          this.scanner = undefined
          if (scanner) {
            scanner.write(chunk, i, end)
            scanner.end()
          }
        } else if (eventStart >= 0) {
          const replacement =
            end - eventStart > this.maxEventBytes
              ? this.oversizedWhole(chunk, eventStart, end, base + eventStart, sink)
              : sink.event(chunk, eventStart, end, base + eventStart)
          if (this.stopped) return finish(out, chunk, flushed)
          if (replacement !== undefined) {
            out ??= []
            if (eventStart > flushed) out.push(chunk.subarray(flushed, eventStart))
            out.push(toBuffer(replacement))
            flushed = end
          }
        } else {
          const event = this.release(chunk, 0, end)
          const replacement =
            event.length > this.maxEventBytes
              ? this.oversizedWhole(event, 0, event.length, this.eventAt, sink)
              : sink.event(event, 0, event.length, this.eventAt)
          out ??= []
          if (this.stopped) {
            out.push(event)
            return finish(out, chunk, end)
          }
          out.push(replacement === undefined ? event : toBuffer(replacement))
          flushed = end
        }
        i = end
        continue
      }
      const b = chunk[i]!
      if (isSpace(b)) {
        i++
        continue
      }
      switch (this.phase) {
        case Phase.Start:
          if (b === OPEN_BRACKET) {
            this.phase = Phase.Element
            this.afterOpen = true
            i++
            continue
          }
          if (b === OPEN_BRACE) {
            this.bare = true
            break
          }
          // A byte order mark belongs to no element.
          if (base + i < 3 && b === [0xef, 0xbb, 0xbf][base + i]) {
            i++
            continue
          }
          return this.halt('the body is not a JSON array', chunk, base, i, out, flushed, sink)
        case Phase.Element:
          if (b === CLOSE_BRACKET && this.afterOpen) {
            this.phase = Phase.Done
            i++
            continue
          }
          if (b === COMMA || b === CLOSE_BRACKET) {
            return this.halt('an empty element in the JSON array', chunk, base, i, out, flushed, sink)
          }
          break
        case Phase.Separator:
          if (b === COMMA) this.phase = Phase.Element
          else if (b === CLOSE_BRACKET) this.phase = Phase.Done
          else return this.halt('no comma between elements of the JSON array', chunk, base, i, out, flushed, sink)
          this.afterOpen = false
          i++
          continue
        default:
          return this.halt('bytes after the end of the JSON array', chunk, base, i, out, flushed, sink)
      }
      // An element starts at `i`.
      this.phase = Phase.Value
      this.afterOpen = false
      this.depth = 0
      this.inString = false
      this.escape = false
      this.scalar = b !== OPEN_BRACE && b !== OPEN_BRACKET && b !== QUOTE
      eventStart = i
      this.eventAt = base + i
    }
    if (this.phase !== Phase.Value) return finish(out, chunk, flushed)
    return this.pending(chunk, eventStart >= 0 ? eventStart : 0, out, flushed, sink)
  }

  /**
   * Follows the element in progress through `chunk` from `i`; returns the index just past its last byte,
   * or -1 when it goes on past the chunk (its state is kept for the next one).
   */
  private scan(chunk: Buffer, i: number): number {
    const len = chunk.length
    if (this.scalar) {
      for (; i < len; i++) {
        const c = chunk[i]!
        if (isSpace(c) || c === COMMA || c === CLOSE_BRACKET || c === CLOSE_BRACE) {
          this.scalar = false
          return i
        }
      }
      return -1
    }
    let depth = this.depth
    let inString = this.inString
    let escape = this.escape
    for (; i < len; i++) {
      const c = chunk[i]!
      if (inString) {
        if (escape) escape = false
        else if (c === BACKSLASH) escape = true
        else if (c === QUOTE) {
          inString = false
          if (depth === 0) return this.settle(0, i + 1)
        }
      } else if (c === QUOTE) inString = true
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++
      else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        if (--depth === 0) return this.settle(0, i + 1)
      }
    }
    this.depth = depth
    this.inString = inString
    this.escape = escape
    return -1
  }

  private settle(depth: number, end: number): number {
    this.depth = depth
    this.inString = false
    this.escape = false
    return end
  }

  /** Input this framer cannot follow: the sink is told, and every byte from `chunk[i]` on passes. */
  private halt(
    reason: string,
    chunk: Buffer,
    base: number,
    i: number,
    out: Buffer[] | undefined,
    flushed: number,
    sink: EventSink,
  ): Buffer[] {
    this.stopped = true
    sink.stopped(reason, base + i)
    return finish(out, chunk, flushed)
  }

  end(sink: EventSink): Buffer[] {
    if (this.stopped) return []
    this.busy = true
    try {
      if (this.passing) {
        this.passing = false
        const scanner = this.scanner
        this.scanner = undefined
        scanner?.end()
        return []
      }
      if (this.phase !== Phase.Value || this.heldBytes === 0) return []
      const event = this.release(Buffer.alloc(0), 0, 0)
      // A number at the very end is whole; any other element cut by the end of the body is not JSON, and
      // leaves unread (the response is then recorded as incomplete).
      if (!this.scalar) return [event]
      const replacement = sink.event(event, 0, event.length, this.eventAt)
      return [replacement === undefined || this.stopped ? event : toBuffer(replacement)]
    } finally {
      this.busy = false
    }
  }
}
