import type { Exchange, Hold, UpstreamTap } from '@usagewire/core'
import type { Reading } from './reading.js'

/** How a client request is joined to the gateway's call to the provider, strongest first (docs/sidecar.md#correlation). */
export type Strategy = 'header' | 'content' | 'single'

export const STRATEGIES: readonly Strategy[] = ['header', 'content', 'single']

/** A client request the sidecar forwarded to the gateway, until its record is written. */
interface ClientCall {
  id: string
  exchange: Exchange
  /** The final usage event waits for the provider's numbers (released when joined or given up). */
  hold: Hold
  /** The gateway's answer, read for its text. */
  reading: Reading | undefined
  settled: boolean
  /** Joined by the correlation header: a later call with the same header (a retry) is its tap as well. */
  byHeader: boolean
  started: number
}

/** A call the gateway made to the provider, seen on the provider-facing listener. */
interface ProviderCall {
  reading: Reading
  settled: boolean
  /** The client requests in flight when the call began: the only ones it can belong to. */
  candidates: ReadonlySet<string>
}

/**
 * The text a client received is the provider's answer (white space aside): all of it, or all of it but
 * the reasoning, which a gateway may drop on the way (docs/sidecar.md#correlation). Compared by their
 * prints: the texts themselves are not kept.
 */
function sameText(client: Reading, provider: Reading): boolean {
  const text = client.prints.all
  if (text.length === 0) return false
  const { all, answer } = provider.prints
  return text.same(all) || (answer !== all && text.same(answer))
}

/**
 * Joins each client-facing request to the gateway's own call to the provider, never guessing: by the
 * correlation header the sidecar added (when the gateway passes client headers on), else by content
 * (the text the client received equals the provider's, with or without its reasoning), else by there
 * being one request in flight when the call began. A call can belong only to a request in flight when
 * it began; a match that is not unique joins nothing, and the record says why. A joined call's usage
 * enters the request's ledger as the tap's, so the client-facing stream carries it.
 */
export class Correlator {
  private readonly clients = new Map<string, ClientCall>()
  private readonly calls = new Set<ProviderCall>()

  constructor(
    private readonly strategies: readonly Strategy[],
    private readonly maxWaitMs: number,
  ) {}

  /** A client request is on its way to the gateway with correlation id `id`. */
  client(id: string, exchange: Exchange): void {
    // Until something joins it, the record says why nothing did.
    exchange.correlate({ by: 'none', reason: 'no provider call was matched to it' })
    this.clients.set(id, {
      id,
      exchange,
      hold: exchange.hold(this.maxWaitMs),
      reading: undefined,
      settled: false,
      byHeader: false,
      started: Date.now(),
    })
  }

  /**
   * Does the answer to client request `id` need its text read? Only while a join by content may still
   * decide it: a request joined by the header, or decided otherwise, before its answer came needs none.
   */
  needsText(id: string): boolean {
    const client = this.clients.get(id)
    return client !== undefined && !client.settled && this.strategies.includes('content')
  }

  /** Does a provider call the header did not join need its text read (a join by content)? */
  get callsNeedText(): boolean {
    return this.strategies.includes('content')
  }

  /** The gateway answered client request `id`: its text is read from `reading`. */
  answered(id: string, reading: Reading): void {
    const client = this.clients.get(id)
    if (!client) return
    client.reading = reading
    reading.onDone(() => this.settle())
  }

  /** Client request `id` is over (its record is written): forget it. */
  gone(id: string): void {
    const client = this.clients.get(id)
    if (!client) return
    this.clients.delete(id)
    client.hold.release()
    this.settle()
  }

  /**
   * The gateway called the provider. With a correlation header that names a client request in
   * flight, the call is that request's tap from its first byte (returned, to be fed); otherwise it is
   * read on its own and joined when it and its candidates are done.
   */
  call(reading: Reading, headerId: string | undefined): UpstreamTap | undefined {
    if (headerId !== undefined && this.strategies.includes('header')) {
      const client = this.clients.get(headerId)
      // A gateway that retries (a 429, a 5xx) calls again with the same header: each call is a tap, and
      // the usage of the last one read is the request's (a later tap's reading replaces an earlier one's).
      if (client && (!client.settled || client.byHeader)) {
        const tap = client.exchange.openTap(reading.path, this.maxWaitMs)
        if (tap) {
          if (!client.byHeader) {
            client.settled = true
            client.byHeader = true
            client.exchange.correlate({ by: 'header' })
            client.hold.release() // the tap holds the final usage event itself
          }
          return tap
        }
      }
    }
    const candidates = new Set<string>()
    for (const client of this.clients.values()) if (!client.settled) candidates.add(client.id)
    const call: ProviderCall = { reading, settled: false, candidates }
    this.calls.add(call)
    reading.onDone(() => {
      // A call nothing joins is forgotten once no request could still be waiting for it.
      setTimeout(
        () => {
          this.calls.delete(call)
          this.settle()
        },
        2 * this.maxWaitMs + 1000,
      ).unref()
      this.settle()
    })
    return undefined
  }

  /** Requests in flight and calls not yet joined. */
  get size(): { clients: number; calls: number } {
    return { clients: this.clients.size, calls: this.calls.size }
  }

  /** Tries to join what can be decided now, and lets go of requests nothing can join any more. */
  private settle(): void {
    for (const call of [...this.calls]) {
      if (call.settled || !call.reading.done) continue
      if (!call.reading.whole && !call.reading.final) {
        this.calls.delete(call) // a call that failed without usage joins nothing
        continue
      }
      const candidates = this.candidates(call)
      // Strongest first: content is decided once every candidate's text is known.
      if (candidates.some((client) => !client.reading?.done)) continue
      if (this.strategies.includes('content') && this.byContent(call, candidates)) continue
      if (this.strategies.includes('single')) this.bySingle(call, candidates)
    }
    this.giveUp()
  }

  private candidates(call: ProviderCall): ClientCall[] {
    const out: ClientCall[] = []
    for (const id of call.candidates) {
      const client = this.clients.get(id)
      if (client && !client.settled) out.push(client)
    }
    return out
  }

  /** Other calls not yet joined that could belong to `client`. */
  private rivals(call: ProviderCall, client: ClientCall): ProviderCall[] {
    return [...this.calls].filter((other) => other !== call && !other.settled && other.candidates.has(client.id))
  }

  private byContent(call: ProviderCall, candidates: ClientCall[]): boolean {
    if (call.reading.prints.all.length === 0) return false
    const same = candidates.filter((client) => sameText(client.reading!, call.reading))
    if (same.length === 0) return false
    if (same.length === 1) {
      const client = same[0]!
      const rivals = this.rivals(call, client)
      if (rivals.some((other) => !other.reading.done)) return true // decided when they are
      const twins = rivals.filter((other) => sameText(client.reading!, other.reading))
      if (twins.length === 0) {
        this.join(client, call, 'content')
        return true
      }
      this.ambiguous([client], [call, ...twins], twins.length + 1)
      return true
    }
    // Never another request's numbers: none of them is joined, and their final events wait no longer.
    this.ambiguous(same, [call], same.length)
    return true
  }

  private ambiguous(clients: ClientCall[], calls: ProviderCall[], n: number): void {
    for (const client of clients) {
      client.settled = true
      client.exchange.correlate({
        by: 'none',
        reason: `ambiguous: ${n} requests in flight with the same generated text`,
      })
      client.hold.release()
    }
    for (const call of calls) {
      call.settled = true
      this.calls.delete(call)
    }
  }

  private bySingle(call: ProviderCall, candidates: ClientCall[]): void {
    if (candidates.length !== 1) return
    const client = candidates[0]!
    if (this.rivals(call, client).length === 0) this.join(client, call, 'single')
  }

  private join(client: ClientCall, call: ProviderCall, by: Strategy): void {
    client.settled = true
    call.settled = true
    this.calls.delete(call)
    const { ledger } = call.reading
    client.exchange.ledger.observe('tap', ledger.usage(), ledger.sources())
    client.exchange.correlate({ by })
    client.exchange.tapped()
    client.hold.release()
  }

  /**
   * A request whose answer is over, and that no call still open or unjoined can belong to, will be
   * joined to nothing: its final usage event waits no longer (it would wait out `maxWaitMs`).
   */
  private giveUp(): void {
    for (const client of this.clients.values()) {
      if (client.settled || !client.reading?.done) continue
      const open = [...this.calls].some((call) => !call.settled && call.candidates.has(client.id))
      if (!open) client.hold.release()
    }
  }
}
