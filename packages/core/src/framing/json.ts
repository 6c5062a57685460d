import { NO_NAME, type DecodedEvent, type EventSink, type Framer, type PayloadScanner } from './types.js'
import { toBuffer } from './pieces.js'
import { Buffer } from '../buffer.js'

/**
 * A whole JSON body as one event: held until its end (bounded by maxEventBytes), then read and, when its
 * usage changes, re-serialized around the new usage block. A body over the bound leaves as it comes and
 * is read on the way by the sink's scanner.
 */
export class JsonFramer implements Framer {
  readonly kind = 'json' as const
  private held: Buffer[] | undefined = []
  private heldBytes = 0
  private scanner: PayloadScanner | undefined
  private bom = false
  stopped = false

  constructor(private readonly maxEventBytes: number) {}

  push(chunk: Buffer, sink: EventSink): Buffer[] {
    if (this.stopped) return [chunk]
    if (this.scanner) {
      this.scanner.write(chunk, 0, chunk.length)
      return [chunk]
    }
    const held = this.held!
    held.push(chunk)
    this.heldBytes += chunk.length
    if (this.heldBytes <= this.maxEventBytes) return []
    // Too large to hold: it leaves now, and its usage is read on the way.
    const head = Buffer.concat(held)
    this.held = undefined
    this.scanner = sink.oversized(head, 0, head.length, 0)
    if (this.scanner) this.scanner.write(head, 0, head.length)
    else this.stopped = true
    return [head]
  }

  end(sink: EventSink): Buffer[] {
    if (this.stopped) return []
    if (this.scanner) {
      this.scanner.end()
      this.scanner = undefined
      return []
    }
    const held = this.held!
    this.held = undefined
    // An empty body is read too: a JSON response without JSON is one usagewire could not read.
    const body = held.length === 1 ? held[0]! : Buffer.concat(held)
    const replacement = sink.event(body, 0, body.length, 0)
    return [replacement ? toBuffer(replacement) : body]
  }

  stop(): Buffer[] {
    this.stopped = true
    const held = this.held ?? []
    this.held = undefined
    return held
  }

  matchName(): number {
    return NO_NAME
  }

  decode(buf: Buffer, start: number, end: number): DecodedEvent {
    this.bom = buf[start] === 0xef && buf[start + 1] === 0xbb && buf[start + 2] === 0xbf
    return { name: undefined, data: buf.toString('utf8', this.bom ? start + 3 : start, end) }
  }

  encode(_buf: Buffer, _start: number, _end: number, _event: DecodedEvent, data: string): Buffer {
    return Buffer.from(this.bom ? `\ufeff${data}` : data, 'utf8')
  }
}
