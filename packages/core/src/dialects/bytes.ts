import { Buffer, indexOf } from '../buffer.js'
/**
 * Cheap byte tests that decide, before any decoding, whether an event may carry usage. Events that fail
 * them are never decoded, let alone parsed (docs/architecture.md#byte-tests).
 */

const COLON = 0x3a

const isSpace = (b: number | undefined): boolean => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d

// Letters from rarest to most common in JSON and prose. A search stops at every byte equal to its
// needle's first, and JSON is full of quotes: a needle that starts at the key's rarest letter stops far
// less often.
const RARITY = 'qzxj_kvbygpwfmucldhrsnioate'
// Up to this rank a letter is rare enough to search for alone: a one-byte search costs a tenth of a
// search for several bytes, and stops at few places.
const ALONE = RARITY.indexOf('u')

/**
 * A JSON member: `"key"` used as a key whose value starts with `valueStart` (`{` for an object, so
 * `"usage": null` does not count), with any whitespace around the colon (`"usage" : {`, as pretty
 * printers write it). Without `valueStart`, any occurrence of `"key"` counts. Inside a JSON string a
 * quote is always escaped, so `"key"` only ever matches a key or a whole string value.
 */
export interface Member {
  /** The quoted key. */
  readonly quoted: Buffer
  /** Where in `quoted` the search starts: its rarest letter. */
  readonly pivot: number
  /** What is searched for: that letter alone, or `quoted` from it on. */
  readonly needle: number | Buffer
  readonly valueStart: number | undefined
}

/** Made once per module: the patterns are shared by every response. */
export function member(key: string, valueStart?: '{' | '"'): Member {
  const quoted = JSON.stringify(key)
  let pivot = 1
  let best = Number.MAX_SAFE_INTEGER
  for (let i = 1; i < quoted.length - 1; i++) {
    const rank = RARITY.indexOf(quoted[i]!.toLowerCase())
    if (rank !== -1 && rank < best) [best, pivot] = [rank, i]
  }
  const bytes = Buffer.from(quoted)
  return {
    quoted: bytes,
    pivot,
    needle: best <= ALONE ? bytes[pivot]! : bytes.subarray(pivot),
    valueStart: valueStart?.charCodeAt(0),
  }
}

/** Does `"key"` at `at` stand as a key whose value starts with the member's first value byte? */
function valueFollows(buf: Buffer, at: number, end: number, valueStart: number): boolean {
  let i = at
  while (i < end && isSpace(buf[i])) i++
  if (buf[i] !== COLON) return false
  i++
  while (i < end && isSpace(buf[i])) i++
  return i < end && buf[i] === valueStart
}

/** `buf[at, at + quoted.length)` is `quoted`. */
function keyAt(buf: Buffer, at: number, quoted: Buffer): boolean {
  if (at < 0 || at + quoted.length > buf.length) return false
  for (let i = 0; i < quoted.length; i++) if (buf[at + i] !== quoted[i]) return false
  return true
}

/**
 * One needle's search in one buffer, kept: asked again in the same buffer from a place it has not
 * passed, it answers without searching, so a chunk of many events is searched once, not once per event.
 */
class KeptSearch {
  private buf: Buffer | undefined
  private from = 0
  private found = -1

  constructor(private readonly needle: number | Buffer) {}

  /** The needle's first place at or after `from` in `buf`, or -1. */
  next(buf: Buffer, from: number): number {
    if (buf !== this.buf || from < this.from || (this.found !== -1 && this.found < from)) {
      this.buf = buf
      this.from = from
      this.found = indexOf.call(buf, this.needle, from)
    }
    return this.found
  }
}

/** Tests events for a member. */
export class MemberScanner {
  private readonly search: KeptSearch

  constructor(private readonly member: Member) {
    this.search = new KeptSearch(member.needle)
  }

  test(buf: Buffer, start: number, end: number): boolean {
    const { quoted, pivot, valueStart } = this.member
    let from = start + pivot
    for (;;) {
      // Where the pivot is (the key would start `pivot` bytes before), or -1.
      const found = this.search.next(buf, from)
      if (found === -1 || found >= end) return false
      const key = found - pivot
      if (
        key >= start &&
        keyAt(buf, key, quoted) &&
        (valueStart === undefined || valueFollows(buf, key + quoted.length, end, valueStart))
      ) {
        return true
      }
      // Another word, `"usage": null` or a string value: look further in the same event.
      from = found + 1
    }
  }
}

/**
 * Tests events for a byte string anywhere in them (a needle that only the events a reader reads hold,
 * such as `kens"` of a token count).
 */
export class NeedleScanner {
  private readonly search: KeptSearch

  constructor(private readonly needle: Buffer) {
    this.search = new KeptSearch(needle)
  }

  test(buf: Buffer, start: number, end: number): boolean {
    const found = this.search.next(buf, start)
    return found !== -1 && found + this.needle.length <= end
  }
}

/** Does the event `buf[start, end)` carry one of the members? */
export class AnyOf {
  private readonly scanners: MemberScanner[]
  constructor(members: readonly Member[]) {
    this.scanners = members.map((m) => new MemberScanner(m))
  }
  test(buf: Buffer, start: number, end: number): boolean {
    for (let i = 0; i < this.scanners.length; i++) if (this.scanners[i]!.test(buf, start, end)) return true
    return false
  }
}

/** Byte strings for a dialect's quick test (`DialectSpec.quick`, `DialectReader.quick`), made once per module. */
export const needles = (...strings: string[]): readonly Buffer[] => strings.map((text) => Buffer.from(text))

/** How a JSON writer separates a key from its value: `":"`, `": "`, otherwise, or the key is not there. */
export type Separator = 'compact' | 'spaced' | 'other' | undefined

/** How `quoted` (a quoted key) is followed by its value at its first occurrence in `buf[start, end)`. */
export function separatorAfter(buf: Buffer, start: number, end: number, quoted: Buffer): Separator {
  const at = indexOf.call(buf, quoted, start)
  if (at === -1 || at + quoted.length + 2 > end) return undefined
  let i = at + quoted.length
  if (buf[i] !== COLON) return 'other'
  i++
  if (!isSpace(buf[i])) return 'compact'
  return buf[i] === 0x20 && !isSpace(buf[i + 1]) ? 'spaced' : 'other'
}
