import type { IncomingMessage } from 'node:http'
import { createProcessor, framingFor, Ledger, TextPrint, type Processor, type TextPrints } from '@usagewire/core'
import { decodingObserver, NODE_DECODERS, observeIncoming, type BodySink } from '@usagewire/core/node'

/** The prints of no text. */
const NO_TEXT: TextPrints = { all: new TextPrint(), answer: new TextPrint() }

/**
 * One response read on its way through the sidecar, read only: its usage into a ledger of its own,
 * and the prints of the text it generated (for correlation by content: the text itself is not kept). Used for the provider's answers to the
 * gateway, and for the gateway's answers to its clients (their text).
 */
export class Reading {
  readonly ledger = new Ledger()
  /** When the request began (ms since the epoch). */
  readonly started = Date.now()
  private processor: Processor | undefined
  /** True once the body ended or failed: nothing more will be read. */
  done = false
  /** The body ended whole (not cut). */
  whole = false
  private listeners: Array<() => void> = []
  /**
   * Read the generated text (for a join by content) into its prints: on unless the sidecar knows before the body comes
   * that nothing will compare it (docs/sidecar.md#correlation).
   */
  collectText = true

  constructor(
    /** The request path, which names the dialect. */
    readonly path: string,
  ) {}

  /** Reads `res` as it passes; `more` gets the decoded bytes too (a live tap). */
  observe(res: IncomingMessage, more?: BodySink): void {
    const type = String(res.headers['content-type'] ?? '')
    const encoding = String(res.headers['content-encoding'] ?? '')
      .trim()
      .toLowerCase()
    const decode = encoding && encoding !== 'identity' ? encoding : undefined
    if (!framingFor(type) || (decode && !NODE_DECODERS.includes(decode))) {
      more?.fail()
      return this.finish(false)
    }
    this.processor = createProcessor({
      contentType: type,
      path: this.path,
      ledger: this.ledger,
      source: 'tap',
      readOnly: true,
      collectText: this.collectText ? 'print' : false,
    })
    const processor = this.processor
    const read = (chunk: Uint8Array): void => {
      try {
        processor.push(chunk)
      } catch {
        // A reading never fails the body.
      }
      more?.push(chunk)
    }
    const end = (): void => {
      try {
        processor.end()
      } catch {
        // What could be read was read.
      }
      more?.end()
      this.finish(true)
    }
    const fail = (): void => {
      more?.fail()
      this.finish(false)
    }
    observeIncoming(res, decodingObserver({ push: read, end, fail }, decode))
  }

  /**
   * The prints of the generated text, white space aside (translators re-serialize tool arguments): `all`
   * with the reasoning, `answer` without the reasoning (thinking, reasoning summaries) the dialect marks
   * as such, what a client got from a gateway that dropped it (docs/sidecar.md#correlation).
   */
  get prints(): TextPrints {
    return this.processor?.streamedPrints ?? NO_TEXT
  }

  /** True when the response's final usage was read. */
  get final(): boolean {
    return this.processor?.final ?? false
  }

  /** Calls `listener` once the body is done (at once if it is). */
  onDone(listener: () => void): void {
    if (this.done) listener()
    else this.listeners.push(listener)
  }

  /** The body will not be read (no response, or one that is not read). */
  abandon(): void {
    this.finish(false)
  }

  private finish(whole: boolean): void {
    if (this.done) return
    this.done = true
    this.whole = whole
    for (const listener of this.listeners.splice(0)) listener()
  }
}
