import type { Exchange, Hold, TextPrint, TextPrints, UpstreamTap } from '@usagewire/core'
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
  /** Its place among the client requests, in the order they came. */
  seq: number
  /** The print of its answer's text, once the answer is read whole (undefined: no text). */
  key?: string | undefined
}

/** A call the gateway made to the provider, seen on the provider-facing listener. */
interface ProviderCall {
  reading: Reading
  settled: boolean
  /**
   * How many client requests had come when the call began: it can belong only to those (`seq` below
   * this) that were not decided then, which are those not decided now (a decision is never undone).
   */
  seq: number
  /** The prints of its text, once read whole: all of it, and without the reasoning (undefined: no text). */
  keys?: readonly string[] | undefined
  prints?: TextPrints | undefined
}

/** A text still being read, `prints`, may yet become `text`: with its reasoning or without. */
function mayBecome(prints: TextPrints, text: TextPrint): boolean {
  return prints.all.mayBecome(text) || (prints.answer !== prints.all && prints.answer.mayBecome(text))
}

/** How soon a join that waits for text still coming is looked at again, in ms. */
const RECHECK_MS = 20

/** `index[key]`, a set of what has that key. */
function addTo<T>(index: Map<string, Set<T>>, key: string, value: T): void {
  const set = index.get(key)
  if (set) set.add(value)
  else index.set(key, new Set([value]))
}

function removeFrom<T>(index: Map<string, Set<T>>, key: string, value: T): void {
  const set = index.get(key)
  if (set?.delete(value) && set.size === 0) index.delete(key)
}

/**
 * Joins each client-facing request to the gateway's own call to the provider, never guessing: by the
 * correlation header the sidecar added (when the gateway passes client headers on), else by content
 * (the text the client received equals the provider's, with or without its reasoning), else by there
 * being one request in flight when the call began. A call can belong only to a request in flight when
 * it began; a match that is not unique joins nothing, and the record says why. A joined call's usage
 * enters the request's ledger as the tap's, so the client-facing stream carries it.
 *
 * Texts are compared by their prints (docs/sidecar.md#correlation), found through an index by print,
 * and what a decision waits for is told by the order requests and calls came in: each time something
 * is read whole, deciding what can be decided costs time in proportion to what is in flight, not to
 * its square.
 */
export class Correlator {
  /** Requests in flight, in the order they came (a Map keeps it). */
  private readonly clients = new Map<string, ClientCall>()
  /** Requests not decided yet, in the order they came. */
  private readonly open = new Set<ClientCall>()
  /** Calls not joined yet, in the order they came. */
  private readonly calls = new Set<ProviderCall>()
  /** Requests answered whole and not decided, by the print of their text. */
  private readonly clientsByText = new Map<string, Set<ClientCall>>()
  /** Calls read whole and not decided, by the prints of their text (with and without the reasoning). */
  private readonly callsByText = new Map<string, Set<ProviderCall>>()
  private seq = 0
  /** A join waits for answers or calls still coming, whose text so far may rule them out: look again soon. */
  private waiting = false
  private recheck: ReturnType<typeof setTimeout> | undefined
  private readonly content: boolean
  private readonly single: boolean

  constructor(
    private readonly strategies: readonly Strategy[],
    private readonly maxWaitMs: number,
  ) {
    this.content = strategies.includes('content')
    this.single = strategies.includes('single')
  }

  /** A client request is on its way to the gateway with correlation id `id`. */
  client(id: string, exchange: Exchange): void {
    // Until something joins it, the record says why nothing did.
    exchange.correlate({ by: 'none', reason: 'no provider call was matched to it' })
    const client: ClientCall = {
      id,
      exchange,
      hold: exchange.hold(this.maxWaitMs),
      reading: undefined,
      settled: false,
      byHeader: false,
      started: Date.now(),
      seq: this.seq++,
    }
    this.clients.set(id, client)
    this.open.add(client)
  }

  /**
   * Does the answer to client request `id` need its text read? Only while a join by content may still
   * decide it: a request joined by the header, or decided otherwise, before its answer came needs none.
   */
  needsText(id: string): boolean {
    const client = this.clients.get(id)
    return client !== undefined && !client.settled && this.content
  }

  /** Does a provider call the header did not join need its text read (a join by content)? */
  get callsNeedText(): boolean {
    return this.content
  }

  /** The gateway answered client request `id`: its text is read from `reading`. */
  answered(id: string, reading: Reading): void {
    const client = this.clients.get(id)
    if (!client) return
    client.reading = reading
    reading.onDone(() => {
      const text = reading.prints.all
      if (text.length > 0 && !client.settled && this.clients.get(id) === client) {
        client.key = text.key
        addTo(this.clientsByText, client.key, client)
      }
      this.settle()
    })
  }

  /** Client request `id` is over (its record is written): forget it. */
  gone(id: string): void {
    const client = this.clients.get(id)
    if (!client) return
    this.clients.delete(id)
    this.decided(client)
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
            this.decided(client)
            client.byHeader = true
            client.exchange.correlate({ by: 'header' })
            client.hold.release() // the tap holds the final usage event itself
          }
          return tap
        }
      }
    }
    const call: ProviderCall = { reading, settled: false, seq: this.seq }
    this.calls.add(call)
    reading.onDone(() => {
      const { all, answer } = reading.prints
      if (all.length > 0 && !call.settled) {
        call.prints = reading.prints
        call.keys = answer !== all && answer.length > 0 ? [all.key, answer.key] : [all.key]
        for (const key of call.keys) addTo(this.callsByText, key, call)
      }
      // A call nothing joins is forgotten once no request could still be waiting for it.
      setTimeout(
        () => {
          this.drop(call)
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

  /** The request is joined, or will be joined to nothing: it is a candidate no more. */
  private decided(client: ClientCall): void {
    client.settled = true
    this.open.delete(client)
    if (client.key !== undefined) removeFrom(this.clientsByText, client.key, client)
  }

  /** The call is joined, or forgotten. */
  private drop(call: ProviderCall): void {
    call.settled = true
    this.calls.delete(call)
    if (call.keys !== undefined) for (const key of call.keys) removeFrom(this.callsByText, key, call)
  }

  /** Tries to join what can be decided now, and lets go of requests nothing can join any more. */
  private settle(): void {
    this.waiting = false
    // The first request not decided whose answer is not read whole yet: a call that began after it waits
    // for its text (it may be that call's) unless the text so far rules that out. Decisions below never
    // change it: they decide requests whose answers are read.
    let firstUnread = Infinity
    for (const client of this.open) {
      if (!client.reading?.done) {
        firstUnread = client.seq
        break
      }
    }
    for (const call of this.calls) {
      if (call.settled || !call.reading.done) continue
      if (!call.reading.whole && !call.reading.final) {
        this.drop(call) // a call that failed without usage joins nothing
        continue
      }
      // Strongest first: content, once no request whose answer is still coming may have the same text.
      if (this.content && this.byContent(call, firstUnread)) continue
      // One request in flight, once its answer is read (what it is does not matter).
      if (this.single && call.seq <= firstUnread) this.bySingle(call)
    }
    this.giveUp()
    // What waits is told by text still coming, which tells nothing as it comes: the text so far is looked
    // at again a little later, rather than only when the next answer or call ends.
    if (this.waiting && this.recheck === undefined) {
      this.recheck = setTimeout(() => {
        this.recheck = undefined
        this.settle()
      }, RECHECK_MS)
      this.recheck.unref()
    }
  }

  /**
   * A request not decided, come before `call` began, whose answer is still being read and may yet have the
   * call's text: its text so far is no longer than the call's and starts as it does.
   */
  private mayStillMatch(call: ProviderCall, firstUnread: number): boolean {
    if (call.seq <= firstUnread) return false
    const { all, answer } = call.prints!
    for (const client of this.open) {
      if (client.seq >= call.seq) break
      const reading = client.reading
      if (reading?.done) continue
      if (reading === undefined) return true // no answer yet: any text may come
      const text = reading.prints.all
      if (text.mayBecome(all) || (answer !== all && text.mayBecome(answer))) return true
    }
    return false
  }

  /** A call not joined, begun after `client` came, still being read, whose text may yet be the client's. */
  private mayBeTwin(client: ClientCall, call: ProviderCall, text: TextPrint): boolean {
    for (const other of this.calls) {
      if (other === call || other.seq <= client.seq || other.reading.done) continue
      if (mayBecome(other.reading.prints, text)) return true
    }
    return false
  }

  /** The requests decided not yet, come before `call` began, whose text is one of `keys`. */
  private sameAs(call: ProviderCall): ClientCall[] {
    const out: ClientCall[] = []
    for (const key of call.keys ?? []) {
      for (const client of this.clientsByText.get(key) ?? []) {
        if (client.seq < call.seq && !out.includes(client)) out.push(client)
      }
    }
    return out
  }

  private byContent(call: ProviderCall, firstUnread: number): boolean {
    if (call.keys === undefined) return false
    const same = this.sameAs(call)
    // No answer read whole has the call's text: one still being read may, or none does.
    if (same.length === 0) return false
    if (this.mayStillMatch(call, firstUnread)) return (this.waiting = true) // decided when it is read
    if (same.length === 1) {
      const client = same[0]!
      // Another call that began while the request was in flight may be its, and may yet be a twin.
      if (this.mayBeTwin(client, call, client.reading!.prints.all)) return (this.waiting = true) // decided when it is read
      const twins: ProviderCall[] = []
      for (const other of this.callsByText.get(client.key!) ?? []) {
        if (other !== call && other.seq > client.seq) twins.push(other)
      }
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
      this.decided(client)
      client.exchange.correlate({
        by: 'none',
        reason: `ambiguous: ${n} requests in flight with the same generated text`,
      })
      client.hold.release()
    }
    for (const call of calls) this.drop(call)
  }

  private bySingle(call: ProviderCall): void {
    // Exactly one request not decided came before the call began.
    const first = this.open.values()
    const only = first.next().value
    if (only === undefined || only.seq >= call.seq) return
    const second = first.next().value
    if (second !== undefined && second.seq < call.seq) return
    // ...and no other call not joined began after it came (any such call may be its).
    for (const other of this.calls) if (other !== call && other.seq > only.seq) return
    this.join(only, call, 'single')
  }

  private join(client: ClientCall, call: ProviderCall, by: Strategy): void {
    this.decided(client)
    this.drop(call)
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
    let lastCall = -1
    for (const call of this.calls) lastCall = call.seq
    for (const client of this.open) {
      if (client.seq >= lastCall) {
        // No call not joined began after this request came, nor after any later one.
        if (client.reading?.done) client.hold.release()
      }
    }
  }
}
