/**
 * Byte patterns compared eight bytes at a time: a frame's test is most of what a stream of small binary
 * frames costs (one frame per token), and a DataView's 64-bit loads compared as doubles take a quarter of
 * the time of a byte loop (bench/README.md, row 1h).
 */
import { Buffer } from '../buffer.js'

/**
 * A byte string as little-endian doubles and the bytes after the last whole one. The doubles are in a
 * plain array: TurboFan loads from one without the detached-buffer check a typed array's loads need,
 * and it costs no allocation outside V8's heap (docs/architecture.md#event-templates).
 */
export interface Pattern {
  readonly bytes: Buffer
  readonly words: readonly number[]
  /**
   * Doubles compare equal exactly when their bits are equal except for NaNs (never equal) and the two
   * zeros (equal to each other): a pattern with a word that reads as either is compared byte by byte.
   */
  readonly exact: boolean
}

export function pattern(bytes: Uint8Array): Pattern {
  const copy = Buffer.from(bytes)
  const words: number[] = []
  let exact = true
  for (let at = 0; at + 8 <= copy.length; at += 8) {
    const word = copy.readDoubleLE(at)
    if (word === 0 || word !== word) exact = false
    words.push(word)
  }
  return { bytes: copy, words, exact }
}

// The frames of a chunk are compared through one view of it. One view for the whole process, so that no
// chunk is kept alive by more than this one slot.
let viewed: Buffer | undefined
let view: DataView | undefined

/** A DataView of `buf`, kept while the same chunk is compared. */
export function viewOf(buf: Buffer): DataView {
  if (buf !== viewed || view === undefined) {
    viewed = buf
    view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }
  return view
}

/** `buf` from `at` begins with `p` (the caller knows `buf` has as many bytes from `at`). */
export function startsWith(buf: Buffer, at: number, p: Pattern): boolean {
  const bytes = p.bytes
  let i = 0
  if (p.exact) {
    const v = viewOf(buf)
    const words = p.words
    const n = words.length
    // Two words a turn: half the loop's own checks.
    for (; i + 1 < n; i += 2) {
      const from = at + i * 8
      if (v.getFloat64(from, true) !== words[i] || v.getFloat64(from + 8, true) !== words[i + 1]) return false
    }
    if (i < n && v.getFloat64(at + i * 8, true) !== words[i]) return false
    i = n * 8
  }
  for (; i < bytes.length; i++) if (buf[at + i] !== bytes[i]) return false
  return true
}
