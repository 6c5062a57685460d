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

// Chunks are compared through one view of the memory they lie in. One view for the whole process, so
// that no memory is kept alive by more than this one slot (and the chunk it was last asked for).
let viewedChunk: Buffer | undefined
let viewed: ArrayBufferLike | undefined
let view: DataView | undefined

/**
 * A DataView of all the memory `buf` lies in: `buf[i]` is at `buf.byteOffset + i` in it. It is kept
 * while chunks in the same memory are compared (the slices of one socket read, Buffers from Node's
 * pool): making a DataView costs 0.1–0.25 µs, as much as comparing a chunk of one event. Asked again
 * for the same chunk (once per frame or event in it), it answers without reading `buf.buffer`, a
 * getter TurboFan calls rather than inlines.
 */
export function viewOf(buf: Buffer): DataView {
  if (buf === viewedChunk) return view!
  const memory = buf.buffer
  if (memory !== viewed || view === undefined) {
    viewed = memory
    view = new DataView(memory)
  }
  viewedChunk = buf
  return view
}

/**
 * `buf` from `at` begins with `p` (the caller knows `buf` has as many bytes from `at`). `offset` is
 * `buf.byteOffset`, which a caller testing many frames of one chunk reads once.
 */
export function startsWith(buf: Buffer, at: number, p: Pattern, offset: number = buf.byteOffset): boolean {
  const bytes = p.bytes
  let i = 0
  if (p.exact) {
    const v = viewOf(buf)
    const base = offset + at
    const words = p.words
    const n = words.length
    // Two words a turn: half the loop's own checks.
    for (; i + 1 < n; i += 2) {
      const from = base + i * 8
      if (v.getFloat64(from, true) !== words[i] || v.getFloat64(from + 8, true) !== words[i + 1]) return false
    }
    if (i < n && v.getFloat64(base + i * 8, true) !== words[i]) return false
    i = n * 8
  }
  for (; i < bytes.length; i++) if (buf[at + i] !== bytes[i]) return false
  return true
}
