import { Buffer } from '../buffer.js'
import type { Framer } from '../framing/types.js'
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

  /** Gives the text of the event `buf[start, end)` to `into` when the event matches; false when it does not. */
  give(buf: Buffer, start: number, end: number, into: TextSink): boolean {
    const cuts = CUTS
    if (this.template.matchCuts(buf, start, end, cuts) !== end) return false
    for (let i = 0; i < this.given.length; i++) {
      const k = this.given[i]!
      into.add(stringAt(buf, cuts[2 * k]!, cuts[2 * k + 1]!), this.reasoning[i])
    }
    return true
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
  all = ''
  answer = ''
  private template: TextTemplate | undefined
  private learnt = 0
  private matched = 0

  add(text: string, reasoning?: boolean): void {
    this.all += text
    if (!reasoning) this.answer += text
  }

  /** The text of the event `buf[start, end)`; nothing here may fail the response. */
  event(buf: Buffer, start: number, end: number, framer: Framer, spec: DialectSpec): void {
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
    this.template = TextTemplate.learn(buf, start, end, freeOf(keys), spec.textCounts, pieces.list) ?? this.template
  }
}
