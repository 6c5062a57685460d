import { NO_NAME, type DecodedEvent, type EventSink, type PayloadScanner } from './types.js'
import { Buffer } from '../buffer.js'

/**
 * What every framer does with the pieces of a chunk: hand back bytes as Buffers without copying, return
 * what is ready, and join the pieces of an event that spans chunks, copied once.
 */

/** The same memory as a Buffer: no copy. */
export const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/** Where `push` returns: what `out` holds, then `chunk` from `from` (the chunk itself when nothing else). */
export function finish(out: Buffer[] | undefined, chunk: Buffer, from: number): Buffer[] {
  if (out === undefined) return from === 0 ? [chunk] : from < chunk.length ? [chunk.subarray(from)] : []
  if (from < chunk.length) out.push(from === 0 ? chunk : chunk.subarray(from))
  return out
}

/**
 * The `held` pieces (`heldBytes` long) and `chunk[from, to)` as one buffer, copied once. Empties `held`;
 * the caller resets its byte count.
 */
export function joinHeld(held: Buffer[], heldBytes: number, chunk: Buffer, from: number, to: number): Buffer {
  if (to > from) held.push(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to))
  const event = held.length === 1 ? held[0]! : Buffer.concat(held, heldBytes + to - from)
  held.length = 0
  return event
}

/**
 * What a framer of self-delimited events (a streamed JSON array's elements, NDJSON lines) keeps between
 * chunks: the event in progress, held in pieces and copied once when it completes, or, once it outgrows
 * the bound, passing as it comes with its payload read on the way by the sink's scanner.
 */
export abstract class HeldEventFramer {
  stopped = false
  protected readonly held: Buffer[] = []
  protected heldBytes = 0
  /** Stream offset of the event in progress. */
  protected eventAt = 0
  protected passing = false
  protected scanner: PayloadScanner | undefined
  /** Inside push or end: bytes held when a sink stops the framer leave with what push or end returns. */
  protected busy = false

  constructor(protected readonly maxEventBytes: number) {}

  /**
   * The event from `chunk[from]` goes on past the chunk: held (a copy when it starts part-way, so that a
   * few bytes never keep a whole chunk alive), or, over the bound, passing from here on.
   */
  protected pending(
    chunk: Buffer,
    from: number,
    out: Buffer[] | undefined,
    flushed: number,
    sink: EventSink,
  ): Buffer[] {
    const len = chunk.length
    if (this.passing) {
      this.scanner?.write(chunk, from, len)
      return finish(out, chunk, flushed)
    }
    if (this.heldBytes + len - from > this.maxEventBytes) {
      const head = this.heldBytes > 0 ? this.release(chunk, from, len) : chunk
      const start = head === chunk ? from : 0
      const scanner = sink.oversized(head, start, head.length, this.eventAt)
      if (!this.stopped) {
        this.passing = true
        this.scanner = scanner
        scanner?.write(head, start, head.length)
      }
      if (head === chunk) return finish(out, chunk, flushed)
      return finish([head], chunk, len)
    }
    if (from > 0) {
      this.held.push(Buffer.from(chunk.subarray(from)))
      this.heldBytes = len - from
      out ??= []
      if (from > flushed) out.push(chunk.subarray(flushed, from))
      return out
    }
    this.held.push(chunk)
    this.heldBytes += len
    return out ?? []
  }

  /** A complete event over the bound: it leaves as it came, its payload read by the sink's scanner. */
  protected oversizedWhole(buf: Buffer, start: number, end: number, at: number, sink: EventSink): undefined {
    const scanner = sink.oversized(buf, start, end, at)
    if (scanner === undefined || this.stopped) return undefined
    scanner.write(buf, start, end)
    scanner.end()
    return undefined
  }

  /** The held pieces and `chunk[from, to)` as one buffer, copied once; nothing is held afterwards. */
  protected release(chunk: Buffer, from: number, to: number): Buffer {
    const event = joinHeld(this.held, this.heldBytes, chunk, from, to)
    this.heldBytes = 0
    return event
  }

  stop(): Buffer[] {
    this.stopped = true
    if (this.busy) return []
    const held = this.held.slice()
    this.held.length = 0
    this.heldBytes = 0
    return held
  }

  /** Elements and lines have no names. */
  matchName(): number {
    return NO_NAME
  }

  decode(buf: Buffer, start: number, end: number): DecodedEvent {
    return { name: undefined, data: buf.toString('utf8', start, end) }
  }

  encode(_buf: Buffer, _start: number, _end: number, _event: DecodedEvent, data: string): Buffer {
    return Buffer.from(data, 'utf8')
  }
}
