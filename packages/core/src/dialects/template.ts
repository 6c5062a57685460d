import { Buffer } from '../buffer.js'
import { viewOf } from '../framing/words.js'
import { MAX_TEMPLATE, MAX_WINDOW, simdFrom, simdKernel, type SimdKernel, TEMPLATE_AT } from '../framing/simd.js'

/**
 * Event templates (docs/architecture.md#event-templates). A data-only SSE stream (OpenAI Chat) sends event
 * after event of one shape: the same id, model and fingerprint, `"finish_reason":null` and
 * `"usage":null`, and only the text and the obfuscation padding differ. A template is the bytes of one
 * such event the reader let pass, with the string values of the members its dialect names free (their
 * contents never change what the reader decides). An event that is the template's bytes with other
 * strings in those places has the same JSON structure, keys and non-string values, so it passes too:
 * it is compared eight bytes at a time instead of being searched for every needle.
 */

const QUOTE = 0x22
const BACKSLASH = 0x5c
const LF = 0x0a
const CR = 0x0d
const SPACE = 0x20
const TAB = 0x09
const COLON = 0x3a
const COMMA = 0x2c
const LBRACE = 0x7b
const RBRACE = 0x7d
const LBRACKET = 0x5b
const RBRACKET = 0x5d
const MINUS = 0x2d
const PLUS = 0x2b
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39
const U = 0x75

const DATA = Buffer.from('data:')
const TRUE = Buffer.from('true')
const FALSE = Buffer.from('false')
const NULL = Buffer.from('null')

/** Nesting deeper than this is not learnt (the lexer below recurses). */
const MAX_DEPTH = 32

// The characters that may follow a backslash in a JSON string, other than `u` (RFC 8259 §7).
const ESCAPES = new Uint8Array(128)
for (const c of '"\\/bfnrt') ESCAPES[c.charCodeAt(0)] = 1

const isHex = (b: number | undefined): boolean =>
  b !== undefined && ((b >= ZERO && b <= NINE) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x66))

/**
 * Where the body of a JSON string that starts at `p` ends (its closing quote), before `limit`; -1 when it
 * does not end there, or is not valid JSON text: a control byte (a line end among them, so a string never
 * spans SSE lines) or an escape JSON does not have.
 */
export function stringEnd(buf: Buffer, p: number, limit: number): number {
  while (p < limit) {
    const b = buf[p]!
    if (b === QUOTE) return p
    if (b < SPACE) return -1
    if (b === BACKSLASH) {
      const e = p + 1 < limit ? buf[p + 1]! : -1
      if (e === U) {
        if (p + 6 > limit || !isHex(buf[p + 2]) || !isHex(buf[p + 3]) || !isHex(buf[p + 4]) || !isHex(buf[p + 5]))
          return -1
        p += 6
        continue
      }
      if (e < 0 || e >= 128 || ESCAPES[e] === 0) return -1
      p += 2
      continue
    }
    p++
  }
  return -1
}

/**
 * `stringEnd` four bytes at a time, through `view` (a view of the memory `buf` lies in, as `viewOf` makes
 * it, in which `buf[i]` is at `base + i`; the caller reads `buf.byteOffset` once, not per string): the
 * first byte in each group of
 * four that is a quote, a backslash or a control byte is found with bit operations (an exact test for
 * the lowest such byte: a borrow only ever runs up from a byte that is one), and only a backslash or a
 * control byte, or the last few bytes before `limit`, are left to `stringEnd`.
 */
export function stringEndByWords(buf: Buffer, view: DataView, base: number, p: number, limit: number): number {
  for (; p + 4 <= limit; p += 4) {
    const x = view.getInt32(base + p, true)
    const quote = x ^ 0x22222222
    const backslash = x ^ 0x5c5c5c5c
    const found =
      (((quote - 0x01010101) & ~quote) | ((backslash - 0x01010101) & ~backslash) | ((x - 0x20202020) & ~x)) & 0x80808080
    if (found !== 0) {
      // The lowest flagged byte: the lowest set bit's position, in bytes.
      p += (31 - Math.clz32(found & -found)) >>> 3
      return buf[p] === QUOTE ? p : stringEnd(buf, p, limit)
    }
  }
  return stringEnd(buf, p, limit)
}

/** One passing event, with the string values of some members left free. */
export class EventTemplate {
  /**
   * The bytes around the free strings, in parts: part i ends with the opening quote of the i-th free
   * string and is `lengths[i]` bytes long. None of its bytes is compared alone:
   * - a part of eight bytes or more as little-endian doubles, `words[wordsFrom[i]]` to
   *   `words[wordsFrom[i + 1] - 1]`: its whole words from its start, then one that ends where the part
   *   ends (it overlaps the one before unless the length is a multiple of eight);
   * - one of four to seven bytes as two 32-bit integers, `ints[2i]` (its first four bytes) and
   *   `ints[2i + 1]` (its last four);
   * - a shorter one byte by byte, from `ints[2i]`, which holds its bytes from the lowest (none is learnt
   *   from JSON: a part between two free strings is at least `","k":"`, the last at least `"}` and its
   *   blank line).
   */
  private constructor(
    private readonly lengths: readonly number[],
    private readonly words: readonly number[],
    private readonly wordsFrom: readonly number[],
    private readonly ints: readonly number[],
    /**
     * The event ends in LF LF, so neither it nor any event that matches has a CR in it (no free string
     * may hold a control byte): where a match ends, an event ends, whatever the line ends around it.
     */
    readonly lfOnly: boolean,
    /** What the kernel's memory takes for it: its part lengths and its parts' bytes. */
    private readonly bytes: number,
    /**
     * Which free places hold a count (a non-negative integer, `counts[i]` for the i-th) rather than a
     * string; undefined when none does (the kernel compares only templates without counts).
     */
    private readonly counts: readonly boolean[] | undefined,
  ) {}

  /** How many events {@link run} passed in its last call. */
  ran = 0

  /** How many bytes the last run of {@link simdFrom} bytes or more passed (until one has run: many). */
  private reach = MAX_WINDOW

  /**
   * The end of the event that starts at `at` when it is this template's bytes with any valid strings in
   * the free places, the last of its bytes before `limit`; -1 when it is not.
   */
  match(buf: Buffer, at: number, limit: number): number {
    return this.matchIn(buf, viewOf(buf), buf.byteOffset, at, limit)
  }

  /** {@link match} through `view`, a view of the memory `buf` lies in that the caller keeps (as `viewOf`'s). */
  matchView(buf: Buffer, view: DataView, at: number, limit: number): number {
    return this.matchIn(buf, view, buf.byteOffset, at, limit)
  }

  /**
   * {@link match}, and where the event's free strings lie: each one's first byte and closing quote, in
   * `cuts[2i]` and `cuts[2i + 1]`, in the order the event has them ({@link strings} of them).
   */
  matchCuts(buf: Buffer, at: number, limit: number, cuts: number[]): number {
    return this.matchIn(buf, viewOf(buf), buf.byteOffset, at, limit, cuts)
  }

  /**
   * {@link matchCuts} through `view`, a view of the memory `buf` lies in that the caller keeps (as
   * `viewOf`'s): for a run of events in one chunk, the view is made once.
   */
  matchCutsView(buf: Buffer, view: DataView, at: number, limit: number, cuts: number[]): number {
    return this.matchIn(buf, view, buf.byteOffset, at, limit, cuts)
  }

  /** How many free places (strings and counts) the template's events have. */
  get strings(): number {
    return this.lengths.length - 1
  }

  /** The i-th free place holds a count, not a string: its cut is the integer's first and after-last byte. */
  isCount(i: number): boolean {
    return this.counts?.[i] === true
  }

  /** Where the run of events from `at` that match ends (`at` when the first does not); {@link ran} says how many. */
  run(buf: Buffer, at: number, limit: number): number {
    if (limit - at < simdFrom || this.bytes > MAX_TEMPLATE || this.counts !== undefined)
      return this.runHere(buf, at, limit)
    const kernel = simdKernel()
    if (kernel === null) return this.runHere(buf, at, limit)
    // A run that stopped within a few events last time is likely to again (a stream of events of two
    // shapes in turn): then the compare in JavaScript costs less than copying a window.
    const end = this.reach < simdFrom / 4 ? this.runHere(buf, at, limit) : this.runKernel(kernel, buf, at, limit)
    this.reach = end - at
    return end
  }

  /** {@link run} in JavaScript. */
  private runHere(buf: Buffer, at: number, limit: number): number {
    const view = viewOf(buf)
    const base = buf.byteOffset
    let ran = 0
    for (;;) {
      const end = this.matchIn(buf, view, base, at, limit)
      if (end === -1) break
      ran++
      at = end
    }
    this.ran = ran
    return at
  }

  /**
   * {@link run} in the SIMD kernel, over windows of the chunk copied into its memory: the first
   * `SIMD_FROM_BYTES` long (or as long as the last run reached), each next one from the event the last
   * was cut off in and twice as long (up to {@link MAX_WINDOW}), so a run that stops early copies little
   * and a long one copies each byte about once. An event longer than the longest window is left to the compare in JavaScript.
   */
  private runKernel(kernel: SimdKernel, buf: Buffer, at: number, limit: number): number {
    if (kernel.placed !== this) this.place(kernel)
    at = kernel.events(buf, at, limit, this.reach, this.lengths.length)
    let ran = kernel.ran
    if (kernel.long) {
      at = this.runHere(buf, at, limit)
      ran += this.ran
    }
    this.ran = ran
    return at
  }

  /** Writes this template into the kernel's memory: its part lengths, then its parts' bytes. */
  private place(kernel: SimdKernel): void {
    const view = kernel.view
    const lengths = this.lengths
    const words = this.words
    const wordsFrom = this.wordsFrom
    const ints = this.ints
    let at = TEMPLATE_AT + 4 * lengths.length
    for (let i = 0; i < lengths.length; i++) {
      const length = lengths[i]!
      view.setInt32(TEMPLATE_AT + 4 * i, length, true)
      if (length >= 8) {
        // The words were read from the part's bytes (none a NaN, whose bits a write may change), the last
        // one ending where the part ends.
        const lastWord = wordsFrom[i + 1]! - 1
        for (let w = wordsFrom[i]!; w < lastWord; w++) view.setFloat64(at + 8 * (w - wordsFrom[i]!), words[w]!, true)
        view.setFloat64(at + length - 8, words[lastWord]!, true)
      } else if (length >= 4) {
        view.setInt32(at, ints[2 * i]!, true)
        view.setInt32(at + length - 4, ints[2 * i + 1]!, true)
      } else {
        for (let k = 0; k < length; k++) view.setUint8(at + k, (ints[2 * i]! >>> (8 * k)) & 0xff)
      }
      at += length
    }
    kernel.placed = this
  }

  /**
   * `buf[i]` is at `base + i` in `view`. With `cuts`, each free string's first byte and closing quote go
   * there (`cuts[2i]`, `cuts[2i + 1]`), as far as the compare got.
   */
  private matchIn(buf: Buffer, view: DataView, base: number, at: number, limit: number, cuts?: number[]): number {
    const lengths = this.lengths
    const words = this.words
    const wordsFrom = this.wordsFrom
    const last = lengths.length - 1
    let p = at
    for (let i = 0; ; i++) {
      const length = lengths[i]!
      if (p + length > limit) return -1
      if (length >= 8) {
        // Four words a turn: a quarter of the loop's own checks.
        let w = wordsFrom[i]!
        const lastWord = wordsFrom[i + 1]! - 1
        let q = base + p
        for (; w + 3 < lastWord; w += 4, q += 32) {
          if (
            view.getFloat64(q, true) !== words[w] ||
            view.getFloat64(q + 8, true) !== words[w + 1] ||
            view.getFloat64(q + 16, true) !== words[w + 2] ||
            view.getFloat64(q + 24, true) !== words[w + 3]
          ) {
            return -1
          }
        }
        for (; w < lastWord; w++, q += 8) if (view.getFloat64(q, true) !== words[w]) return -1
        if (view.getFloat64(base + p + length - 8, true) !== words[lastWord]) return -1
      } else if (length >= 4) {
        const ints = this.ints
        const from = base + p
        if (view.getInt32(from, true) !== ints[2 * i] || view.getInt32(from + length - 4, true) !== ints[2 * i + 1])
          return -1
      } else {
        const bytes = this.ints[2 * i]!
        for (let k = 0; k < length; k++) if (buf[p + k] !== ((bytes >>> (8 * k)) & 0xff)) return -1
      }
      p += length
      if (i === last) return p
      const from = p
      p = this.counts?.[i] === true ? countEnd(buf, p, limit) : stringEndByWords(buf, view, base, p, limit)
      if (p === -1) return -1
      if (cuts !== undefined) {
        cuts[2 * i] = from
        cuts[2 * i + 1] = p
      }
    }
  }

  /**
   * The template of the event `buf[start, end)`, which its reader let pass: the string value of each
   * member named in `free` becomes free. Undefined for an event that is not one `data:` line of valid
   * JSON followed by its blank line, after at most an `event:` line (compared as it is, like the rest of
   * the bytes around the free strings): only there is what a free string may hold bound to one JSON string.
   */
  static learn(
    buf: Buffer,
    start: number,
    end: number,
    free: ReadonlySet<string>,
    counts?: ReadonlySet<string>,
  ): EventTemplate | undefined {
    const data = dataLine(buf, start, end)
    if (data === -1) return undefined
    // The event ends in the blank line after its one line: the lexer below reads the line to there, and
    // JSON has no line end outside a string, nor a control byte inside one, so it has no other.
    let lineEnd = end - 2
    if (lineEnd < data + DATA.length || !isEventEnd(buf, lineEnd, end)) {
      lineEnd = end - 4
      if (lineEnd < data + DATA.length || !isEventEnd(buf, lineEnd, end)) return undefined
    }
    const view = viewOf(buf)
    const base = buf.byteOffset
    const lexer = LEXER.reset(buf, view, base, lineEnd, freeKeys(free), counts && freeKeys(counts))
    let p = lexer.space(data + DATA.length)
    p = lexer.value(p, 0)
    const valid = p !== -1 && lexer.space(p) === lineEnd
    lexer.release()
    if (!valid) return undefined
    // The parts lie between the free strings: [start, cut 0), [cut 1, cut 2), …, [cut 2n-1, end).
    const cuts = lexer.cuts
    const parts = (cuts.length >> 1) + 1
    // Plain arrays, not typed ones: a template's Float64Array is too large for V8 to keep on its heap,
    // and allocating one outside it cost about a microsecond, as long as the rest of the learning; and
    // TurboFan loads from a plain array of doubles without checking for a detached buffer, which made
    // the compare 11–15 % faster (bench/README.md, row 1e).
    const lengths: number[] = []
    const wordsFrom: number[] = [0]
    const ints: number[] = []
    const words: number[] = []
    let fixed = 0
    for (let i = 0; i < parts; i++) {
      const from = i === 0 ? start : cuts[2 * i - 1]!
      const length = (i === parts - 1 ? end : cuts[2 * i]!) - from
      lengths.push(length)
      fixed += length
      let first = 0
      let last = 0
      if (length >= 8) {
        const to = base + from + length
        for (let at = base + from; at + 8 < to; at += 8) words.push(view.getFloat64(at, true))
        words.push(view.getFloat64(to - 8, true))
      } else if (length >= 4) {
        first = view.getInt32(base + from, true)
        last = view.getInt32(base + from + length - 4, true)
      } else {
        for (let k = 0; k < length; k++) first |= buf[from + k]! << (8 * k)
      }
      ints.push(first, last)
      wordsFrom.push(words.length)
    }
    // Doubles compare equal exactly when their bits are equal, but for NaNs (never equal) and the two
    // zeros (equal to each other): a part with a word that reads as either (never seen in text) is not learnt.
    for (let w = 0; w < words.length; w++) if (words[w] === 0 || words[w] !== words[w]) return undefined
    const lfOnly = buf[end - 1] === LF && buf[end - 2] === LF && (data === start || buf[data - 2] !== CR)
    const isCount = lexer.kinds.includes(true) ? lexer.kinds.slice() : undefined
    return new EventTemplate(lengths, words, wordsFrom, ints, lfOnly, 4 * parts + fixed, isCount)
  }
}

/**
 * Where the count (`0`, or a digit 1–9 and more digits: a JSON integer that is not negative) that starts
 * at `p` ends, before `limit`; -1 when none starts there. The byte after it is the template's to compare.
 */
function countEnd(buf: Buffer, p: number, limit: number): number {
  if (p >= limit) return -1
  const first = buf[p]!
  if (first === ZERO) return p + 1
  if (first < ZERO || first > NINE) return -1
  p++
  while (p < limit && buf[p]! >= ZERO && buf[p]! <= NINE) p++
  return p
}

const EVENT = Buffer.from('event:')

/**
 * Where the `data:` line of the event `buf[start, end)` begins: at its start, or after its `event:` line;
 * -1 when neither.
 */
function dataLine(buf: Buffer, start: number, end: number): number {
  let p = start
  if (startsWith(buf, p, end, EVENT)) {
    while (p < end && buf[p] !== LF && buf[p] !== CR) p++
    if (buf[p] === CR && buf[p + 1] === LF) p++
    p++
  }
  return end - p >= DATA.length + 2 && startsWith(buf, p, end, DATA) ? p : -1
}

/** `buf[p, end)` begins with `word`. */
function startsWith(buf: Buffer, p: number, end: number, word: Buffer): boolean {
  if (end - p < word.length) return false
  for (let k = 0; k < word.length; k++) if (buf[p + k] !== word[k]) return false
  return true
}

/** `buf[at, end)` is one blank line after a line's end: LF LF, CR CR or CRLF CRLF. */
function isEventEnd(buf: Buffer, at: number, end: number): boolean {
  const n = end - at
  if (n === 2) return (buf[at] === LF && buf[at + 1] === LF) || (buf[at] === CR && buf[at + 1] === CR)
  return n === 4 && buf[at] === CR && buf[at + 1] === LF && buf[at + 2] === CR && buf[at + 3] === LF
}

/** The free members' names as bytes, by length (`byLength[n]`: the names of n bytes), kept per set. */
interface FreeKeys {
  readonly byLength: ReadonlyArray<readonly Buffer[] | undefined>
}

const FREE_KEYS = new WeakMap<ReadonlySet<string>, FreeKeys>()

function freeKeys(free: ReadonlySet<string>): FreeKeys {
  let keys = FREE_KEYS.get(free)
  if (keys === undefined) {
    const byLength: Array<Buffer[] | undefined> = []
    for (const key of free) {
      const bytes = Buffer.from(key, 'latin1')
      ;(byLength[bytes.length] ??= []).push(bytes)
    }
    keys = { byLength }
    FREE_KEYS.set(free, keys)
  }
  return keys
}

/**
 * A validating JSON lexer over one line, `buf[.., limit)`, that notes where the string values of the free
 * members are (`cuts`: each one's first byte and its closing quote). Each method returns the index after
 * what it read, or -1 for text that is not JSON. One for the process, reset for each event: learning
 * runs to its end before another begins, and holds on to nothing after it.
 */
class Lexer {
  private buf: Buffer = EMPTY
  private view: DataView = EMPTY_VIEW
  private base = 0
  private limit = 0
  private free: FreeKeys = { byLength: [] }
  private counts: FreeKeys | undefined
  readonly cuts: number[] = []
  /** For each free place, whether it holds a count. */
  readonly kinds: boolean[] = []

  reset(buf: Buffer, view: DataView, base: number, limit: number, free: FreeKeys, counts?: FreeKeys): this {
    this.buf = buf
    this.view = view
    this.base = base
    this.limit = limit
    this.free = free
    this.counts = counts
    this.cuts.length = 0
    this.kinds.length = 0
    return this
  }

  /** Lets go of the event's buffer (the cuts stay until the next reset). */
  release(): void {
    this.buf = EMPTY
    this.view = EMPTY_VIEW
  }

  /** The key `buf[start, end)` is one of `keys`. */
  private isNamed(keys: FreeKeys, start: number, end: number): boolean {
    const named = keys.byLength[end - start]
    if (named === undefined) return false
    const buf = this.buf
    for (let k = 0; k < named.length; k++) {
      const key = named[k]!
      let i = 0
      while (i < key.length && buf[start + i] === key[i]) i++
      if (i === key.length) return true
    }
    return false
  }

  space(p: number): number {
    const buf = this.buf
    while (p < this.limit && (buf[p] === SPACE || buf[p] === TAB)) p++
    return p
  }

  value(p: number, depth: number): number {
    if (p === -1 || p >= this.limit || depth > MAX_DEPTH) return -1
    const b = this.buf[p]!
    if (b === LBRACE) return this.object(p + 1, depth)
    if (b === LBRACKET) return this.array(p + 1, depth)
    if (b === QUOTE) return this.string(p)
    if (b === MINUS || (b >= ZERO && b <= NINE)) return this.number(p)
    return this.literal(p, b === 0x74 ? TRUE : b === 0x66 ? FALSE : NULL)
  }

  private string(p: number): number {
    const close = stringEndByWords(this.buf, this.view, this.base, p + 1, this.limit)
    return close === -1 ? -1 : close + 1
  }

  private object(p: number, depth: number): number {
    const buf = this.buf
    p = this.space(p)
    if (buf[p] === RBRACE) return p + 1
    for (;;) {
      if (p >= this.limit || buf[p] !== QUOTE) return -1
      const keyEnd = stringEndByWords(buf, this.view, this.base, p + 1, this.limit)
      if (keyEnd === -1) return -1
      const keyStart = p + 1
      p = this.space(keyEnd + 1)
      if (buf[p] !== COLON) return -1
      p = this.space(p + 1)
      const count = this.counts !== undefined && this.isNamed(this.counts, keyStart, keyEnd) ? this.count(p) : -1
      if (buf[p] === QUOTE && this.isNamed(this.free, keyStart, keyEnd)) {
        const close = stringEndByWords(buf, this.view, this.base, p + 1, this.limit)
        if (close === -1) return -1
        this.cuts.push(p + 1, close)
        this.kinds.push(false)
        p = close + 1
      } else if (count !== -1) {
        this.cuts.push(p, count)
        this.kinds.push(true)
        p = count
      } else {
        p = this.value(p, depth + 1)
        if (p === -1) return -1
      }
      p = this.space(p)
      if (buf[p] === COMMA) p = this.space(p + 1)
      else if (buf[p] === RBRACE) return p + 1
      else return -1
    }
  }

  private array(p: number, depth: number): number {
    const buf = this.buf
    p = this.space(p)
    if (buf[p] === RBRACKET) return p + 1
    for (;;) {
      p = this.value(p, depth + 1)
      if (p === -1) return -1
      p = this.space(p)
      if (buf[p] === COMMA) p = this.space(p + 1)
      else if (buf[p] === RBRACKET) return p + 1
      else return -1
    }
  }

  /** Where the count at `p` ends: an integer that is the whole number (no fraction or exponent follows); -1 when none is there. */
  private count(p: number): number {
    const end = countEnd(this.buf, p, this.limit)
    return end !== -1 && end === this.number(p) ? end : -1
  }

  /** Where the run of digits from `p` ends. */
  private digits(p: number): number {
    const buf = this.buf
    while (p < this.limit && buf[p]! >= ZERO && buf[p]! <= NINE) p++
    return p
  }

  /** RFC 8259 §6: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)? */
  private number(p: number): number {
    const buf = this.buf
    if (buf[p] === MINUS) p++
    if (buf[p] === ZERO) p++
    else {
      const after = this.digits(p)
      if (after === p) return -1
      p = after
    }
    if (buf[p] === DOT) {
      const after = this.digits(p + 1)
      if (after === p + 1) return -1
      p = after
    }
    if (buf[p] === 0x65 || buf[p] === 0x45) {
      p++
      if (buf[p] === PLUS || buf[p] === MINUS) p++
      const after = this.digits(p)
      if (after === p) return -1
      p = after
    }
    return p > this.limit ? -1 : p
  }

  private literal(p: number, word: Buffer): number {
    const end = p + word.length
    if (end > this.limit) return -1
    for (let k = 0; k < word.length; k++) if (this.buf[p + k] !== word[k]) return -1
    return end
  }
}

const EMPTY = Buffer.alloc(0)
const EMPTY_VIEW = new DataView(new ArrayBuffer(0))
const LEXER = new Lexer()
