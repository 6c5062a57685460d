/** Test doubles for the framers of unnamed events (a streamed JSON array, NDJSON): not part of the build. */
import type { EventSink, PayloadScanner } from './types.js'

/** A scanner that keeps what it is fed. */
export class Collector implements PayloadScanner {
  readonly pieces: Buffer[] = []
  ended = 0
  write(bytes: Buffer, start: number, end: number): void {
    this.pieces.push(Buffer.from(bytes.subarray(start, end)))
  }
  end(): void {
    this.ended++
  }
  get text(): string {
    return Buffer.concat(this.pieces).toString('utf8')
  }
}

/** A sink that records the events a framer hands it, and may replace them. */
export class RecordingSink implements EventSink {
  readonly events: { raw: string; at: number }[] = []
  readonly oversize: { head: string; at: number; scanner: Collector }[] = []
  readonly stops: { reason: string; at: number }[] = []
  constructor(private readonly replace?: (raw: string) => string | undefined) {}
  passes(): boolean {
    throw new Error('these events have no names')
  }
  readsFrom(): number {
    throw new Error('these framers always frame')
  }
  event(buf: Buffer, start: number, end: number, at: number): Uint8Array | undefined {
    const raw = buf.toString('utf8', start, end)
    this.events.push({ raw, at })
    const replacement = this.replace?.(raw)
    return replacement === undefined ? undefined : Buffer.from(replacement)
  }
  oversized(buf: Buffer, start: number, end: number, at: number): PayloadScanner {
    const scanner = new Collector()
    this.oversize.push({ head: buf.toString('utf8', start, end), at, scanner })
    return scanner
  }
  stopped(reason: string, at: number): void {
    this.stops.push({ reason, at })
  }
}
