import { Buffer } from '../buffer.js'
import type { Framer } from '../framing/types.js'
import { viewOf } from '../framing/words.js'
import { isObject } from '../usage.js'
import { EventTemplate } from './template.js'
import type { DialectSpec, JsonObject, TextSink } from './types.js'

/**
 * A member whose string differs from event to event and that no dialect's `text` reads: OpenAI's
 * `obfuscation` padding. It is free in a text template, and left out of the text.
 */
const PADDING = 'obfuscation'

/** After this many templates, each must have passed this many events on average to go on learning. */
const LEARN_FREELY = 4
const PASSED_PER_TEMPLATE = 8

/** A piece `text` gave, as it gave it. */
interface Piece {
  text: string
  reasoning: boolean
}

/** The pieces of one event, kept to be compared with its free strings before they join the text. */
class Pieces implements TextSink {
  readonly list: Piece[] = []
  add(text: string, reasoning?: boolean): void {
    this.list.push({ text, reasoning: reasoning === true })
  }
}

/** What `\s` matches in a regular expression: JavaScript's white space and line terminators. */
export function isSpace(c: number): boolean {
  return c <= 0x20
    ? c === 0x20 || (c >= 0x09 && c <= 0x0d)
    : c >= 0xa0 &&
        (c === 0xa0 ||
          c === 0x1680 ||
          (c >= 0x2000 && c <= 0x200a) ||
          c === 0x2028 ||
          c === 0x2029 ||
          c === 0x202f ||
          c === 0x205f ||
          c === 0x3000 ||
          c === 0xfeff)
}

// The hashes' starting values, drawn once per process: texts cannot be made to collide on purpose.
const SEED_1 = (Math.random() * 0x100000000) >>> 0
const SEED_2 = (Math.random() * 0x100000000) >>> 0

/**
 * A text's print, white space aside (docs/sidecar.md#correlation): how many UTF-16 code units it has
 * that `\s` does not match, and two 32-bit hashes of them (FNV-1a, and a multiply with an xorshift).
 * Two texts that are the same but for their white space have the same print; two that differ have
 * the same one by chance only, about once in 2^64. A print is a few numbers however long the text: a
 * sidecar that joins answers by their text keeps no text.
 */
export class TextPrint {
  /** The code units counted, white space aside: 0 when the text is only white space, or none. */
  length = 0
  /**
   * Its first {@link TextPrint.HEAD} code units, white space aside: a text still growing whose head
   * differs from another's, or that is longer already, can never become the same (docs/sidecar.md#correlation).
   */
  head = ''
  static readonly HEAD = 32
  private h1 = SEED_1
  private h2 = SEED_2

  /** Adds `text`. */
  add(text: string): void {
    let h1 = this.h1
    let h2 = this.h2
    let n = 0
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if ((c <= 0x20 || c >= 0xa0) && isSpace(c)) continue
      if (this.head.length < TextPrint.HEAD) this.head += text[i]
      h1 = Math.imul(h1 ^ c, 0x01000193)
      h2 = Math.imul(h2 ^ c, 0x5bd1e995)
      h2 ^= h2 >>> 15
      n++
    }
    this.h1 = h1
    this.h2 = h2
    this.length += n
  }

  /**
   * Adds the text whose UTF-8 bytes are `buf[from, to)`, a JSON string's body, when every byte is ASCII
   * and none a backslash (then the bytes are the text, one code unit each). Returns false, having added
   * nothing, when one is not.
   */
  addAscii(buf: Buffer, from: number, to: number): boolean {
    let h1 = this.h1
    let h2 = this.h2
    let n = 0
    for (let i = from; i < to; i++) {
      const c = buf[i]!
      if (c >= 0x80 || c === 0x5c) return false
      if (c <= 0x20 && (c === 0x20 || (c >= 0x09 && c <= 0x0d))) continue
      h1 = Math.imul(h1 ^ c, 0x01000193)
      h2 = Math.imul(h2 ^ c, 0x5bd1e995)
      h2 ^= h2 >>> 15
      n++
    }
    // The head is taken once the bytes are known to be plain text (rarely: only the first pieces).
    for (let i = from; i < to && this.head.length < TextPrint.HEAD; i++) {
      const c = buf[i]!
      if (!(c === 0x20 || (c >= 0x09 && c <= 0x0d))) this.head += String.fromCharCode(c)
    }
    this.h1 = h1
    this.h2 = h2
    this.length += n
    return true
  }

  /**
   * This text, still growing, may yet become `whole` (white space aside): it is no longer than it, and
   * its head is the start of `whole`'s.
   */
  mayBecome(whole: TextPrint): boolean {
    return this.length <= whole.length && whole.head.startsWith(this.head)
  }

  /** The two texts are the same, white space aside (but by a chance of about 2^-64). */
  same(other: TextPrint): boolean {
    return this.length === other.length && this.h1 === other.h1 && this.h2 === other.h2
  }

  /** The print as a string: two prints are the same when their keys are. */
  get key(): string {
    return `${this.length}:${this.h1}:${this.h2}`
  }

  copy(): TextPrint {
    const copy = new TextPrint()
    copy.length = this.length
    copy.head = this.head
    copy.h1 = this.h1
    copy.h2 = this.h2
    return copy
  }
}

/** The prints of a response's text: all of it, and the answer alone (the same print when it had no reasoning). */
export interface TextPrints {
  readonly all: TextPrint
  readonly answer: TextPrint
}

const CUTS: number[] = []

/**
 * `Buffer#utf8Slice`, which `toString('utf8', from, to)` calls after checking its arguments and looking up
 * the encoding (half its cost for the few bytes of a piece of text); `toString` where a runtime lacks it.
 */
const utf8Slice: (this: Buffer, from: number, to: number) => string =
  (Buffer.prototype as unknown as { utf8Slice?: (this: Buffer, from: number, to: number) => string }).utf8Slice ??
  function (this: Buffer, from: number, to: number) {
    return this.toString('utf8', from, to)
  }

/** The JSON string whose body is `buf[from, to)`, valid JSON (a template's free string). */
function stringAt(buf: Buffer, from: number, to: number): string {
  const raw = utf8Slice.call(buf, from, to)
  // A backslash is never part of a multi-byte character: without one the bytes are the string.
  return raw.indexOf('\\') === -1 ? raw : (JSON.parse(`"${raw}"`) as string)
}

/** The name of the member whose string value begins at `from` (its opening quote at `from - 1`). */
function memberBefore(buf: Buffer, from: number): string | undefined {
  let p = from - 2
  while (buf[p] === 0x20 || buf[p] === 0x09) p--
  if (buf[p] !== 0x3a) return undefined
  p--
  while (buf[p] === 0x20 || buf[p] === 0x09) p--
  if (buf[p] !== 0x22) return undefined
  // A free member's name is one of the dialect's names, which hold no quote or backslash.
  const open = buf.lastIndexOf(0x22, p - 1)
  return open === -1 ? undefined : buf.toString('latin1', open + 1, p)
}

/**
 * What `text` gives for the events of one shape (docs/architecture.md#text-templates): an event template
 * whose free strings are the members of the dialect's `textKeys`, and which of them `text` gave, in what
 * order, as reasoning or not. Learnt from an event whose every free string `text` gave as it is (but
 * padding), each telling which: an event that matches differs from it only in those strings, so `text`
 * would give its strings in the same places, in the same order.
 */
class TextTemplate {
  private constructor(
    private readonly template: EventTemplate,
    /** The free strings `text` gives, by their place among the event's free strings. */
    private readonly given: readonly number[],
    private readonly reasoning: readonly boolean[],
  ) {}

  /** Its events end in LF LF and hold no CR: where a match ends, the next event begins. */
  get lfOnly(): boolean {
    return this.template.lfOnly
  }

  /** How many events {@link run} gave the text of in its last call. */
  ran = 0

  /** Gives the text of the event `buf[start, end)` to `into` when the event matches; false when it does not. */
  give(buf: Buffer, start: number, end: number, into: CollectedText): boolean {
    const cuts = CUTS
    if (this.template.matchCuts(buf, start, end, cuts) !== end) return false
    this.pieces(buf, cuts, into)
    return true
  }

  /**
   * Gives the text of each event of the run from `at` that matches, up to `limit`; returns where the run
   * ends (`at` when the first event does not match), and {@link ran} says how many events it gave.
   */
  run(buf: Buffer, at: number, limit: number, into: CollectedText): number {
    const cuts = CUTS
    const view = viewOf(buf)
    const template = this.template
    let ran = 0
    for (;;) {
      const end = template.matchCutsView(buf, view, at, limit, cuts)
      if (end === -1) break
      this.pieces(buf, cuts, into)
      ran++
      at = end
    }
    this.ran = ran
    return at
  }

  private pieces(buf: Buffer, cuts: readonly number[], into: CollectedText): void {
    for (let i = 0; i < this.given.length; i++) {
      const k = this.given[i]!
      const from = cuts[2 * k]!
      const to = cuts[2 * k + 1]!
      const reasoning = this.reasoning[i]
      // A print takes plain ASCII from the bytes: no string is made for it.
      if (into.all === undefined && into.addAscii(buf, from, to, reasoning)) continue
      into.add(stringAt(buf, from, to), reasoning)
    }
  }

  static learn(
    buf: Buffer,
    start: number,
    end: number,
    keys: ReadonlySet<string>,
    counts: ReadonlySet<string> | undefined,
    pieces: readonly Piece[],
  ): TextTemplate | undefined {
    const template = EventTemplate.learn(buf, start, end, keys, counts)
    if (!template) return undefined
    const cuts = CUTS
    if (template.matchCuts(buf, start, end, cuts) !== end) return undefined
    // A count (an event's sequence number) is no text: its place holds no value to give.
    const values: Array<string | undefined> = []
    for (let k = 0; k < template.strings; k++)
      values.push(template.isCount(k) ? undefined : stringAt(buf, cuts[2 * k]!, cuts[2 * k + 1]!))
    const given: number[] = []
    const reasoning: boolean[] = []
    const taken = values.map((value) => value === undefined)
    for (const piece of pieces) {
      // Each piece is exactly one free string: not empty (an empty one may be given or not), and no other
      // free string of the event holds the same.
      if (piece.text === '') return undefined
      const k = values.indexOf(piece.text)
      if (k === -1 || taken[k] || values.indexOf(piece.text, k + 1) !== -1) return undefined
      taken[k] = true
      given.push(k)
      reasoning.push(piece.reasoning)
    }
    // A free string `text` did not give may be one it gives when it is not empty: only padding is left out.
    for (let k = 0; k < values.length; k++)
      if (!taken[k] && memberBefore(buf, cuts[2 * k]!) !== PADDING) return undefined
    return new TextTemplate(template, given, reasoning)
  }
}

const TEXT_KEYS = new WeakMap<ReadonlySet<string>, ReadonlySet<string>>()

/** The dialect's text members and padding: the free strings of its text templates. */
function freeOf(keys: ReadonlySet<string>): ReadonlySet<string> {
  let free = TEXT_KEYS.get(keys)
  if (free === undefined) {
    free = new Set([...keys, PADDING])
    TEXT_KEYS.set(keys, free)
  }
  return free
}

/**
 * The generated text of one response (`collectText`), and the part of it that is not reasoning. Each
 * event's text is what the dialect's `text` gives for it; an event that matches the text template learnt
 * last gives the same without being decoded or parsed.
 */
export class CollectedText implements TextSink {
  /** The text; undefined when only its prints are kept. */
  all: string | undefined
  /** The text but the reasoning; undefined when only its prints are kept. */
  answer: string | undefined
  /** The prints, when they are kept instead of the text. */
  private print: TextPrint | undefined
  /** The answer's print, once a piece of reasoning made it differ from {@link print}. */
  private answerPrint: TextPrint | undefined
  private template: TextTemplate | undefined
  private learnt = 0
  private matched = 0
  /**
   * The template may pass whole events unread ({@link run}): the event it was learnt from was one the
   * processor let pass without reading it (see {@link read}), so every event that matches is one it would
   * let pass too, differing only in its text.
   */
  private passes = false
  /** The template was learnt from the event given last. */
  private learntNow = false

  /** `prints`: keep the text's prints ({@link prints}), not the text. */
  constructor(prints = false) {
    if (prints) this.print = new TextPrint()
    else this.all = this.answer = ''
  }

  add(text: string, reasoning?: boolean): void {
    if (this.all !== undefined) {
      this.all += text
      if (!reasoning) this.answer += text
      return
    }
    if (reasoning) this.answerPrint ??= this.print!.copy()
    else this.answerPrint?.add(text)
    this.print!.add(text)
  }

  /** {@link add} of the ASCII text `buf[from, to)` into the prints; false (nothing added) when it is not plain ASCII. */
  addAscii(buf: Buffer, from: number, to: number, reasoning?: boolean): boolean {
    // The first piece of reasoning parts the answer from the text: it goes by `add`.
    if (reasoning) return this.answerPrint !== undefined && this.print!.addAscii(buf, from, to)
    if (!this.print!.addAscii(buf, from, to)) return false
    this.answerPrint?.addAscii(buf, from, to)
    return true
  }

  /** The prints, when they are kept. */
  get prints(): TextPrints | undefined {
    const all = this.print
    return all === undefined ? undefined : { all, answer: this.answerPrint ?? all }
  }

  /** Whether {@link run} may pass events now, each ending exactly where its match ends. */
  get runs(): boolean {
    return this.passes && this.template!.lfOnly
  }

  /**
   * Gives the text of the run of events from `at` that match the template (only when {@link runs}):
   * those events pass unframed and unread (docs/architecture.md#text-templates). Returns where the run
   * ends, `at` when the first event does not match.
   */
  run(buf: Buffer, at: number, limit: number): number {
    const template = this.template!
    const end = template.run(buf, at, limit, this)
    this.matched += template.ran
    return end
  }

  /**
   * The processor read the event given last (it may carry usage): a template learnt from it passes no
   * event unread.
   */
  read(): void {
    if (this.learntNow) this.passes = false
  }

  /** The text of the event `buf[start, end)`; nothing here may fail the response. */
  event(buf: Buffer, start: number, end: number, framer: Framer, spec: DialectSpec): void {
    this.learntNow = false
    if (this.template?.give(buf, start, end, this) === true) {
      this.matched++
      return
    }
    const text = spec.text!
    try {
      const decoded = framer.decode(buf, start, end)
      if (!decoded || decoded.data.charCodeAt(0) !== 0x7b) return
      const json: unknown = JSON.parse(decoded.data)
      if (!isObject(json)) return
      const keys = spec.textKeys
      if (keys === undefined || (this.learnt >= LEARN_FREELY && this.matched < PASSED_PER_TEMPLATE * this.learnt))
        return text(json, this)
      this.learn(buf, start, end, json, spec, keys)
    } catch {
      // Not JSON, or not an event with text: nothing to keep.
    }
  }

  private learn(
    buf: Buffer,
    start: number,
    end: number,
    json: JsonObject,
    spec: DialectSpec,
    keys: ReadonlySet<string>,
  ): void {
    const text = spec.text!
    const pieces = new Pieces()
    text(json, pieces)
    for (const piece of pieces.list) this.add(piece.text, piece.reasoning)
    // An event without text (a start, a stop, a ping) is not learnt from: it is parsed for less than
    // learning costs, and its template would only stand in the way of the next text event's.
    if (pieces.list.length === 0) return
    this.learnt++
    const template = TextTemplate.learn(buf, start, end, freeOf(keys), spec.textCounts, pieces.list)
    if (template === undefined) return
    this.template = template
    this.passes = this.learntNow = true
  }
}
