/**
 * AWS event stream framing, `application/vnd.amazon.eventstream` (docs/dialects/bedrock-invoke.md#the-event-stream).
 *
 * A message is `total_length` (uint32, big-endian, the whole message), `headers_length`, a CRC of those
 * eight bytes, the headers, the payload and a CRC of everything before it. Frames are cut here from
 * their first four bytes alone, whatever the chunking: the bytes of a frame not yet complete are held
 * as a list of pieces (never rescanned, copied once when it completes); a chunk of whole frames that
 * nothing rewrites leaves as the same Buffer, and every frame that is not rewritten leaves as the bytes
 * that came, never a re-encode. Only a frame whose payload changes is encoded again, with
 * @smithy/eventstream-codec (new lengths, both CRCs), its headers kept.
 *
 * `exception` and `error` frames are the upstream's in-stream errors
 * (docs/dialects/bedrock-invoke.md#in-stream-exceptions): they pass untouched, and the sink hears of them.
 */
import { EventStreamCodec, type Message } from '@smithy/eventstream-codec'
import { fromUtf8, toUtf8 } from '@smithy/util-utf8'
import { NO_NAME, type DecodedEvent, type EventSink, type Framer } from './types.js'
import { toBuffer } from './pieces.js'
import { MAX_TEMPLATE, MAX_WINDOW, simdFrom, simdKernel, TEMPLATE_AT } from './simd.js'
import { pattern, startsWith, type Pattern } from './words.js'
import { Buffer } from '../buffer.js'

/** Prelude (12 bytes) and message CRC (4): the smallest message has no headers and no payload. */
const PRELUDE = 12
const MIN_FRAME = 16

const STRING = 7
const MESSAGE_TYPE = Buffer.from(':message-type')
const EVENT_TYPE = Buffer.from(':event-type')
const EXCEPTION_TYPE = Buffer.from(':exception-type')
const ERROR_CODE = Buffer.from(':error-code')
const EVENT = Buffer.from('event')

const codec = new EventStreamCodec(toUtf8, fromUtf8)

/** One event stream message as a dialect reads it. */
export interface EventStreamEvent extends DecodedEvent {
  /** `:event-type` (e.g. `chunk`, `metadata`), or undefined. */
  name: string | undefined
  /** The payload as UTF-8 text. */
  data: string
  /** The whole frame as it came: decoded by the codec only when it is encoded again. */
  frame: Buffer
}

export class EventStreamFramer implements Framer<EventStreamEvent> {
  readonly kind = 'eventstream' as const
  stopped = false

  private seen = 0 // stream bytes pushed so far
  // The frame in progress: its pieces, their length, and its total length once its first 4 bytes came.
  private readonly held: Buffer[] = []
  private heldBytes = 0
  private need = -1
  // The last frame the sink let pass by a byte test: a frame with the same headers and the same first
  // payload bytes passes without being asked (most frames of a stream are alike: one text delta each).
  // `reach`: how many bytes the last run of such frames of `simdFrom` bytes or more passed (until one has
  // run: many).
  private like: { least: number; headersLength: number; head: Pattern; reach: number; skipped: number } | undefined

  constructor(private readonly maxEventBytes: number) {}

  push(chunk: Buffer, sink: EventSink): Buffer[] {
    if (this.stopped) return [chunk]
    const chunkAt = this.seen
    this.seen += chunk.length
    const out: Buffer[] = []
    let pos = 0
    if (this.heldBytes > 0) {
      pos = this.continueHeld(chunk, chunkAt, sink, out)
      if (pos < 0) return out // still incomplete, or stopped
    }
    // Whole frames in this chunk: untouched runs leave as subarrays (the chunk itself when all of it is).
    let runStart = pos
    const offset = chunk.byteOffset
    while (pos < chunk.length) {
      if (chunk.length - pos < 4) break
      const like = this.like
      if (like !== undefined && chunk.length - pos >= simdFrom) {
        // Frames alike the last one passed, in the SIMD kernel; the frame it stops at goes on below.
        pos = this.alike(like, chunk, pos)
        if (chunk.length - pos < 4) break
      }
      const total = u32(chunk, pos)
      // A frame alike the last one passed is whole, plausible, and passes: nothing else to check.
      if (
        like !== undefined &&
        total >= like.least &&
        total <= this.maxEventBytes &&
        pos + total <= chunk.length &&
        u32(chunk, pos + 4) === like.headersLength &&
        startsWith(chunk, pos + PRELUDE, like.head, offset)
      ) {
        pos += total
        continue
      }
      if (!this.plausible(total, chunk, pos, chunkAt + pos, sink)) {
        if (runStart < pos) out.push(chunk.subarray(runStart, pos))
        out.push(chunk.subarray(pos))
        return out
      }
      if (pos + total > chunk.length) break
      const replacement = this.frame(chunk, pos, pos + total, chunkAt + pos, sink)
      if (replacement) {
        if (runStart < pos) out.push(chunk.subarray(runStart, pos))
        out.push(replacement)
        runStart = pos + total
      }
      pos += total
      if (this.stopped) break
    }
    if (this.stopped) {
      if (runStart < chunk.length) out.push(runStart === 0 ? chunk : chunk.subarray(runStart))
      return out
    }
    if (runStart < pos) out.push(runStart === 0 && pos === chunk.length ? chunk : chunk.subarray(runStart, pos))
    if (pos < chunk.length) this.hold(chunk.subarray(pos))
    return out
  }

  /**
   * Where the run of frames from `pos` alike the last one passed ends, compared in the SIMD kernel
   * (docs/architecture.md#the-simd-kernel): `pos` itself where the kernel cannot be made, and where the
   * last such run stopped within a few frames (frames of two kinds in turn), as copying a window would
   * cost more than the compares in JavaScript.
   */
  private alike(like: NonNullable<EventStreamFramer['like']>, chunk: Buffer, pos: number): number {
    const reach = like.reach
    if (reach < simdFrom / 4 || like.head.bytes.length > MAX_TEMPLATE) {
      // Asked again every eighth time: the frames may have become alike.
      if (++like.skipped % 8 === 0) like.reach = MAX_WINDOW
      return pos
    }
    const kernel = simdKernel()
    if (kernel === null) return pos
    if (kernel.placed !== like) {
      kernel.memory.set(like.head.bytes, TEMPLATE_AT)
      kernel.placed = like
    }
    const most = this.maxEventBytes < 0xffffffff ? this.maxEventBytes : 0xffffffff
    const end = kernel.frames(
      chunk,
      pos,
      chunk.length,
      reach,
      like.least,
      most,
      like.headersLength,
      like.head.bytes.length,
    )
    like.reach = end - pos
    return end
  }

  /** Feeds the start of `chunk` to the held frame; returns where whole frames resume, or -1. */
  private continueHeld(chunk: Buffer, chunkAt: number, sink: EventSink, out: Buffer[]): number {
    const frameAt = chunkAt - this.heldBytes
    if (this.need < 0) {
      // The total length is the frame's first four bytes, which may themselves come in pieces.
      const missing = 4 - this.heldBytes
      if (chunk.length < missing) {
        this.hold(chunk)
        return -1
      }
      const head = Buffer.concat([...this.held, chunk.subarray(0, missing)])
      const total = head.readUInt32BE(0)
      if (!this.plausible(total, head, 0, frameAt, sink)) {
        out.push(...this.held.splice(0), chunk)
        this.heldBytes = 0
        return -1
      }
      this.need = total
    }
    const missing = this.need - this.heldBytes
    if (chunk.length < missing) {
      this.hold(chunk)
      return -1
    }
    const frame = Buffer.concat([...this.held, chunk.subarray(0, missing)], this.need)
    const pieces = this.held.splice(0)
    this.heldBytes = 0
    this.need = -1
    const replacement = this.frame(frame, 0, frame.length, frameAt, sink)
    // An untouched frame leaves as the pieces that came, not a copy.
    if (replacement) out.push(replacement)
    else out.push(...pieces, chunk.subarray(0, missing))
    if (this.stopped) {
      if (missing < chunk.length) out.push(chunk.subarray(missing))
      return -1
    }
    return missing
  }

  private hold(piece: Buffer): void {
    this.held.push(piece)
    this.heldBytes += piece.length
    if (this.need < 0 && this.heldBytes >= 4) {
      // The length came whole in this piece (or the pieces before it): read it once, here.
      const head = this.held.length === 1 ? piece : Buffer.concat(this.held)
      this.need = head.readUInt32BE(0)
    }
  }

  /**
   * A length no event stream message has, or one over the bound, means the rest cannot be followed
   * frame by frame: the framer stops and every byte from here passes (fail open).
   */
  private plausible(total: number, buf: Buffer, pos: number, at: number, sink: EventSink): boolean {
    let problem: string | undefined
    if (total < MIN_FRAME) problem = `event stream message length ${total} is below ${MIN_FRAME}`
    else if (total > this.maxEventBytes)
      problem = `event stream message of ${total} bytes is over maxEventBytes (${this.maxEventBytes})`
    else if (buf.length - pos >= 8 && u32(buf, pos + 4) > total - MIN_FRAME) {
      problem = 'event stream headers longer than their message'
    }
    if (problem === undefined) return true
    this.stopped = true
    sink.stopped(problem, at)
    return false
  }

  /** One whole frame `buf[start, end)`: an upstream error is reported and passes; an event goes to the sink. */
  private frame(buf: Buffer, start: number, end: number, at: number, sink: EventSink): Buffer | undefined {
    const like = this.like
    if (
      like !== undefined &&
      end - start >= like.least &&
      u32(buf, start + 4) === like.headersLength &&
      startsWith(buf, start + PRELUDE, like.head)
    ) {
      return undefined
    }
    const messageType = header(buf, start, MESSAGE_TYPE)
    if (messageType !== -1 && !equals(buf, messageType, valueEnd(buf, messageType), EVENT)) {
      const kind = buf.toString('utf8', messageType, valueEnd(buf, messageType))
      const type = header(buf, start, kind === 'exception' ? EXCEPTION_TYPE : ERROR_CODE)
      sink.upstreamError?.(type !== -1 ? buf.toString('utf8', type, valueEnd(buf, type)) : kind, at)
      return undefined
    }
    const replacement = sink.event(buf, start, end, at)
    if (replacement) return toBuffer(replacement)
    let decided = sink.passedBy ?? -1
    if (decided === 0) decided = PRELUDE + u32(buf, start + 4) // the name decided: the headers did
    if (decided > PRELUDE && decided + 4 <= end - start) {
      this.like = {
        least: decided + 4, // and its CRC
        headersLength: u32(buf, start + 4),
        head: pattern(buf.subarray(start + PRELUDE, start + decided)),
        reach: MAX_WINDOW,
        skipped: 0,
      }
    }
    return undefined
  }

  end(_sink: EventSink): Buffer[] {
    // A frame cut short is no event: its bytes leave as they came; the stream reads as cut before its end.
    if (this.stopped) return []
    const rest = this.held.splice(0)
    this.heldBytes = 0
    this.need = -1
    return rest
  }

  stop(): Buffer[] {
    this.stopped = true
    const rest = this.held.splice(0)
    this.heldBytes = 0
    this.need = -1
    return rest
  }

  matchName(buf: Buffer, start: number, _end: number, names: readonly Buffer[]): number {
    const value = header(buf, start, EVENT_TYPE)
    if (value === -1) return NO_NAME
    const end = valueEnd(buf, value)
    for (let n = 0; n < names.length; n++) if (equals(buf, value, end, names[n]!)) return n
    return -1
  }

  /**
   * The name and payload, read straight from the frame's bytes: every `chunk` frame is decoded to be
   * byte-tested, and the codec (which checks both CRCs and builds every header) costs more than the rest
   * of reading together, and a CRC check on every frame read costs as much again. The CRCs are checked
   * when a frame is encoded again: one whose CRCs do not hold leaves as it came, never re-encoded with
   * CRCs that would make a corrupted frame look whole (docs/dialects/bedrock-invoke.md#the-event-stream).
   */
  decode(buf: Buffer, start: number, end: number): EventStreamEvent | undefined {
    if (end - start < PRELUDE + 4) return undefined
    const payloadAt = start + PRELUDE + u32(buf, start + 4)
    if (payloadAt > end - 4) return undefined
    const type = header(buf, start, EVENT_TYPE)
    return {
      name: type !== -1 ? buf.toString('utf8', type, valueEnd(buf, type)) : undefined,
      data: buf.toString('utf8', payloadAt, end - 4),
      frame: buf.subarray(start, end),
    }
  }

  encode(buf: Buffer, start: number, end: number, event: EventStreamEvent, data: string): Buffer {
    let message: Message
    try {
      message = codec.decode(event.frame)
    } catch {
      return buf.subarray(start, end) // CRCs that do not hold: the frame leaves as it came
    }
    return toBuffer(codec.encode({ headers: message.headers, body: fromUtf8(data) }))
  }
}

/** Where the payload of the frame at `start` begins (after its prelude and headers). */
export function payloadStart(buf: Buffer, start: number): number {
  return start + PRELUDE + u32(buf, start + 4)
}

/**
 * The value range of the string header `name` of the frame at `start`, or undefined. A plain walk over
 * the header bytes (docs/dialects/bedrock-invoke.md#the-event-stream): each header is a name length
 * (uint8), the name, a value type (uint8) and a value whose size follows from the type.
 */
function header(buf: Buffer, start: number, name: Buffer): number {
  let pos = start + PRELUDE
  const stop = pos + u32(buf, start + 4)
  if (stop > buf.length) return -1
  while (pos < stop) {
    const nameLength = buf[pos]!
    const nameAt = pos + 1
    const typeAt = nameAt + nameLength
    if (typeAt >= stop) return -1
    const type = buf[typeAt]!
    let valueAt = typeAt + 1
    let valueEnd: number
    switch (type) {
      case 0:
      case 1:
        valueEnd = valueAt
        break
      case 2:
        valueEnd = valueAt + 1
        break
      case 3:
        valueEnd = valueAt + 2
        break
      case 4:
        valueEnd = valueAt + 4
        break
      case 5:
      case 8:
        valueEnd = valueAt + 8
        break
      case 6:
      case STRING:
        if (valueAt + 2 > stop) return -1
        valueEnd = valueAt + 2 + ((buf[valueAt]! << 8) | buf[valueAt + 1]!)
        valueAt += 2
        break
      case 9:
        valueEnd = valueAt + 16
        break
      default:
        return -1
    }
    if (valueEnd > stop) return -1
    if (type === STRING && nameLength === name.length && equals(buf, nameAt, typeAt, name)) return valueAt
    pos = valueEnd
  }
  return -1
}

/** The end of the string header value that starts at `valueAt` (its length is the two bytes before). */
function valueEnd(buf: Buffer, valueAt: number): number {
  return valueAt + ((buf[valueAt - 2]! << 8) | buf[valueAt - 1]!)
}

/** A big-endian uint32, without Buffer#readUInt32BE's argument checks (the hot path reads two per frame). */
function u32(buf: Buffer, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0
}

function equals(buf: Buffer, from: number, to: number, bytes: Buffer): boolean {
  if (to - from !== bytes.length) return false
  for (let i = 0; i < bytes.length; i++) if (buf[from + i] !== bytes[i]) return false
  return true
}
