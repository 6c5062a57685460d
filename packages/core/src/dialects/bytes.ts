/**
 * A byte pattern for a JSON member: `"key"`, or `"key":` followed by the first byte of its value (`{` for
 * an object, `"` for a string, so `"usage": null` does not count), with or without the space some
 * serializers put after the colon. Inside a JSON string a quote is always escaped, so `"key"` only ever
 * matches a key or a whole value.
 */
export interface Member {
  needles: readonly Buffer[]
}

export const OBJECT = '{'
export const STRING = '"'

/** Made once per module: the patterns are shared by every response. */
export function member(key: string, valueStart?: string): Member {
  const quoted = JSON.stringify(key)
  const needles = valueStart === undefined ? [quoted] : [`${quoted}:${valueStart}`, `${quoted}: ${valueStart}`]
  return { needles: needles.map((needle) => Buffer.from(needle)) }
}

/**
 * Tests events for a member. Each pattern is searched once per buffer however many events the buffer
 * holds (the last search is cached), so a chunk of events without it costs one search per pattern,
 * not one per event.
 */
export class MemberScanner {
  private buf: Buffer | undefined
  private readonly from: number[]
  private readonly found: number[]

  constructor(private readonly member: Member) {
    this.from = member.needles.map(() => 0)
    this.found = member.needles.map(() => -1)
  }

  test(buf: Buffer, start: number, end: number): boolean {
    const { needles } = this.member
    if (buf !== this.buf) {
      this.buf = buf
      this.from.fill(Number.MAX_SAFE_INTEGER)
    }
    for (let n = 0; n < needles.length; n++) {
      let found = this.found[n]!
      if (start < this.from[n]! || (found !== -1 && found < start)) {
        found = buf.indexOf(needles[n]!, start)
        this.found[n] = found
        this.from[n] = start
      }
      if (found !== -1 && found < end) return true
    }
    return false
  }
}

/**
 * For dialects whose events are named (`event: message_delta`), where the name alone says whether an
 * event may carry usage; the byte patterns serve the events some translators send without a name.
 */
export abstract class NamedEvents {
  private readonly usageKey: MemberScanner
  private readonly errorKey: MemberScanner

  constructor(usage: Member, error: Member) {
    this.usageKey = new MemberScanner(usage)
    this.errorKey = new MemberScanner(error)
  }

  mayCarry(buf: Buffer, start: number, end: number): boolean {
    return this.usageKey.test(buf, start, end) || this.errorKey.test(buf, start, end)
  }
}
