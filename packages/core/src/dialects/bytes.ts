/**
 * Cheap byte tests that decide, before any decoding, whether an event may carry usage. Events that fail
 * them are never decoded, let alone parsed (docs/architecture.md#byte-tests).
 */

const COLON = 0x3a

const isSpace = (b: number | undefined): boolean => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d

/**
 * A JSON member: `"key"` used as a key whose value starts with `valueStart` (`{` for an object, so
 * `"usage": null` does not count), with any whitespace around the colon (`"usage" : {`, as pretty
 * printers write it). Without `valueStart`, any occurrence of `"key"` counts. Inside a JSON string a
 * quote is always escaped, so `"key"` only ever matches a key or a whole string value.
 */
export interface Member {
  readonly needle: Buffer
  readonly valueStart: number | undefined
}

/** Made once per module: the patterns are shared by every response. */
export function member(key: string, valueStart?: '{' | '"'): Member {
  return { needle: Buffer.from(JSON.stringify(key)), valueStart: valueStart?.charCodeAt(0) }
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

/**
 * Tests events for a member. The search result is kept per buffer, so a chunk of many events without the
 * member costs one search, not one per event.
 */
export class MemberScanner {
  private buf: Buffer | undefined
  private from = 0
  private found = -1

  constructor(private readonly member: Member) {}

  test(buf: Buffer, start: number, end: number): boolean {
    const { needle, valueStart } = this.member
    for (;;) {
      if (buf !== this.buf || start < this.from || (this.found !== -1 && this.found < start)) {
        this.buf = buf
        this.from = start
        this.found = buf.indexOf(needle, start)
      }
      const found = this.found
      if (found === -1 || found >= end) return false
      if (valueStart === undefined || valueFollows(buf, found + needle.length, end, valueStart)) return true
      // `"usage": null` or a string value: look further in the same event.
      start = found + 1
    }
  }
}

/** Does the event `buf[start, end)` carry the member? For dialects whose names do not say enough. */
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
