import { streamsJsonArray } from './dialects/registry.js'
import type { DialectSpec } from './dialects/types.js'
import { framingFor, isStreaming, type FramingKind } from './framing/index.js'
import type { HeaderLookup } from './head.js'
import { Ledger } from './ledger.js'
import { warn, type Logger } from './log.js'
import {
  createProcessor,
  DEFAULT_MAX_EVENT_BYTES,
  type HoldPolicy,
  type Processor,
  type ProcessorResult,
} from './processor.js'
import type { Pricer } from './cost/price.js'
import type { RecordCorrelation, RecordUsage, UsageRecord, UsageStatus } from './record.js'
import type { Sinks } from './sinks.js'
import { matchRoute, routeOf } from './routes.js'
import { UpstreamTap } from './tap.js'
import { isObject } from './usage.js'

// The headers a read body's new bytes make untrue, shared by every response (nothing writes to them).
const REMOVE_LENGTH: readonly string[] = Object.freeze(['content-length'])
const REMOVE_DECODED: readonly string[] = Object.freeze(['content-length', 'content-encoding'])

/** How long a client-facing final usage event waits for the upstream tap, by default (ms). */
export const DEFAULT_MAX_WAIT_MS = 1000
/** How long a held `message_start` waits for the prompt's true counts, by default (ms). */
export const DEFAULT_MAX_HOLD_MS = 5000
/** How long the upstream is read on after the client left (`onAbort: 'drain'`), by default (ms). */
export const DEFAULT_MAX_DRAIN_MS = 30_000

export type { HeaderLookup }

/** What an adapter knows about the request when it begins an Exchange. */
export interface RequestInfo {
  method: string
  /** The path as the client sent it (a query string is ignored). */
  url: string
  headers?: HeaderLookup
  /** The parsed request body, when the framework has one (`express.json()`, Fastify, koa-bodyparser). */
  body?: unknown
}

/** The response head as the adapter sees it, before any of it is sent. */
export interface ResponseHead {
  status: number
  headers: HeaderLookup
}

/** What the response's carrier can do, so the decision at the head is one it can carry out. */
export interface Carrier {
  /** Content encodings the carrier can decode (`gzip`, `deflate`, `br`). */
  decoders: readonly string[]
}

/** The decision at the response head (docs/architecture.md#the-exchange). */
export type HeadDecision =
  | { read: false }
  | {
      read: true
      framing: FramingKind
      /** The content-encoding to decode before reading; the body then leaves decoded (identity). */
      decode: string | undefined
      /** Headers that no longer hold for the body that leaves: remove them before the head is sent. */
      remove: readonly string[]
    }

/** How the body ended, as the carrier saw it. */
export type Outcome =
  /** The body ended as the writer ended it. */
  | { kind: 'end' }
  /** The client went away before the body ended. */
  | { kind: 'abort' }
  /** The gateway's side cut the body (an upstream reset, the response destroyed by the gateway). */
  | { kind: 'cut'; reason: string }

/** A bounded wait for a truer source before a final usage event leaves (docs/architecture.md#hold-points). */
export interface Hold {
  release(): void
}

/** Where an Exchange sends bytes it released after a hold. */
export interface Port {
  write(chunks: Uint8Array[]): void
  /** The body's end was deferred by a hold and is due now. */
  end(): void
}

/**
 * What the client-facing `message_start` does when the prompt's true counts are not known yet
 * (docs/truth-sources.md#message_start-policies).
 */
export type MessageStartPolicy = 'patch-final' | 'hold' | 'estimate'

/** What an Exchange shares with every other one of the same middleware. */
export interface ExchangeContext {
  /** The `message_start` policy, or how to choose it per request; default `patch-final`. */
  messageStart?: MessageStartPolicy | ((request: RequestInfo) => MessageStartPolicy) | undefined
  /** The longest a held `message_start` waits, in ms. */
  maxHoldMs?: number | undefined
  /** Estimates a request body's prompt tokens, for the `estimate` policy. */
  estimateInput?: ((body: unknown, dialect: string | undefined) => number | undefined) | undefined
  /** Ask a streaming OpenAI Chat upstream for its usage chunk when the client did not. */
  ensureStreamUsage?: boolean | undefined
  /** What a client that leaves early means for the upstream: cancel it, or read it to its end for the usage. */
  onAbort?: 'cancel' | 'drain' | undefined
  /** The longest a drain after a client abort reads on, in ms. */
  maxDrainMs?: number | undefined
  /** Estimates tokens of generated text, for the output of a response the client left early. */
  estimateOutput?: ((text: string) => number) | undefined
  sinks: Sinks
  logger: Logger | undefined
  maxEventBytes: number | undefined
  attributes?: ((request: RequestInfo) => Record<string, string> | undefined) | undefined
  /** Prices a record's usage (docs/cost.md); absent when cost is off. */
  price?: Pricer | undefined
}

const callSafely = (fn: () => void): void => {
  try {
    fn()
  } catch {
    // What runs after the record never fails it.
  }
}

const since = (start: number): number => Math.round((performance.now() - start) * 100) / 100

const text = (value: ReturnType<HeaderLookup>): string =>
  value === undefined || value === null ? '' : Array.isArray(value) ? value.join(', ') : String(value)

/** Request facts read from a parsed request body: model, whether a stream was asked for. */
function requestFacts(body: unknown): { model: string | undefined; stream: boolean | undefined } {
  if (!isObject(body)) return { model: undefined, stream: undefined }
  return {
    model: typeof body.model === 'string' ? body.model : undefined,
    stream: typeof body.stream === 'boolean' ? body.stream : undefined,
  }
}

/**
 * One LLM request, from its head to its record (docs/architecture.md#the-exchange). It owns the request
 * facts, the ledger every source writes to, the decision at the response head, the client-facing
 * processor and its hold points, and finishing into exactly one record handed to every sink. Adapters
 * connect their framework's response to it; nothing else builds records or owns a ledger.
 */
export class Exchange implements HoldPolicy {
  readonly ledger = new Ledger()
  readonly method: string
  /** The request path without its query string. */
  readonly route: string
  /** The model and `stream` flag the request asked for, when the adapter saw its body. */
  readonly requested: { model: string | undefined; stream: boolean | undefined }
  private readonly requestId: string
  private responseId = ''
  private readonly started = performance.now()
  private firstByteMs: number | null = null
  private processor: Processor | undefined
  private framing: FramingKind | undefined
  private status = 0
  private notRead: string | undefined
  private ignored = false
  private holds = 0
  /** Holds whose wait has not begun: it begins when a final usage event is held (`shouldHold`). */
  private holdClocks: Array<() => void> | undefined
  private port: Port | undefined
  private finished: UsageRecord | undefined | null = null
  private attributes: Record<string, string> | undefined
  private policy: MessageStartPolicy = 'patch-final'
  private estimated = false
  /** usagewire asked the upstream for usage-only chunks the client did not ask for. */
  private addedStreamUsage = false
  private startTimer: ReturnType<typeof setTimeout> | undefined
  private correlation: RecordCorrelation | undefined
  /** Taps reading the provider's response now. */
  private openTaps = 0
  /** How the carrier reads the rest of the upstream body after the client left (onAbort: 'drain'). */
  private drainer: ((done: () => void) => boolean) | undefined
  private draining: { outcome: Outcome; self: boolean; timer: ReturnType<typeof setTimeout> } | undefined
  /** The drain after a client abort is over (read to its end, or `maxDrainMs` passed): never again. */
  private drained = false
  /** A tap read the provider's final usage. */
  private tapFinal = false
  /** What runs once the record is out (a detached upstream call to let go of). */
  private afterFinish: Array<() => void> | undefined
  /**
   * @internal The carrier that holds this Exchange's response (node:http's interception), for code that
   * reaches the Exchange from the response's request; core never reads it.
   */
  carrier: object | undefined = undefined

  constructor(
    request: RequestInfo,
    route: string,
    /** The dialect the route names; the body may show another. */
    readonly dialect: DialectSpec | undefined,
    private readonly context: ExchangeContext,
  ) {
    this.method = request.method
    this.route = route
    this.requested = requestFacts(request.body)
    this.requestId = text(request.headers?.('x-request-id'))
    if (context.attributes) {
      try {
        this.attributes = context.attributes(request) ?? undefined
      } catch (error) {
        this.warn(`attributes(request) failed: ${(error as Error).message}`)
      }
    }
    const policy = context.messageStart
    if (policy !== undefined) {
      try {
        this.policy = (typeof policy === 'function' ? policy(request) : policy) ?? 'patch-final'
      } catch (error) {
        this.warn(`messageStart(request) failed: ${(error as Error).message}`)
      }
    }
    if (request.body !== undefined) this.readBody(request.body)
  }

  /** What the policies need from the request body: an estimate of its prompt, stream usage asked for. */
  private readBody(body: unknown): void {
    if (this.policy === 'estimate' && !this.estimated && this.context.estimateInput) {
      this.estimated = true
      try {
        const input = this.context.estimateInput(body, this.dialect?.id)
        if (input !== undefined) this.ledger.observe('estimate', { input }, { input: 'estimate:request' })
      } catch (error) {
        this.warn(`estimateInput failed: ${(error as Error).message}`)
      }
    }
    if (this.context.ensureStreamUsage && this.dialect?.id === 'openai-chat') this.addStreamUsage(body)
  }

  /**
   * A streaming OpenAI Chat request without `stream_options.include_usage`: the flag is added to the
   * parsed body the gateway forwards, and the usage-only chunk it brings is left out of the client's
   * stream (docs/truth-sources.md#ensurestreamusage).
   */
  private addStreamUsage(body: unknown): void {
    if (this.addedStreamUsage || this.processor || !isObject(body) || body.stream !== true) return
    const options = isObject(body.stream_options) ? body.stream_options : undefined
    if (options?.include_usage === true) return
    body.stream_options = { ...options, include_usage: true }
    this.addedStreamUsage = true
  }

  /**
   * A request body the framework parses only after the Exchange began (Fastify parses it after
   * `onRequest`, where the response is already intercepted): it tells what the request asked for, where
   * the body given to `begin` did not.
   */
  readRequestBody(body: unknown): void {
    const facts = requestFacts(body)
    this.requested.model ??= facts.model
    this.requested.stream ??= facts.stream
    if (body !== undefined) this.readBody(body)
  }

  // ---- the response head --------------------------------------------------------------------------

  /**
   * Decides, once, from the response head, whether the body is one to read; what framing, what decoding
   * and which headers change. A response that is not read is left alone and still yields its record
   * (unless it cannot carry an LLM answer: a 204, a 304).
   */
  respond(head: ResponseHead, carrier: Carrier): HeadDecision {
    this.status = head.status
    this.responseId = text(head.headers('request-id')) || text(head.headers('x-request-id'))
    if (head.status === 204 || head.status === 304 || (head.status >= 100 && head.status < 200)) {
      this.ignored = true // nothing was generated, nothing to record
      return { read: false }
    }
    // Counts in the head (Bedrock InvokeModel): known before the body, replaced by any it reports.
    const fromHead = this.dialect?.headUsage?.((name) => text(head.headers(name)) || undefined)
    if (fromHead) this.ledger.observe('stream', fromHead.usage, fromHead.sources)
    const contentType = text(head.headers('content-type'))
    const framing = framingFor(contentType, streamsJsonArray(this.dialect, this.route))
    if (!framing) {
      this.notRead = `content-type "${contentType}" is not a body usagewire reads`
      return { read: false }
    }
    const encoding = text(head.headers('content-encoding')).trim().toLowerCase()
    const decode = encoding && encoding !== 'identity' ? encoding : undefined
    if (decode && !carrier.decoders.includes(decode)) {
      this.notRead = `content-encoding "${encoding}" is not one usagewire decodes`
      return { read: false }
    }
    this.framing = framing
    this.processor = createProcessor({
      framing,
      dialect: this.dialect,
      route: this.route,
      maxEventBytes: this.context.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES,
      ledger: this.ledger,
      hold: this,
      zeroStartIsUnknown: this.policy === 'estimate',
      dropUsageOnly: this.addedStreamUsage,
      collectText: this.context.estimateOutput !== undefined,
    })
    // A stream's length is not known ahead, nor a rewritten body's; a decoded body leaves as identity.
    return { read: true, framing, decode, remove: decode ? REMOVE_DECODED : REMOVE_LENGTH }
  }

  /** True when the response head was decided and the body is being read. */
  get reading(): boolean {
    return this.processor !== undefined
  }

  /**
   * True when the body being read is a stream of events (SSE, a streamed JSON array, NDJSON, an AWS event
   * stream): a carrier flushes each write through a compressor rather than letting it gather a window.
   */
  get streaming(): boolean {
    return this.framing !== undefined && isStreaming(this.framing)
  }

  // ---- the body -----------------------------------------------------------------------------------

  /** Bytes of the (decoded) body in; the bytes to send now out. */
  push(chunk: Uint8Array): Uint8Array[] {
    const processor = this.processor
    // Bytes written after the record (a gateway still writing to a response the client closed) pass.
    if (processor === undefined || this.finished !== null) return [chunk]
    const out = processor.push(chunk)
    if (this.firstByteMs === null && out.length > 0) this.firstByteMs = since(this.started)
    return out
  }

  /**
   * The body ended; returns its last bytes. When `deferred` is true a hold keeps the end: the rest and
   * the end come through the port given here.
   */
  end(port?: Port): { chunks: Uint8Array[]; deferred: boolean } {
    const processor = this.processor!
    const chunks = processor.end()
    if (processor.holding) {
      if (port) this.port = port
      return { chunks, deferred: true }
    }
    return { chunks, deferred: false }
  }

  /** From now on every byte passes untouched, for `reason`; returns the bytes the processor held. */
  passthrough(reason: string): Uint8Array[] {
    if (!this.processor) {
      this.notRead ??= reason
      return []
    }
    return this.processor.passthrough(reason)
  }

  /** Where bytes a hold kept, and an end it deferred, go when the hold is released. */
  connect(port: Port): void {
    this.port = port
  }

  /** The result of reading so far (tests, the inspect CLI). */
  result(): ProcessorResult | undefined {
    return this.processor?.result()
  }

  /** Where and why the body passes untouched from some point on, if it does (without making a result). */
  get failure(): ProcessorResult['passthrough'] {
    return this.processor?.failure
  }

  /** True once usagewire rewrote an event of the body: a validator the upstream gave no longer holds. */
  get rewrote(): boolean {
    return this.processor?.rewrote === true
  }

  // ---- hold points --------------------------------------------------------------------------------

  /** The processor asks before an event with final usage leaves. */
  shouldHold(): boolean {
    if (this.holds === 0) return false
    const clocks = this.holdClocks
    if (clocks !== undefined) {
      this.holdClocks = undefined
      for (const start of clocks) start()
    }
    return true
  }

  /**
   * The `hold` policy: the first usage block waits, unless the provider's own prompt counts are known
   * already, for at most `maxHoldMs` (docs/truth-sources.md#message_start-policies).
   */
  holdStart(): boolean {
    if (this.policy !== 'hold' || this.ledger.kindOf('input') === 'tap') return false
    const timer = setTimeout(() => this.releaseStart(), this.context.maxHoldMs ?? DEFAULT_MAX_HOLD_MS)
    timer.unref?.()
    this.startTimer = timer
    return true
  }

  /** The stream's own final usage was read while its start waits: enough, unless a tap is on its way. */
  startSettled(): boolean {
    return this.holds === 0 || this.ledger.kindOf('input') === 'tap'
  }

  /** The upstream tap read something: a held start whose truth is now known leaves. */
  tapped(): void {
    if (this.processor?.holdingStart && this.ledger.kindOf('input') === 'tap') this.releaseStart()
  }

  private releaseStart(): void {
    clearTimeout(this.startTimer)
    this.startTimer = undefined
    if (this.processor?.holdingStart) this.releaseHeld(true)
  }

  /**
   * The gateway's own call to the provider at `path` began while this request is served: an
   * {@link UpstreamTap} to hand its response to, or undefined when the path is not an LLM endpoint.
   * The client-facing final usage event may wait for it, at most `maxWaitMs`.
   */
  openTap(path: string, maxWaitMs = DEFAULT_MAX_WAIT_MS): UpstreamTap | undefined {
    if (this.finished !== null) return undefined
    const route = routeOf(path)
    const rule = matchRoute(route)
    if (!rule) return undefined
    this.openTaps++
    return new UpstreamTap(this, route, rule.dialect, this.hold(maxWaitMs))
  }

  /**
   * An {@link UpstreamTap} is over (`final`: it read the provider's final usage): a record that waits for
   * the drain may be written now.
   */
  tapClosed(final = false): void {
    if (final) this.tapFinal = true
    this.openTaps--
    if (this.draining && this.openTaps <= 0 && !this.draining.self) this.endDrain()
  }

  /** True when a client that leaves early should not cancel the provider's response (onAbort: 'drain'). */
  get drainsOnAbort(): boolean {
    return this.context.onAbort === 'drain'
  }

  /**
   * For `onAbort: 'drain'`: how the carrier reads the rest of the upstream body into this Exchange once
   * the client left. It returns false when it cannot (the body ended, or is encoded), and calls `done`
   * when the body ended or failed.
   */
  drainWith(drainer: (done: () => void) => boolean): void {
    this.drainer = drainer
  }

  /**
   * A truer source (the upstream tap, a sidecar's provider side) is on its way: the final usage event
   * may wait for it, at most `maxMs` from when it is held (a stream longer than `maxMs` still waits for
   * it at its end). Call before the response head; `release()` when the source has written to the ledger
   * (or failed).
   */
  hold(maxMs = 250): Hold {
    this.holds++
    let released = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const start = (): void => {
      if (released || timer !== undefined) return
      timer = setTimeout(() => release(), maxMs)
      timer.unref?.()
    }
    const release = (): void => {
      if (released) return
      released = true
      clearTimeout(timer)
      if (--this.holds === 0) {
        this.releaseHeld()
        // A start that waited for the tap, which is over without the prompt's counts: it waits no longer.
        if (this.processor?.holdingStart && (this.processor.readAheadFinal || this.processor.holdEnded))
          this.releaseStart()
      }
    }
    // Held already (a tap opened late): the wait begins now.
    if (this.processor?.holding === true) start()
    else (this.holdClocks ??= []).push(start)
    return { release }
  }

  private releaseHeld(start = false): void {
    const processor = this.processor
    if (!processor?.holding || (!start && processor.holdingStart)) return
    const { chunks, ended } = processor.release()
    const port = this.port
    if (!port) return
    try {
      if (chunks.length > 0) port.write(chunks)
      if (ended) port.end()
    } catch (error) {
      this.warn(`could not send the held bytes: ${(error as Error).message}`)
    }
  }

  // ---- the record ---------------------------------------------------------------------------------

  /**
   * Finishes the exchange into its record, exactly once, and hands it to every sink. Returns the record
   * (undefined for a response that cannot carry an LLM answer); later calls return the first result.
   */
  finish(outcome: Outcome): UsageRecord | undefined {
    if (this.finished !== null) return this.finished
    if (this.ignored) return (this.finished = undefined)
    if (this.draining) return undefined
    if (outcome.kind === 'abort' && this.context.onAbort === 'drain' && !this.drained && this.drain(outcome)) {
      return undefined
    }
    const record = this.build(outcome)
    this.finished = record
    // The response is over: let go of what carried it. The Exchange rides on the request, which a
    // keep-alive connection keeps until its next request; held from here, the carrier and the port
    // outlive the response, and what they reach with them (docs/architecture.md#the-exchange).
    this.port = undefined
    this.carrier = undefined
    if (record.passthrough) {
      this.warn(`${this.route} left untouched from byte ${record.passthrough.atByte}: ${record.passthrough.reason}`)
    }
    this.context.sinks.deliver(record)
    const after = this.afterFinish
    this.afterFinish = undefined
    if (after) for (const fn of after) callSafely(fn)
    return record
  }

  /** True while the upstream is read on after the client left (`onAbort: 'drain'`). */
  get isDraining(): boolean {
    return this.draining !== undefined
  }

  /** Runs `fn` once the record is out (at once if it is): what a drain kept open is let go of then. */
  whenFinished(fn: () => void): void {
    if (this.finished !== null) callSafely(fn)
    else (this.afterFinish ??= []).push(fn)
  }

  /**
   * The client left: the upstream body is read on (by the carrier, or by a tap still reading the
   * provider's call), and the record waits for its end, at most `maxDrainMs`. False when nothing reads on.
   */
  private drain(outcome: Outcome): boolean {
    const drainer = this.drainer
    this.drainer = undefined
    let self = false
    try {
      self =
        drainer?.(() => {
          if (this.draining) this.draining.self = false
          if (this.draining && this.openTaps <= 0) this.endDrain()
        }) ?? false
    } catch (error) {
      this.warn(`could not drain the upstream: ${(error as Error).message}`)
    }
    if (!self && this.openTaps <= 0) return false
    const timer = setTimeout(() => this.endDrain(), this.context.maxDrainMs ?? DEFAULT_MAX_DRAIN_MS)
    timer.unref?.()
    this.draining = { outcome, self, timer }
    return true
  }

  private endDrain(): void {
    const draining = this.draining
    if (!draining) return
    clearTimeout(draining.timer)
    this.draining = undefined
    this.drained = true
    this.finish(draining.outcome)
  }

  /** How a sidecar joined this request to its provider call, for the record. */
  correlate(correlation: RecordCorrelation): void {
    this.correlation = correlation
  }

  get record(): UsageRecord | undefined {
    return this.finished ?? undefined
  }

  /** True once the Exchange is over: its record is out, or its response was one that yields none. */
  get done(): boolean {
    return this.finished !== null
  }

  private build(outcome: Outcome): UsageRecord {
    const result = this.processor?.result()
    const known = this.ledger.usage()
    const from = this.ledger.sources()
    // Written out member by member, in one order: one shape for every record.
    const usage: RecordUsage = {
      input: known.input ?? 0,
      cacheRead: known.cacheRead ?? 0,
      cacheWrite: known.cacheWrite ?? 0,
      output: known.output ?? 0,
      reasoning: known.reasoning ?? 0,
    }
    const sources: UsageRecord['sources'] = {
      input: from.input ?? 'unknown',
      cacheRead: from.cacheRead ?? 'unknown',
      cacheWrite: from.cacheWrite ?? 'unknown',
      output: from.output ?? 'unknown',
      reasoning: from.reasoning ?? 'unknown',
    }
    if (known.cacheWrite5m !== undefined) {
      usage.cacheWrite5m = known.cacheWrite5m
      sources.cacheWrite5m = from.cacheWrite5m ?? 'unknown'
    }
    if (known.cacheWrite1h !== undefined) {
      usage.cacheWrite1h = known.cacheWrite1h
      sources.cacheWrite1h = from.cacheWrite1h ?? 'unknown'
    }
    const passthrough =
      result?.passthrough ?? (this.notRead !== undefined ? { reason: this.notRead, atByte: 0 } : undefined)
    const upstreamError = this.status >= 400 || result?.error !== undefined
    const streaming = this.requested.stream ?? (this.framing !== undefined && isStreaming(this.framing))
    const incomplete =
      outcome.kind === 'cut' || (result !== undefined && result.streaming && !result.ended && !passthrough)
    const status: UsageStatus =
      outcome.kind === 'abort'
        ? 'aborted'
        : upstreamError
          ? 'upstream_error'
          : passthrough
            ? 'passthrough'
            : incomplete
              ? 'incomplete'
              : 'complete'
    const record: UsageRecord = {
      id: this.id(),
      route: this.route,
      method: this.method,
      dialect: (result?.dialect ?? this.dialect?.id ?? 'unknown') as UsageRecord['dialect'],
      model: result?.model ?? this.requested.model ?? null,
      status,
      httpStatus: this.status,
      streaming,
      usage,
      sources,
      // A drained response's final usage is the provider's, read by the tap after the client left.
      final: (result?.final ?? false) || (outcome.kind === 'abort' && this.tapFinal),
      corrections: result?.corrections ?? [],
      timing: { firstByteMs: this.firstByteMs, totalMs: since(this.started) },
    }
    if (passthrough) record.passthrough = passthrough
    if (upstreamError) record.error = result?.error ?? `HTTP ${this.status}`
    else if (status === 'incomplete')
      record.error = outcome.kind === 'cut' ? outcome.reason : 'the stream ended before the response did'
    if (result && result.correctionsOmitted > 0) record.correctionsOmitted = result.correctionsOmitted
    if (result && result.unrewritten.length > 0) record.unrewritten = result.unrewritten
    if (this.attributes) record.attributes = this.attributes
    if (this.correlation) record.correlation = this.correlation
    // A usage nobody reported is not a free request: it gets no cost at all.
    // The client left before the final usage: the text it was sent says more about the output than a
    // partial count (docs/truth-sources.md#aborts).
    if (outcome.kind === 'abort' && !result?.final && this.context.estimateOutput && this.processor) {
      const text = this.processor.streamedText
      try {
        const estimate = text ? this.context.estimateOutput(text) : 0
        if (estimate > usage.output) {
          usage.output = estimate
          sources.output = 'estimate:streamed-text'
        }
      } catch (error) {
        this.warn(`estimateOutput failed: ${(error as Error).message}`)
      }
    }
    const reported =
      known.input !== undefined ||
      known.cacheRead !== undefined ||
      known.cacheWrite !== undefined ||
      known.output !== undefined ||
      known.reasoning !== undefined
    const cost = reported ? this.context.price?.(record.model, usage) : undefined
    if (cost) record.cost = cost
    return record
  }

  private id(): string {
    return this.responseId || this.requestId || globalThis.crypto.randomUUID()
  }

  private warn(message: string): void {
    warn(this.context.logger, message)
  }
}
