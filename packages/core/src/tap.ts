import type { DialectSpec } from './dialects/types.js'
import type { HeaderLookup } from './head.js'
import type { Ledger } from './ledger.js'
import { framingFor } from './framing/index.js'
import { streamsJsonArray } from './dialects/registry.js'
import { createProcessor, type Processor } from './processor.js'

/**
 * What a tap needs of the Exchange it reads for (an Exchange is one): the ledger its usage enters, and
 * word of what it read, so a final usage event waiting for it is released.
 */
export interface TapOwner {
  readonly ledger: Ledger
  /** The tap read bytes, or is over. */
  tapped(): void
  /** The tap is over; `final`: it read the provider's final usage. */
  tapClosed(final: boolean): void
}

/** What a transport decides at the head of the provider's response: read it, and decode it first? */
export type TapHead = { read: false } | { read: true; decode: string | undefined }

/**
 * The gateway's own call to the provider, read for one Exchange (docs/truth-sources.md#the-upstream-tap).
 * A transport (an undici dispatcher, a fetch wrapper, a node:http client request) hands it the
 * provider's response as it arrives; it frames and reads it with the same dialects as the client-facing
 * stream, read only, and its usage enters the Exchange's ledger as the most trusted source. The bytes
 * the transport passes on are never touched.
 *
 * While it reads, the client-facing final usage event may wait for it (at most `maxWaitMs`); the hold
 * ends when the provider's final usage was read, or its response ended or failed.
 */
export class UpstreamTap {
  private processor: Processor | undefined
  private hold: { release(): void } | undefined
  private over = false

  constructor(
    private readonly exchange: TapOwner,
    /** The provider path without its query string. */
    readonly route: string,
    private readonly dialect: DialectSpec | undefined,
    /** The client-facing final usage event's wait for this tap (an Exchange's `Hold`). */
    hold: { release(): void },
  ) {
    this.hold = hold
  }

  /** The provider's response head. `decoders` are the content encodings the transport can decode. */
  head(status: number, headers: HeaderLookup, decoders: readonly string[]): TapHead {
    if (this.over) return { read: false }
    try {
      const value = (name: string): string => {
        const v = headers(name)
        return v === undefined || v === null ? '' : Array.isArray(v) ? v.join(', ') : String(v)
      }
      const framing = framingFor(value('content-type'), streamsJsonArray(this.dialect, this.route))
      const encoding = value('content-encoding').trim().toLowerCase()
      const decode = encoding && encoding !== 'identity' ? encoding : undefined
      if (!framing || status === 204 || (decode && !decoders.includes(decode))) {
        this.done()
        return { read: false }
      }
      this.processor = createProcessor({
        framing,
        dialect: this.dialect,
        route: this.route,
        ledger: this.exchange.ledger,
        source: 'tap',
        readOnly: true,
      })
      return { read: true, decode }
    } catch {
      this.done()
      return { read: false }
    }
  }

  /** Bytes of the (decoded) provider body. */
  push(chunk: Uint8Array): void {
    const processor = this.processor
    if (!processor || this.over) return
    try {
      processor.push(chunk)
      this.exchange.tapped()
      if (processor.final) this.done()
    } catch {
      this.done()
    }
  }

  /** The provider's body ended whole. */
  end(): void {
    if (this.over) return
    try {
      this.processor?.end()
    } catch {
      // A body that cannot be read to its end reported what it could.
    }
    this.done()
  }

  /** The provider's response failed, or the call was given up: nothing more will come. */
  fail(): void {
    this.done()
  }

  /** True once the tap read the provider's final usage. */
  get final(): boolean {
    return this.processor?.final ?? false
  }

  private done(): void {
    if (this.over) return
    this.over = true
    this.exchange.tapped()
    this.exchange.tapClosed(this.final)
    const hold = this.hold
    this.hold = undefined
    hold?.release()
  }
}
