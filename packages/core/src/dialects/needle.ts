/**
 * Finds `"key"` followed by `:` and an object (`{`) within [start, end) of a buffer, walking the
 * occurrences of the key once per buffer however many events it holds (the last search is cached).
 * Inside a JSON string a quote is always escaped, so `"key"` only ever matches a key or a whole value.
 */
export class MemberScanner {
  private readonly needle: Buffer
  private buf: Buffer | undefined
  private from = 0
  private found = -1

  constructor(key: string, private readonly objectOnly: boolean) {
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
      if (!this.objectOnly) return true
      let i = at + this.needle.length
      while (i < end && (buf[i] === 0x20 || buf[i] === 0x09)) i++
      if (buf[i] === 0x3a /* : */) {
        i++
        while (i < end && (buf[i] === 0x20 || buf[i] === 0x09)) i++
        if (buf[i] === 0x7b /* { */) return true
      }
      at = this.next(buf, at + 1)
    }
    return false
  }
}
