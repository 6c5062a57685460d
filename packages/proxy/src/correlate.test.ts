import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { TextPrint, type Exchange, type Hold, type TextPrints, type UpstreamTap } from '@usagewire/core'
import { Correlator, type Strategy } from './correlate.js'
import { Reading as SidecarReading } from './reading.js'

describe('Correlator.needsText', () => {
  /** What the correlator asks of an Exchange, and no more. */
  const exchange = () =>
    ({
      correlate() {},
      hold: () => ({ release() {} }),
      openTap: () => ({}),
      tapped() {},
    }) as unknown as Exchange

  it('a request joined by the header before its answer came needs no text; one not joined yet does', () => {
    const correlator = new Correlator(['header', 'content', 'single'], 1000)
    correlator.client('a', exchange())
    correlator.client('b', exchange())
    expect(correlator.needsText('a')).toBe(true)
    expect(correlator.call(new SidecarReading('/v1/messages'), 'a')).toBeDefined()
    expect(correlator.needsText('a')).toBe(false)
    expect(correlator.needsText('b')).toBe(true)
    // A call whose header names no request in flight is read for a join by content.
    expect(correlator.call(new SidecarReading('/v1/messages'), 'nobody')).toBeUndefined()
    expect(correlator.callsNeedText).toBe(true)
    expect(correlator.needsText('gone')).toBe(false)
  })

  it('without the content strategy nothing needs text', () => {
    const correlator = new Correlator(['header', 'single'], 1000)
    correlator.client('a', exchange())
    expect(correlator.needsText('a')).toBe(false)
    expect(correlator.callsNeedText).toBe(false)
  })
})

/** What the correlator reads of a Reading, set by hand. */
class ModelReading {
  readonly path = '/v1/messages'
  done = false
  whole = false
  final = false
  prints: TextPrints = { all: new TextPrint(), answer: new TextPrint() }
  readonly ledger = { usage: () => ({}), sources: () => ({}) }
  private listeners: Array<() => void> = []
  onDone(listener: () => void): void {
    if (this.done) listener()
    else this.listeners.push(listener)
  }
  /** The text read so far, the body still coming. */
  progress(text: string, reasoning = ''): void {
    this.prints = ModelReading.prints(text, reasoning)
  }
  static prints(text: string, reasoning: string): TextPrints {
    const all = new TextPrint()
    all.add(reasoning + text)
    if (reasoning === '') return { all, answer: all }
    const answer = new TextPrint()
    answer.add(text)
    return { all, answer }
  }
  finish(text: string, reasoning: string, whole: boolean, final: boolean): void {
    const all = new TextPrint()
    all.add(reasoning + text)
    let answer = all
    if (reasoning !== '') {
      answer = new TextPrint()
      answer.add(text)
    }
    this.prints = { all, answer }
    this.whole = whole
    this.final = final
    this.done = true
    for (const listener of this.listeners.splice(0)) listener()
  }
}

/** What the correlator asks of an Exchange, with what it was told. */
function modelExchange() {
  const state = { correlation: undefined as unknown, released: 0, tapped: 0, taps: 0 }
  const exchange = {
    correlate(c: unknown) {
      state.correlation = c
    },
    hold: () => ({ release: () => void state.released++ }),
    openTap: () => {
      state.taps++
      return {}
    },
    tapped() {
      state.tapped++
    },
    ledger: { observe() {} },
  } as unknown as Exchange
  return { exchange, state }
}

type Op =
  | { op: 'client' }
  | { op: 'answered'; client: number }
  | { op: 'call'; header: number | undefined }
  | { op: 'finishClient'; client: number; text: number; whole: boolean }
  | { op: 'finishCall'; call: number; text: number; reasoning: number; whole: boolean; final: boolean }
  | { op: 'gone'; client: number }

describe('Correlator, indexed', () => {
  // Few texts, so that matches, twins and ambiguities are common; '' is no text, ' a' is 'a' with space.
  const TEXTS = ['', 'a', 'b', ' a', 'c d', 'cd']
  const text = fc.nat(TEXTS.length - 1)

  /** One client request's life: what the gateway and the provider answer, and which steps happen. */
  const life = fc.record({
    text,
    // The provider's text: the same as the client's (mostly), or another (a gateway that rewrites it).
    callText: fc.option(text, { freq: 3 }),
    reasoning: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: text }),
    header: fc.boolean(),
    calls: fc.nat(2),
    answered: fc.boolean(),
    whole: fc.boolean(),
    callWhole: fc.boolean(),
    final: fc.boolean(),
    gone: fc.boolean(),
  })

  type Life = typeof life extends fc.Arbitrary<infer T> ? T : never

  /** The lives' steps, each life's in its order, interleaved as `schedule` says. */
  function steps(lives: Life[], schedule: number[]): Op[] {
    const queues = lives.map((l, i) => {
      const q: Array<(calls: number) => Op> = [() => ({ op: 'client' })]
      const callAt: number[] = []
      for (let k = 0; k < l.calls; k++) {
        q.push((calls) => {
          callAt.push(calls)
          return { op: 'call', header: l.header ? i : undefined }
        })
      }
      if (l.answered) q.push(() => ({ op: 'answered', client: i }))
      for (let k = 0; k < l.calls; k++) {
        q.push(() => ({
          op: 'finishCall',
          call: callAt[k]!,
          text: l.callText ?? l.text,
          reasoning: l.reasoning,
          whole: l.callWhole,
          final: l.final,
        }))
      }
      if (l.answered) q.push(() => ({ op: 'finishClient', client: i, text: l.text, whole: l.whole }))
      if (l.gone) q.push(() => ({ op: 'gone', client: i }))
      return q
    })
    const out: Op[] = []
    let calls = 0
    const take = (i: number) => {
      const next = queues[i]!.shift()
      if (!next) return
      const step = next(calls)
      if (step.op === 'call') calls++
      out.push(step)
    }
    // Clients are numbered as they come: a life's first step makes client `i` only if it comes in order.
    let started = 0
    for (const at of schedule) {
      const i = at % lives.length
      if (i >= started) {
        take(started++)
        continue
      }
      take(i)
    }
    while (started < lives.length) take(started++)
    for (let i = 0; i < lives.length; i++) while (queues[i]!.length > 0) take(i)
    return out
  }

  const strategies = fc.constantFrom<Strategy[]>(
    ['header', 'content', 'single'],
    ['content', 'single'],
    ['content'],
    ['header', 'single'],
  )
  const scenario = fc
    .tuple(fc.array(life, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 60 }))
    .map(([lives, schedule]) => steps(lives, schedule))

  it('decides every request as the correlator that scanned everything did, after every step', () => {
    fc.assert(
      fc.property(strategies, scenario, (strategy, ops) => {
        const sides = [new Correlator(strategy, 60_000), new Reference(strategy, 60_000)].map((correlator) => ({
          correlator,
          clients: [] as Array<{
            id: string
            state: ReturnType<typeof modelExchange>['state']
            reading?: ModelReading
          }>,
          calls: [] as ModelReading[],
        }))
        for (const step of ops) {
          for (const side of sides) {
            const c = side.correlator as Correlator
            const client = 'client' in step ? side.clients[step.client] : undefined
            switch (step.op) {
              case 'client': {
                const { exchange, state } = modelExchange()
                const id = `r${side.clients.length}`
                side.clients.push({ id, state })
                c.client(id, exchange)
                break
              }
              case 'answered':
                if (client && !client.reading) {
                  client.reading = new ModelReading()
                  c.answered(client.id, client.reading as unknown as SidecarReading)
                }
                break
              case 'call': {
                const reading = new ModelReading()
                side.calls.push(reading)
                const id = step.header === undefined ? undefined : side.clients[step.header]?.id
                c.call(reading as unknown as SidecarReading, id)
                break
              }
              case 'finishClient':
                if (client?.reading && !client.reading.done)
                  client.reading.finish(TEXTS[step.text]!, '', step.whole, false)
                break
              case 'finishCall': {
                const reading = side.calls[step.call]
                if (reading && !reading.done)
                  reading.finish(TEXTS[step.text]!, TEXTS[step.reasoning]!, step.whole, step.final)
                break
              }
              case 'gone':
                if (client) c.gone(client.id)
                break
            }
          }
          const [indexed, reference] = sides.map((side) =>
            side.clients.map(({ state }) => ({ ...state, released: state.released > 0 })),
          )
          expect(indexed).toEqual(reference)
        }
      }),
      { numRuns: 4000 },
    )
  })

  it('joins 2,000 requests in flight at once by content, each to its own call', () => {
    const correlator = new Correlator(['header', 'content', 'single'], 60_000)
    const n = 2000
    const states = []
    const calls: ModelReading[] = []
    for (let i = 0; i < n; i++) {
      const { exchange, state } = modelExchange()
      states.push(state)
      correlator.client(`r${i}`, exchange)
      const call = new ModelReading()
      calls.push(call)
      correlator.call(call as unknown as SidecarReading, undefined)
    }
    // Answers end in another order than the requests came in.
    for (let k = 0; k < n; k++) {
      const i = (k * 7919) % n
      const answer = new ModelReading()
      correlator.answered(`r${i}`, answer as unknown as SidecarReading)
      calls[i]!.finish(`answer ${i}`, 'thinking', true, true)
      answer.finish(`answer ${i}`, '', true, false)
    }
    expect(states.every((s) => (s.correlation as { by: string }).by === 'content' && s.tapped === 1)).toBe(true)
    expect(correlator.size).toEqual({ clients: n, calls: 0 })
  })

  describe('while other answers are still coming', () => {
    /** Requests `a` and `c` in flight, each with its call; `c`'s answer and call read whole, with `text`. */
    function twoInFlight(text: string) {
      const correlator = new Correlator(['content', 'single'], 60_000)
      const a = modelExchange()
      const c = modelExchange()
      correlator.client('a', a.exchange)
      correlator.client('c', c.exchange)
      const callA = new ModelReading()
      const callC = new ModelReading()
      correlator.call(callA as unknown as SidecarReading, undefined)
      correlator.call(callC as unknown as SidecarReading, undefined)
      const answerA = new ModelReading()
      correlator.answered('a', answerA as unknown as SidecarReading)
      const answerC = new ModelReading()
      correlator.answered('c', answerC as unknown as SidecarReading)
      return { correlator, a, c, callA, callC, answerA, answerC, text }
    }

    it('joins at once when what is still coming already differs, or is longer', () => {
      for (const sofar of ['Sure, here', 'Something else entirely', 'Hi there, hi there, hi there, and more']) {
        const t = twoInFlight('Hi there')
        t.callA.progress(sofar)
        t.answerA.progress(sofar)
        t.callC.finish(t.text, '', true, true)
        t.answerC.finish(t.text, '', true, false)
        expect(t.c.state.correlation).toEqual({ by: 'content' })
        expect(t.c.state.released).toBe(1)
      }
    })

    it('waits for a call still coming whose text so far starts the same, and joins nothing if it ends the same', () => {
      const t = twoInFlight('Hi there, friend')
      t.callA.progress('Hi th')
      t.answerA.progress('Hi th')
      t.callC.finish(t.text, '', true, true)
      t.answerC.finish(t.text, '', true, false)
      expect(t.c.state.correlation).toEqual({ by: 'none', reason: 'no provider call was matched to it' })
      t.callA.finish(t.text, '', true, true)
      t.answerA.finish(t.text, '', true, false)
      expect(t.c.state.correlation).toEqual({
        by: 'none',
        reason: 'ambiguous: 2 requests in flight with the same generated text',
      })
    })

    it('waits for a call still coming whose answer so far, its reasoning aside, starts the same', () => {
      const t = twoInFlight('Hi there, friend')
      // Its reasoning differs, but a gateway that drops the reasoning would send only the answer. (`a`'s own
      // answer is read whole first, so only the call still coming can hold `c`'s join.)
      t.answerA.finish('Hi yourself', '', true, false)
      t.callA.progress('Hi', 'Let me think')
      t.callC.finish(t.text, '', true, true)
      t.answerC.finish(t.text, '', true, false)
      expect(t.c.state.correlation).toEqual({ by: 'none', reason: 'no provider call was matched to it' })
      t.callA.finish('Hi yourself', 'Let me think', true, true)
      expect(t.c.state.correlation).toEqual({ by: 'content' })
      expect(t.a.state.correlation).toEqual({ by: 'content' })
    })

    it("a call waits for an older request's answer still coming that starts as the call's text", () => {
      const correlator = new Correlator(['content'], 60_000)
      const a = modelExchange()
      const c = modelExchange()
      correlator.client('a', a.exchange)
      correlator.client('c', c.exchange)
      const call = new ModelReading()
      correlator.call(call as unknown as SidecarReading, undefined)
      const answerA = new ModelReading()
      const answerC = new ModelReading()
      correlator.answered('a', answerA as unknown as SidecarReading)
      correlator.answered('c', answerC as unknown as SidecarReading)
      answerA.progress('The answ')
      call.finish('The answer', '', true, true)
      answerC.finish('The answer', '', true, false)
      expect(c.state.correlation).toEqual({ by: 'none', reason: 'no provider call was matched to it' })
      answerA.finish('The answer is no', '', true, false)
      expect(c.state.correlation).toEqual({ by: 'content' })
    })
  })

  it('a match waits for every call that began after its request came, not only for the oldest still read', () => {
    const correlator = new Correlator(['content'], 60_000)
    const a = modelExchange()
    const c = modelExchange()
    correlator.client('a', a.exchange)
    const z = new ModelReading() // the gateway's call for `a`, still being read
    correlator.call(z as unknown as SidecarReading, undefined)
    correlator.client('c', c.exchange)
    const x = new ModelReading()
    const y = new ModelReading() // began after `c` came: it may be `c`'s too
    correlator.call(x as unknown as SidecarReading, undefined)
    correlator.call(y as unknown as SidecarReading, undefined)
    for (const [id, text] of [
      ['a', 'first'],
      ['c', 'second'],
    ] as const) {
      const reading = new ModelReading()
      correlator.answered(id, reading as unknown as SidecarReading)
      reading.finish(text, '', true, false)
    }
    x.finish('second', '', true, true)
    expect(c.state.correlation).toEqual({ by: 'none', reason: 'no provider call was matched to it' })
    y.finish('second', '', true, true)
    expect(c.state.correlation).toEqual({
      by: 'none',
      reason: 'ambiguous: 2 requests in flight with the same generated text',
    })
    expect(c.state.released).toBe(1)
  })
})

// ---- the correlator as first written, deciding by scans over everything in flight: the model the
// indexed one must agree with, decision for decision ------------------------------------------------

type Reading = ModelReading
/** A client request the sidecar forwarded to the gateway, until its record is written. */
interface RefClient {
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
interface RefCall {
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
function refSameText(client: Reading, provider: Reading): boolean {
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
class Reference {
  private readonly clients = new Map<string, RefClient>()
  private readonly calls = new Set<RefCall>()

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
    const call: RefCall = { reading, settled: false, candidates }
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

  private candidates(call: RefCall): RefClient[] {
    const out: RefClient[] = []
    for (const id of call.candidates) {
      const client = this.clients.get(id)
      if (client && !client.settled) out.push(client)
    }
    return out
  }

  /** Other calls not yet joined that could belong to `client`. */
  private rivals(call: RefCall, client: RefClient): RefCall[] {
    return [...this.calls].filter((other) => other !== call && !other.settled && other.candidates.has(client.id))
  }

  private byContent(call: RefCall, candidates: RefClient[]): boolean {
    if (call.reading.prints.all.length === 0) return false
    const same = candidates.filter((client) => refSameText(client.reading!, call.reading))
    if (same.length === 0) return false
    if (same.length === 1) {
      const client = same[0]!
      const rivals = this.rivals(call, client)
      if (rivals.some((other) => !other.reading.done)) return true // decided when they are
      const twins = rivals.filter((other) => refSameText(client.reading!, other.reading))
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

  private ambiguous(clients: RefClient[], calls: RefCall[], n: number): void {
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

  private bySingle(call: RefCall, candidates: RefClient[]): void {
    if (candidates.length !== 1) return
    const client = candidates[0]!
    if (this.rivals(call, client).length === 0) this.join(client, call, 'single')
  }

  private join(client: RefClient, call: RefCall, by: Strategy): void {
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
