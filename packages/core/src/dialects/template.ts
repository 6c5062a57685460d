import { Buffer } from '../buffer.js'
import { pattern, viewOf, type Pattern } from '../framing/words.js'

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

/** One passing event, with the string values of some members left free. */
export class EventTemplate {
  /**
   * The bytes around the free strings, in parts: part i ends with the opening quote of the i-th free
   * string. Each part's whole 8-byte words are in `words` (from `wordsFrom[i]` to `wordsFrom[i + 1]`),
   * its last bytes in `tails[i]`.
   */
  private constructor(
    private readonly words: Float64Array,
    private readonly wordsFrom: Int32Array,
    private readonly tails: readonly Buffer[],
  ) {}

  /** How many events {@link run} passed in its last call. */
  ran = 0

  /**
   * The end of the event that starts at `at` when it is this template's bytes with any valid strings in
   * the free places, the last of its bytes before `limit`; -1 when it is not.
   */
  match(buf: Buffer, at: number, limit: number): number {
    return this.matchIn(buf, viewOf(buf), at, limit)
  }

  /** Where the run of events from `at` that match ends (`at` when the first does not); {@link ran} says how many. */
  run(buf: Buffer, at: number, limit: number): number {
    const view = viewOf(buf)
    let ran = 0
    for (;;) {
      const end = this.matchIn(buf, view, at, limit)
      if (end === -1) break
      ran++
      at = end
    }
    this.ran = ran
    return at
  }

  private matchIn(buf: Buffer, view: DataView, at: number, limit: number): number {
    const words = this.words
    const wordsFrom = this.wordsFrom
    const tails = this.tails
    const last = tails.length - 1
    let p = at
    for (let i = 0; ; i++) {
      let w = wordsFrom[i]!
      const wordsEnd = wordsFrom[i + 1]!
      const tail = tails[i]!
      if (p + (wordsEnd - w) * 8 + tail.length > limit) return -1
      for (; w < wordsEnd; w++, p += 8) if (view.getFloat64(p, true) !== words[w]) return -1
      for (let k = 0; k < tail.length; k++, p++) if (buf[p] !== tail[k]) return -1
      if (i === last) return p
      p = stringEnd(buf, p, limit)
      if (p === -1) return -1
    }
  }

  /**
   * The template of the event `buf[start, end)`, which its reader let pass: the string value of each
   * member named in `free` becomes free. Undefined for an event that is not one `data:` line of valid
   * JSON followed by its blank line: only there is what a free string may hold bound to one JSON string.
   */
  static learn(buf: Buffer, start: number, end: number, free: ReadonlySet<string>): EventTemplate | undefined {
    if (end - start < DATA.length + 2 || buf.compare(DATA, 0, DATA.length, start, start + DATA.length) !== 0)
      return undefined
    // The line ends at its first line-end byte; the rest must be the blank line that ends the event.
    let lineEnd = start + DATA.length
    while (lineEnd < end && buf[lineEnd] !== LF && buf[lineEnd] !== CR) lineEnd++
    if (!isEventEnd(buf, lineEnd, end)) return undefined
    const cuts: number[] = []
    const lexer = new Lexer(buf, lineEnd, free, cuts)
    let p = lexer.space(start + DATA.length)
    p = lexer.value(p, 0)
    if (p === -1 || lexer.space(p) !== lineEnd) return undefined
    const parts: Pattern[] = []
    let from = start
    for (let i = 0; i < cuts.length; i += 2) {
      parts.push(pattern(buf.subarray(from, cuts[i]!)))
      from = cuts[i + 1]!
    }
    parts.push(pattern(buf.subarray(from, end)))
    // Words compare as doubles: one that reads as a zero or a NaN (never seen in text) is not learnt.
    if (parts.some((part) => !part.exact)) return undefined
    const wordsFrom = new Int32Array(parts.length + 1)
    for (let i = 0; i < parts.length; i++) wordsFrom[i + 1] = wordsFrom[i]! + parts[i]!.words.length
    const words = new Float64Array(wordsFrom[parts.length]!)
    for (let i = 0; i < parts.length; i++) words.set(parts[i]!.words, wordsFrom[i])
    const tails = parts.map((part) => part.bytes.subarray(part.words.length * 8))
    return new EventTemplate(words, wordsFrom, tails)
  }
}

/** `buf[at, end)` is one blank line after a line's end: LF LF, CR CR or CRLF CRLF. */
function isEventEnd(buf: Buffer, at: number, end: number): boolean {
  const n = end - at
  if (n === 2) return (buf[at] === LF && buf[at + 1] === LF) || (buf[at] === CR && buf[at + 1] === CR)
  return n === 4 && buf[at] === CR && buf[at + 1] === LF && buf[at + 2] === CR && buf[at + 3] === LF
}

/**
 * A validating JSON lexer over one line, `buf[.., limit)`, that notes where the string values of the free
 * members are (`cuts`: each one's first byte and its closing quote). Each method returns the index after
 * what it read, or -1 for text that is not JSON.
 */
class Lexer {
  constructor(
    private readonly buf: Buffer,
    private readonly limit: number,
    private readonly free: ReadonlySet<string>,
    private readonly cuts: number[],
  ) {}

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
    const close = stringEnd(this.buf, p + 1, this.limit)
    return close === -1 ? -1 : close + 1
  }

  private object(p: number, depth: number): number {
    const buf = this.buf
    p = this.space(p)
    if (buf[p] === RBRACE) return p + 1
    for (;;) {
      if (p >= this.limit || buf[p] !== QUOTE) return -1
      const keyEnd = stringEnd(buf, p + 1, this.limit)
      if (keyEnd === -1) return -1
      const key = buf.toString('latin1', p + 1, keyEnd)
      p = this.space(keyEnd + 1)
      if (buf[p] !== COLON) return -1
      p = this.space(p + 1)
      if (buf[p] === QUOTE && this.free.has(key)) {
        const close = stringEnd(buf, p + 1, this.limit)
        if (close === -1) return -1
        this.cuts.push(p + 1, close)
        p = close + 1
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

  /** RFC 8259 §6: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)? */
  private number(p: number): number {
    const buf = this.buf
    const digits = (from: number): number => {
      let i = from
      while (i < this.limit && buf[i]! >= ZERO && buf[i]! <= NINE) i++
      return i
    }
    if (buf[p] === MINUS) p++
    if (buf[p] === ZERO) p++
    else {
      const after = digits(p)
      if (after === p) return -1
      p = after
    }
    if (buf[p] === DOT) {
      const after = digits(p + 1)
      if (after === p + 1) return -1
      p = after
    }
    if (buf[p] === 0x65 || buf[p] === 0x45) {
      p++
      if (buf[p] === PLUS || buf[p] === MINUS) p++
      const after = digits(p)
      if (after === p) return -1
      p = after
    }
    return p > this.limit ? -1 : p
  }

  private literal(p: number, word: Buffer): number {
    const end = p + word.length
    if (end > this.limit || this.buf.compare(word, 0, word.length, p, end) !== 0) return -1
    return end
  }
}
