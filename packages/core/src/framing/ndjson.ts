/**
 * Newline-delimited JSON, each line an event (docs/transport.md#ndjson-streams): Ollama's native
 * `/api/chat` and `/api/generate` stream one JSON object per line as `application/x-ndjson`
 * (docs/dialects/ollama.md#stream-encodings).
 *
 * A line is handed to the sink as soon as its LF arrives. The LF, a CR before it, blank lines, and every
 * untouched line leave as they came; a chunk with nothing to replace comes back as the same Buffer. Each
 * byte is searched once: a line held across chunks is never rescanned, and is copied once, when it
 * completes. A last line without its LF is still an event at the end of the body, unless it is cut (it
 * does not end in `}`): then it leaves unread and the response is recorded incomplete.
 */
import type { EventSink, Framer } from './types.js'
import { finish, HeldEventFramer, toBuffer } from './pieces.js'
import { Buffer, indexOf } from '../buffer.js'

const LF = 0x0a
const CR = 0x0d
const CLOSE_BRACE = 0x7d

const isSpace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09

/** `buf[start, end)` holds only whitespace (looked at until the first other byte, a `{` in practice). */
function blank(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (!isSpace(buf[i]!)) return false
  return true
}

export class NdjsonFramer extends HeldEventFramer implements Framer {
  readonly kind = 'ndjson' as const

  private seen = 0 // stream bytes pushed so far
  // The line in progress, held: its pieces, their length, its stream offset.
  // The line in progress grew over the bound: its bytes leave as they come, read by `scanner`, if any.

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
    let i = 0
    if (this.passing || this.heldBytes > 0) {
      // The line began in an earlier chunk.
      const nl = indexOf.call(chunk, LF, 0)
      if (nl === -1) return this.pendingLine(chunk, 0, base, out, flushed, sink)
      if (this.passing) {
        this.passing = false
        const scanner = this.scanner
        this.scanner = undefined
        if (scanner) {
          scanner.write(chunk, 0, nl)
          scanner.end()
        }
      } else {
        const line = this.release(chunk, 0, nl)
        out = this.emit(line, this.eventAt, sink)
        if (this.stopped) return finish(out, chunk, nl)
        flushed = nl
      }
      i = nl + 1
    }
    while (i < len) {
      const nl = indexOf.call(chunk, LF, i)
      if (nl === -1) return this.pendingLine(chunk, i, base, out, flushed, sink)
      const end = nl > i && chunk[nl - 1] === CR ? nl - 1 : nl
      if (!blank(chunk, i, end)) {
        const replacement =
          end - i > this.maxEventBytes
            ? this.oversizedWhole(chunk, i, end, base + i, sink)
            : sink.event(chunk, i, end, base + i)
        if (this.stopped) return finish(out, chunk, flushed)
        if (replacement !== undefined) {
          out ??= []
          if (i > flushed) out.push(chunk.subarray(flushed, i))
          out.push(toBuffer(replacement))
          flushed = end
        }
      }
      i = nl + 1
    }
    return finish(out, chunk, flushed)
  }

  /**
   * A whole line that was held, `line` (its CR, if any, included; its LF not): handed to the sink, and
   * returned as the pieces to send, replaced or as it came.
   */
  private emit(line: Buffer, at: number, sink: EventSink): Buffer[] {
    const end = line.length > 0 && line[line.length - 1] === CR ? line.length - 1 : line.length
    if (blank(line, 0, end)) return [line]
    const replacement =
      end > this.maxEventBytes ? this.oversizedWhole(line, 0, end, at, sink) : sink.event(line, 0, end, at)
    if (replacement === undefined || this.stopped) return [line]
    return end === line.length ? [toBuffer(replacement)] : [toBuffer(replacement), line.subarray(end)]
  }

  /** The line from `chunk[from]` goes on past the chunk: its offset is noted, then as for every held event. */
  private pendingLine(
    chunk: Buffer,
    from: number,
    base: number,
    out: Buffer[] | undefined,
    flushed: number,
    sink: EventSink,
  ): Buffer[] {
    if (!this.passing && this.heldBytes === 0) this.eventAt = base + from
    return this.pending(chunk, from, out, flushed, sink)
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
      if (this.heldBytes === 0) return []
      const line = this.release(Buffer.alloc(0), 0, 0)
      // A last line without its LF is an event when it is whole; one cut by the end of the body (it does
      // not close its object) is not JSON, and leaves unread.
      let last = line.length - 1
      while (last >= 0 && isSpace(line[last]!)) last--
      if (last < 0 || line[last] !== CLOSE_BRACE) return [line]
      return this.emit(line, this.eventAt, sink)
    } finally {
      this.busy = false
    }
  }
}
