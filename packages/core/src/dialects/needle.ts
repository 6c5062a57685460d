/**
 * A byte pattern for a JSON member: `"key"`, optionally only where its value starts with a given byte
 * (`{` for an object, `"` for a string: so `"usage": null` does not count). Inside a JSON string a quote
 * is always escaped, so `"key"` only ever matches a key or a whole value.
 */
export interface Member {
  needle: Buffer
  valueStart: number | undefined
}

export const OBJECT = 0x7b // {
export const STRING = 0x22 // "

/** Made once per module: the patterns are shared by every response. */
export function member(key: string, valueStart?: number): Member {
  return { needle: Buffer.from(`"${key}"`), valueStart }
}

/**
 * Tests events for a member, walking its occurrences once per buffer however many events the buffer
 * holds (the last search is cached), so a chunk of events without it costs one search.
 */
export class MemberScanner {
  private buf: Buffer | undefined
  private from = 0
  private found = -1

  constructor(private readonly member: Member) {}

  private next(buf: Buffer, from: number): number {
    if (buf !== this.buf || from < this.from || (this.found !== -1 && this.found < from)) {
      this.buf = buf
      this.from = from
      this.found = buf.indexOf(this.member.needle, from)
    }
    return this.found
  }

  test(buf: Buffer, start: number, end: number): boolean {
    const { needle, valueStart } = this.member
    let at = this.next(buf, start)
    while (at !== -1 && at < end) {
      if (valueStart === undefined) return true
      let i = at + needle.length
      while (i < end && (buf[i] === 0x20 || buf[i] === 0x09)) i++
      if (buf[i] === 0x3a /* : */) {
        i++
        while (i < end && (buf[i] === 0x20 || buf[i] === 0x09)) i++
        if (buf[i] === valueStart) return true
      }
      at = this.next(buf, at + 1)
    }
    return false
  }
}
