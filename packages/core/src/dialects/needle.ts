/**
 * Finds `"key"` within [start, end) of a buffer, optionally only where its value starts with a given byte
 * (`{` for an object, `"` for a string: so `"usage": null` does not count), walking the occurrences of the
 * key once per buffer however many events it holds (the last search is cached).
 * Inside a JSON string a quote is always escaped, so `"key"` only ever matches a key or a whole value.
 */
export const OBJECT = 0x7b // {
export const STRING = 0x22 // "

export class MemberScanner {
  private readonly needle: Buffer
  private buf: Buffer | undefined
  private from = 0
  private found = -1

  constructor(
    key: string,
    /** The first byte the value must have, or undefined for any value. */
    private readonly valueStart?: number,
  ) {
    this.needle = Buffer.from(`"${key}"`)
  }

  private next(buf: Buffer, from: number): number {
    if (buf !== this.buf || from < this.from || (this.found !== -1 && this.found < from)) {
      this.buf = buf
      this.from = from
      this.found = buf.indexOf(this.needle, from)
    }
    return this.found
  }

  test(buf: Buffer, start: number, end: number): boolean {
    let at = this.next(buf, start)
    while (at !== -1 && at < end) {
      if (this.valueStart === undefined) return true
      let i = at + this.needle.length
      while (i < end && (buf[i] === 0x20 || buf[i] === 0x09)) i++
      if (buf[i] === 0x3a /* : */) {
        i++
        while (i < end && (buf[i] === 0x20 || buf[i] === 0x09)) i++
        if (buf[i] === this.valueStart) return true
      }
      at = this.next(buf, at + 1)
    }
    return false
  }
}
