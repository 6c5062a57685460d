import {
  createFramer,
  framingFor,
  firstBytes,
  NO_NAME,
  type EventSink,
  type Framer,
  type FramingKind,
  type PayloadScanner,
} from './framing/index.js'
import { JsonMemberScanner } from './framing/json-scan.js'
import { findMember, spliceMember } from './framing/json-splice.js'
import { dialectById, recognizeBody, recognizeEvent, streamsJsonArray } from './dialects/registry.js'
import { matchRoute, routeOf } from './routes.js'
import type { DialectReader, DialectSpec, EventReading, JsonObject, TextSink } from './dialects/types.js'
import { EventTemplate } from './dialects/template.js'
import { CollectedText, type TextPrints } from './dialects/text.js'
import { Ledger, type SourceKind } from './ledger.js'
import type { Correction } from './record.js'
import { isObject, type UsageSources } from './usage.js'
import { Buffer, indexOf } from './buffer.js'

export const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024

/** Chunks shorter than this are framed without first being tested whole (`EventSink.skips`). */
const QUICK_MIN_BYTES = 512

/**
 * An event held across chunks is matched against the template in this buffer, with the next chunk's first
 * bytes (`EventSink.completes`); one longer than this is framed as usual. One for the process: a match
 * runs to its end before another begins.
 */
const JOIN_BYTES = 4096
const JOIN = Buffer.allocUnsafeSlow(JOIN_BYTES)
const JOIN_VIEW = new DataView(JOIN.buffer) // as `viewOf` makes them: all of JOIN's memory

/**
 * While templates are learnt, an event is tested alone (not in its chunk) when more than this many bytes
 * of the chunk follow it.
 */
const ALONE_AFTER_BYTES = 2048

/** The Exchange's hold points (docs/architecture.md#hold-points), asked as usage events are about to leave. */
export interface HoldPolicy {
  /** An event carrying final usage: may it wait for a truer source? */
  shouldHold(reading: EventReading): boolean
  /**
   * The response's first usage block (`EventReading.start`): should it, and what follows, wait until the
   * true prompt counts are known (the `hold` policy)? The processor then reads ahead meanwhile.
   */
  holdStart?(reading: EventReading): boolean
  /** While a start waits: the response's own final usage was read; may it leave now? */
  startSettled?(): boolean
}

export interface ProcessorOptions {
  /** How the body is framed; default: from `contentType` by the one content-type rule (framing/index.ts). */
  framing?: FramingKind
  /** The response's content type, when `framing` is not given. */
  contentType?: string
  /** The dialect the route names (a spec or its id); the first event or the body may show another. */
  dialect?: DialectSpec | string
  /** The request path, when `dialect` is not given: the default routes name the dialect. */
  path?: string
  /** The request path without its query string, told to the dialect's reader; default: from `path`. */
  route?: string
  /** An event (or whole JSON body) larger than this is not held: it leaves as it comes. Default 1 MiB. */
  maxEventBytes?: number
  /** The ledger the usage read goes to (the Exchange's). */
  ledger?: Ledger
  /** Who is speaking: the client-facing stream, or the provider's own response seen by the tap. */
  source?: SourceKind
  /** Whether to hold a final usage event for a truer source (the Exchange's hold points). */
  hold?: HoldPolicy
  /** Read only: usage goes to the ledger, nothing is rewritten, nothing waits (the upstream tap). */
  readOnly?: boolean
  /**
   * A first usage block whose prompt counts are all 0 says nothing of the prompt (a translator that does
   * not know it yet): its prompt counts are not observed, so an estimate or a truer source fills them.
   */
  zeroStartIsUnknown?: boolean
  /** Leave out events that carry only usage (`EventReading.usageOnly`): the client did not ask for them. */
  dropUsageOnly?: boolean
  /**
   * Keep the generated text every event carries (`DialectSpec.text`), for an output estimate if the client
   * leaves early, or for a sidecar to join a client's answer to the provider's (`streamedText`, and
   * `streamedAnswer` without the reasoning). Every event is then parsed: a cost only paid where it is asked for.
   * `'print'` keeps only the text's prints (`streamedPrints`): enough to tell whether two responses carry
   * the same text, white space aside, in a few numbers however long the text.
   */
  collectText?: boolean | 'print'
}

/** What the processor learned from one response, beside the usage it wrote to the ledger. */
export interface ProcessorResult {
  dialect: string | undefined
  model: string | undefined
  streaming: boolean
  /** The response carried its final usage block. */
  final: boolean
  /** The response reached its end marker (a stop reason, a terminal event, `[DONE]`). */
  ended: boolean
  corrections: Correction[]
  /** Corrections made but not listed in `corrections` (past MAX_CORRECTIONS distinct ones). */
  correctionsOmitted: number
  error: string | undefined
  passthrough: { reason: string; atByte: number } | undefined
  /** Usage events that were read but could not be rewritten (too large to hold). */
  unrewritten: { where: string; reason: string }[]
}

/**
 * The synchronous push processor: bytes in, bytes out, no stream machinery. It joins a framer (how bytes
 * become events) and a dialect (what an event means) and writes what it reads to a ledger; it holds no
 * detail of either.
 */
export interface Processor {
  /** Feeds a chunk; returns the bytes to send now. A chunk with nothing to rewrite comes back as itself. */
  push(chunk: Uint8Array): Uint8Array[]
  /**
   * The body ended; returns the last bytes to send. When `holding` is true afterwards, the end is
   * deferred: `release()` returns the rest with `ended: true`.
   */
  end(): Uint8Array[]
  /** From now on forward every byte untouched, and say why in the result; returns the bytes held so far. */
  passthrough(reason: string): Uint8Array[]
  /** A hold is over: returns the bytes it kept, rewritten with what is known now; `ended` if end() came. */
  release(): { chunks: Uint8Array[]; ended: boolean }
  /** True while a final usage event waits for a truer source. */
  readonly holding: boolean
  /** True while the response's first usage block waits for the true prompt counts (the `hold` policy). */
  readonly holdingStart: boolean
  /** True once the response's final usage was read. */
  readonly final: boolean
  /** While a hold reads ahead: true once what it read held the response's final usage. */
  readonly readAheadFinal: boolean
  /** While a hold keeps bytes: true once the body ended. */
  readonly holdEnded: boolean
  /** The generated text streamed so far, when `collectText` is on. */
  readonly streamedText: string
  /** The part of `streamedText` that is not reasoning (what the dialect's `text` says is the answer). */
  readonly streamedAnswer: string
  /** The prints of the text streamed so far, when `collectText` is `'print'`. */
  readonly streamedPrints: TextPrints | undefined
  readonly ledger: Ledger
  /** Where and why every byte passes untouched from some point on, if it does: `result().passthrough`. */
  readonly failure: ProcessorResult['passthrough']
  /** True once an event was rewritten (`result().corrections` is not empty). */
  readonly rewrote: boolean
  result(): ProcessorResult
}

const EMPTY = new Uint8Array(0)
// Shared by every processor until its dialect is known and its first search is made: never written to.
const NO_EVENTS: readonly Buffer[] = Object.freeze([])
const NO_HITS: number[] = Object.freeze([]) as unknown as number[]

/**
 * The distinct corrections a response lists. Repeats of the same change collapse into one (`times`), so a
 * stream that repeats its usage block on every chunk (vLLM's continuous usage, Gemini) lists each fix
 * once; past this many distinct ones (a value that differs on every chunk), the rest are only counted.
 */
export const MAX_CORRECTIONS = 64

const tapLabels = new Map<string, string>()

/** Sources of the upstream tap are told apart in records: `tap:metadata.usage.inputTokens`. */
function tapSources(sources: UsageSources): UsageSources {
  const out: UsageSources = {}
  for (const field in sources) {
    const at = sources[field as keyof UsageSources]!
    let text = tapLabels.get(at)
    if (text === undefined) tapLabels.set(at, (text = `tap:${at}`))
    out[field as keyof UsageSources] = text
  }
  return out
}

const toBuffer = (chunk: Uint8Array): Buffer =>
  Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)

/** Each numeric leaf of `after` that differs from `before`, as corrections at `where`. */
function diff(before: JsonObject, after: JsonObject, where: string, prefix: string, out: Correction[]): void {
  for (const key in after) {
    const value = after[key]
    const was = before[key]
    // Most usage events need no rewrite: a member the writer kept (a number, or the same object) is
    // passed over without making its label.
    if (value === was) continue
    const field = prefix === '' ? key : `${prefix}.${key}`
    if (typeof value === 'number') {
      out.push({ where, field, from: typeof was === 'number' ? was : null, to: value })
    } else if (isObject(value)) {
      diff(isObject(was) ? was : {}, value, where, field, out)
    }
  }
}

/**
 * For a block whose members are the event's own (an empty path: Ollama's counts beside its other members,
 * docs/dialects/ollama.md#writing): each member of `after` that differs from `before` replaced in place,
 * or appended to the object when it was absent; every other byte kept.
 */
function spliceMembers(text: string, before: JsonObject, after: JsonObject): string | undefined {
  for (const key in after) {
    const value = after[key]
    if (value === before[key]) continue
    if (before[key] !== undefined) {
      const span = findMember(text, [key])
      if (!span) return undefined
      text = text.slice(0, span[0]) + JSON.stringify(value) + text.slice(span[1])
      continue
    }
    const close = text.lastIndexOf('}')
    if (close === -1) return undefined
    text = `${text.slice(0, close)},${JSON.stringify(key)}:${JSON.stringify(value)}${text.slice(close)}`
  }
  return text
}

/** Bytes kept while a final usage event waits (docs/architecture.md#hold-points). */
interface Held {
  /** Stream offset of the held event's start. */
  at: number
  chunks: Buffer[]
  bytes: number
  ended: boolean
  /**
   * The event awaits a later event of the same response (`EventReading.awaits`), not an outside source:
   * `scout` reads what comes meanwhile into the ledger, and the hold ends when it has read final usage.
   */
  scout?: UsageProcessor
  /** The hold began at the response's first usage block (the `hold` policy), not at its final one. */
  start?: boolean
}

/** A payload parsed while a hold is on, and what JSON.parse made of it. */
interface Parsed {
  readonly data: string
  readonly json: unknown
}

/** The push processor for one response. A class, not closures: one is created per LLM response. */
class UsageProcessor implements Processor, EventSink {
  readonly ledger: Ledger
  private readonly source: SourceKind
  private readonly maxEventBytes: number
  private readonly kind: FramingKind | undefined
  private framer: Framer | undefined
  private spec: DialectSpec | undefined
  private reader: DialectReader | undefined
  private usageEvents: readonly Buffer[] = NO_EVENTS
  private usageFirsts: Uint8Array | undefined
  private quick: readonly Buffer[] | undefined
  // readsFrom's place in the chunk being pushed: each needle's next index (-1: none left, -2: not searched).
  private quickChunk: Buffer | undefined
  private quickFor: readonly Buffer[] | undefined
  private quickHits: number[] = NO_HITS // replaced by the first search (`quickFor` is undefined until then)
  // Event templates (docs/architecture.md#event-templates): the spec's free strings while templates are
  // worth learning, the one learnt last, how many were learnt and how many events they passed.
  private freeStrings: ReadonlySet<string> | undefined
  private template: EventTemplate | undefined
  private learnt = 0
  private matched = 0
  // Whether the template has passed an event, and whether one passed without matching it since.
  private templateMatched = false
  private missedOnce = false
  /** EventSink: what decided that the last event passes, for the framer to pass its likes unasked. */
  passedBy = -1
  /** The dialect is settled by the first event read; until then every event is read. */
  private settled = false
  private model: string | undefined
  private final_ = false
  private ended = false
  private error: string | undefined
  // Made when first needed: most responses have none, and this object is made per response.
  private corrections: Correction[] | undefined
  // The last correction listed for each field, which a repeat of the same change adds to.
  private lastCorrections: Map<string, Correction> | undefined
  private correctionsOmitted = 0
  private unrewritten: ProcessorResult['unrewritten'] | undefined
  private failedAt: ProcessorResult['passthrough']
  private bytesIn = 0
  // Hold points: the offset the framer's offsets start from (a fresh framer after a hold), the output
  // size change of rewrites so far (to find an event in the output), and what is being held.
  private base = 0
  private outDelta = 0
  private pausing: { at: number; outAt: number; event: Buffer; endAt: number } | undefined
  private held: Held | undefined
  private readonly holdPolicy: HoldPolicy | undefined
  private readonly route: string | undefined
  private lastHeldAt = -1
  // An event that awaits a later one of the same response: set when it pauses, the offset of the event
  // (whose usage the ledger already has, so its replay does not observe it again).
  private awaiting = false
  private awaitedAt = -1
  private startHold = false
  private readonly readOnly: boolean
  private readonly zeroStartIsUnknown: boolean
  private readonly dropUsageOnly: boolean
  private readonly collectText: boolean
  private readonly printText: boolean
  private collected: CollectedText | undefined
  // While a hold is on: the payloads parsed since it began (the held event's, and the scout's reading
  // ahead), so that the replay of the held bytes parses none of them again.
  private parsed: Parsed[] | undefined

  constructor(
    options: ProcessorOptions,
    /** Reads ahead for an awaiting event: writes to the ledger, never awaits, its output is dropped. */
    private readonly scouting = false,
  ) {
    this.ledger = options.ledger ?? new Ledger()
    this.source = options.source ?? 'stream'
    this.maxEventBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES
    this.holdPolicy = options.hold
    this.readOnly = options.readOnly === true
    this.zeroStartIsUnknown = options.zeroStartIsUnknown === true
    this.dropUsageOnly = options.dropUsageOnly === true
    this.collectText = (options.collectText === true || options.collectText === 'print') && !scouting
    this.printText = options.collectText === 'print'
    this.route = options.route ?? (options.path ? routeOf(options.path) : undefined)
    const dialect =
      typeof options.dialect === 'string'
        ? dialectById(options.dialect)
        : (options.dialect ?? (options.path ? matchRoute(routeOf(options.path))?.dialect : undefined))
    this.kind = options.framing ?? framingFor(options.contentType, streamsJsonArray(dialect, options.path))
    if (dialect) this.adopt(dialect)
    if (scouting) this.settled = true
    if (this.kind) this.framer = createFramer(this.kind, this.maxEventBytes)
    else this.fail(`content-type "${options.contentType ?? ''}" is not a body usagewire reads`, 0)
  }

  private adopt(spec: DialectSpec): void {
    if (spec === this.spec) return
    this.spec = spec
    this.reader = spec.reader(this.route)
    this.usageEvents = spec.usageEvents
    this.usageFirsts = firstBytes(spec.usageEvents)
    this.quick = spec.quick
    this.freeStrings = spec.freeStrings
    this.template = undefined
  }

  /** Fail open: from here on every byte passes untouched. Returns the bytes that were being held. */
  private fail(reason: string, atByte: number): Buffer[] {
    this.failedAt ??= { reason, atByte }
    return this.framer && !this.framer.stopped ? this.framer.stop() : []
  }

  // ---- EventSink: what the framer asks -------------------------------------------------------------

  passes(buf: Buffer, start: number, end: number): boolean {
    if (!this.settled || this.pausing || this.collectText) return false
    return this.framer!.matchName(buf, start, end, this.usageEvents, this.usageFirsts) === -1
  }

  /** Events are matched against templates now (docs/architecture.md#event-templates). */
  private templating(): boolean {
    return this.freeStrings !== undefined && this.settled && !this.pausing && !this.collectText
  }

  /**
   * Text is collected, and the text template may pass the events it matches, unread (each gives its text
   * on the way): only while it would answer exactly, so `readsFrom` is asked only where the framer goes on
   * from its answer (the text it gave is never given again).
   */
  private textRuns(): boolean {
    return this.collectText && this.settled && !this.pausing && this.collected?.runs === true
  }

  readsFrom(chunk: Buffer, start: number, exact = false): number {
    if (this.collectText) return this.textRuns() ? this.collected!.run(chunk, start, chunk.length) : -1
    if (this.templating()) {
      // Whole events that match the template pass; the first that does not is framed and asked about
      // (with no template yet, the first event is: a template is learnt from one that passes).
      const template = this.template
      if (template === undefined) return start
      if (exact && !template.lfOnly) return -1
      const at = template.run(chunk, start, chunk.length)
      if (template.ran > 0) this.passedByTemplate(template.ran)
      return at
    }
    if (exact) return -1
    // A search for several bytes costs as much as framing a few events: worth it on chunks of many.
    const needles = this.reader?.quick ?? this.quick
    if (
      needles === undefined ||
      chunk.length - start < QUICK_MIN_BYTES ||
      !this.settled ||
      this.pausing ||
      this.collectText
    ) {
      return -1
    }
    // Each needle's next place in this chunk is searched again only once the framer has passed it, so
    // every needle is searched once per chunk however often the framer asks.
    let hits = this.quickHits
    if (needles !== this.quickFor) {
      this.quickFor = needles
      this.quickChunk = undefined
      this.quickHits = hits = needles.map(() => -2)
    }
    if (chunk !== this.quickChunk) {
      this.quickChunk = chunk
      for (let i = 0; i < hits.length; i++) hits[i] = -2
    }
    let first = chunk.length
    for (let i = 0; i < needles.length; i++) {
      let hit = hits[i]!
      if (hit !== -1 && hit < start) hits[i] = hit = indexOf.call(chunk, needles[i]!, start)
      if (hit !== -1 && hit < first) first = hit
    }
    return first
  }

  exactSkips(): boolean {
    if (this.collectText) return this.textRuns()
    return this.template?.lfOnly === true && this.templating()
  }

  completes(held: readonly Buffer[], heldBytes: number, chunk: Buffer, from: number): number {
    if (this.collectText || !this.exactSkips()) return -1
    const template = this.template!
    // The held bytes and the chunk's first ones, copied together to match them in one place.
    const take = Math.min(chunk.length - from, JOIN_BYTES - heldBytes)
    if (take <= 0) return -1
    let at = 0
    for (let i = 0; i < held.length; i++) at += held[i]!.copy(JOIN, at)
    chunk.copy(JOIN, at, from, from + take)
    const end = template.matchView(JOIN, JOIN_VIEW, 0, heldBytes + take)
    if (end <= heldBytes) return -1
    this.passedByTemplate(1)
    return end - heldBytes
  }

  event(buf: Buffer, start: number, end: number, at: number): Uint8Array | undefined {
    this.passedBy = -1
    if (this.pausing) return undefined
    if (this.collectText) this.collect(buf, start, end)
    const reader = this.reader
    if (this.settled && reader) {
      // The hot path: decide from bytes alone whether the event may carry usage or an error.
      const named = this.framer!.matchName(buf, start, end, this.usageEvents, this.usageFirsts)
      if (named === -1) {
        // Its name alone decided (text collected from every event means every event must come here).
        if (!this.collectText) this.passedBy = 0
        return undefined
      }
      if (named === NO_NAME) {
        const template = this.template
        if (template !== undefined && template.match(buf, start, end) === end) {
          this.passedByTemplate(1)
          return undefined
        }
        // While templates pass most events, the few asked about are asked about alone: a reader's search
        // runs on to the end of the chunk, kept for the events after, and in a large chunk those would
        // mostly pass by the template (docs/architecture.md#event-templates).
        const alone = this.freeStrings !== undefined && buf.length - end > ALONE_AFTER_BYTES
        if (alone ? !reader.mayCarry(buf.subarray(start, end), 0, end - start) : !reader.mayCarry(buf, start, end)) {
          if (this.freeStrings !== undefined) this.learn(buf, start, end)
          return undefined
        }
      } else if (reader.namedPassing !== undefined) {
        const decided = reader.namedPassing(buf, start, end)
        if (decided !== -1) {
          // Text collected from every event means every event must come here.
          if (!this.collectText) this.passedBy = decided
          return undefined
        }
      }
    }
    // An event that may carry usage: a text template learnt from it must not pass its likes unread.
    this.collected?.read()
    try {
      return this.readEvent(buf, start, end, this.base + at)
    } catch (error) {
      this.fail(`internal error: ${(error as Error).message}`, this.base + at)
      return undefined
    }
  }

  private passedByTemplate(events: number): void {
    this.matched += events
    this.templateMatched = true
    this.missedOnce = false
  }

  /**
   * A template from the event `buf[start, end)`, which passed and did not match the last one. A stream
   * whose events keep differing (a count in each, alternating shapes) stops learning once templates
   * have cost more than they saved: after four, each must have passed eight events on average.
   */
  private learn(buf: Buffer, start: number, end: number): void {
    // A template that has matched is replaced only by the second event in a row that passes without
    // matching it: one odd event (a finish chunk) is not learnt, and the stream's next shape still is.
    if (this.template !== undefined && this.templateMatched && !this.missedOnce) {
      this.missedOnce = true
      return
    }
    if (this.learnt >= 4 && this.matched < 8 * this.learnt) {
      this.freeStrings = undefined
      this.template = undefined
      return
    }
    this.learnt++
    this.missedOnce = false
    this.templateMatched = false
    this.template = EventTemplate.learn(buf, start, end, this.freeStrings!)
  }

  /** The text an event carries, kept for an output estimate or a sidecar's join; nothing here may fail the response. */
  private collect(buf: Buffer, start: number, end: number): void {
    const spec = this.spec
    if (spec?.text === undefined || this.kind === 'json') return
    this.collector().event(buf, start, end, this.framer!, spec)
  }

  private collector(): CollectedText {
    return (this.collected ??= new CollectedText(this.printText))
  }

  get streamedText(): string {
    return this.collected?.all ?? ''
  }

  get streamedAnswer(): string {
    return this.collected?.answer ?? ''
  }

  get streamedPrints(): TextPrints | undefined {
    return this.printText ? this.collector().prints : undefined
  }

  oversized(buf: Buffer, start: number, end: number, at: number): PayloadScanner | undefined {
    if (this.pausing) return undefined
    const named = this.framer!.matchName(buf, start, end, this.usageEvents, this.usageFirsts)
    const paths = this.reader?.largePaths
    if (named === -1 || !paths) return undefined
    const name = named >= 0 ? this.usageEvents[named]!.toString('latin1') : undefined
    return new OversizedEvent(this, paths, name, this.base + at)
  }

  stopped(reason: string, at: number): void {
    this.failedAt ??= { reason, atByte: this.base + at }
  }

  upstreamError(error: string): void {
    this.error = error
  }

  // ---- reading ------------------------------------------------------------------------------------

  private readEvent(buf: Buffer, start: number, end: number, at: number): Uint8Array | undefined {
    const framer = this.framer!
    const decoded = framer.decode(buf, start, end)
    if (!decoded) return undefined
    if (this.reader?.control?.(decoded.data)) return undefined
    const body = this.kind === 'json'
    // A payload that wraps the dialect's own event (a Bedrock chunk) is read, and rewritten, inside.
    const wrapped = !body && this.reader?.unwrap !== undefined
    const data = wrapped ? this.reader!.unwrap!(decoded.data) : decoded.data
    if (data === undefined) return undefined
    let json: unknown
    try {
      json = this.parsed === undefined ? JSON.parse(data) : this.parse(data)
    } catch {
      const what = this.kind === 'json' ? 'body' : `in ${decoded.name ?? 'a data'} event`
      this.fail(`malformed JSON ${what}`, at)
      return undefined
    }
    if (!this.settled) {
      this.settled = true
      // The first event settles the dialect: the path may be silent, or may not say what the body is.
      const seen = body ? (isObject(json) ? recognizeBody(json) : undefined) : recognizeEvent(decoded.name, json)
      if (seen) this.adopt(seen)
      if (!this.reader) {
        this.fail(`unknown dialect: the ${body ? 'body' : 'first event'} is none usagewire reads`, at)
        return undefined
      }
      if (!body && !wrapped && this.reader.unwrap) return this.readEvent(buf, start, end, at)
    }
    if (!isObject(json)) return undefined
    if (body && this.collectText) this.spec?.text?.(json, this.collector())
    const reader = this.reader!
    const reading = body ? reader.readBody(json) : reader.read({ name: decoded.name, json, at })
    if (!reading) return undefined
    const replayed = at === this.awaitedAt
    if (replayed) this.awaitedAt = -1
    this.note(reading, !replayed)
    const block = reading.usage
    if (!block || this.readOnly) return undefined
    // The client did not ask for usage-only events (usagewire asked the upstream for them): left out.
    if (reading.usageOnly && this.dropUsageOnly) return EMPTY
    if (
      (reading.final && this.shouldHold(reading, at)) ||
      this.shouldAwait(reading, at) ||
      (reading.start && this.shouldHoldStart(reading, at))
    ) {
      this.pausing = {
        at,
        outAt: at + this.outDelta,
        event: Buffer.from(buf.subarray(start, end)),
        endAt: at + end - start,
      }
      ;(this.parsed ??= []).push({ data, json })
      return undefined
    }
    const after = reader.write(block.native, this.ledger.usage(), block.path)
    // A writer may give the block itself back when it would write nothing new: nothing to compare.
    if (after === block.native) return undefined
    const changes: Correction[] = []
    diff(block.native, after, reading.where, block.field ?? 'usage', changes)
    if (changes.length === 0) return undefined
    const spliced =
      block.path.length === 0 ? spliceMembers(data, block.native, after) : spliceMember(data, block.path, after)
    if (spliced === undefined) return undefined
    this.correct(changes)
    const out = framer.encode(buf, start, end, decoded, wrapped ? this.reader!.wrap!(decoded.data, spliced) : spliced)
    this.outDelta += out.length - (end - start)
    return out
  }

  /** Lists the changes one rewrite made: a repeat of the change listed last for its field adds to it. */
  private correct(changes: Correction[]): void {
    const list = (this.corrections ??= [])
    const last = (this.lastCorrections ??= new Map())
    for (const change of changes) {
      const before = last.get(change.field)
      if (before !== undefined && before.from === change.from && before.to === change.to) {
        before.times = (before.times ?? 1) + 1
      } else if (list.length < MAX_CORRECTIONS) {
        list.push(change)
        last.set(change.field, change)
      } else {
        this.correctionsOmitted++
      }
    }
  }

  /** JSON.parse, or what it gave for the same payload since the hold began; a scout keeps what it parses. */
  private parse(data: string): unknown {
    const parsed = this.parsed!
    if (this.scouting) {
      const json: unknown = JSON.parse(data)
      parsed.push({ data, json })
      return json
    }
    // Readers never change what they are given (writers make new objects), so a parse can be shared.
    for (let i = 0; i < parsed.length; i++) if (parsed[i]!.data === data) return parsed[i]!.json
    return JSON.parse(data)
  }

  /** What every reading says beside usage; its usage goes to the ledger as this processor's source. */
  note(reading: EventReading, observe = true): void {
    if (reading.model !== undefined) this.model = reading.model
    if (reading.error !== undefined) this.error = reading.error
    if (reading.final) this.final_ = true
    if (reading.ended) this.ended = true
    const block = reading.usage
    if (!block || !observe) return
    let { usage, sources } = block
    if (
      reading.start &&
      this.zeroStartIsUnknown &&
      (usage.input ?? 0) + (usage.cacheRead ?? 0) + (usage.cacheWrite ?? 0) === 0
    ) {
      const { input: _i, cacheRead: _r, cacheWrite: _w, cacheWrite5m: _5, cacheWrite1h: _1, ...rest } = usage
      usage = rest
    }
    if (this.source === 'tap') sources = tapSources(sources)
    this.ledger.observe(this.source, usage, sources, block.whole)
  }

  unread(where: string, reason: string): void {
    ;(this.unrewritten ??= []).push({ where, reason })
  }

  /** An oversized event was read on its way through: its usage counts, but it left as it came. */
  readLarge(json: JsonObject, name: string | undefined, at: number, problem: string | undefined): void {
    const reading = this.kind === 'json' ? this.reader?.readBody(json) : this.reader?.read({ name, json, at })
    if (!reading) {
      if (problem) this.unread(name ?? `event@${at}`, `not read: ${problem}`)
      return
    }
    this.note(reading)
    if (reading.usage) {
      this.unread(reading.where, `over maxEventBytes (${this.maxEventBytes}): read, not rewritten`)
    }
  }

  // ---- hold points --------------------------------------------------------------------------------

  private shouldHold(reading: EventReading, at: number): boolean {
    if (!this.holdPolicy || at === this.lastHeldAt) return false
    if (!this.holdPolicy.shouldHold(reading)) return false
    this.lastHeldAt = at
    return true
  }

  /** An event that awaits a later one of this response pauses here, once (docs/architecture.md#hold-points). */
  private shouldAwait(reading: EventReading, at: number): boolean {
    if (!reading.awaits || this.scouting || at === this.lastHeldAt) return false
    this.lastHeldAt = at
    this.awaitedAt = at
    this.awaiting = true
    return true
  }

  /** The response's first usage block waits (the `hold` policy), reading ahead meanwhile, once. */
  private shouldHoldStart(reading: EventReading, at: number): boolean {
    if (this.scouting || at === this.lastHeldAt || !this.holdPolicy?.holdStart?.(reading)) return false
    this.lastHeldAt = at
    this.awaitedAt = at
    this.awaiting = true
    this.startHold = true
    return true
  }

  /** A scout reads what follows an awaiting event; true when the wait is over. */
  private scouted(chunk: Buffer | undefined): boolean {
    const held = this.held!
    const scout = held.scout!
    if (chunk) scout.push(chunk)
    if (scout.failure !== undefined || held.bytes > this.maxEventBytes) return true
    if (!scout.final) return false
    // A start that waits for the truth: the stream's own final usage may not be it (a tap is on its way).
    return !held.start || this.holdPolicy?.startSettled?.() !== false
  }

  get final(): boolean {
    return this.final_
  }

  /** Keeps the bytes from the held event on; the framer starts afresh after them. */
  private beginHold(out: Buffer[], chunk: Buffer | undefined, chunkAt: number, emittedBefore: number): Buffer[] {
    const pausing = this.pausing!
    this.pausing = undefined
    const keep: Buffer[] = []
    let offset = emittedBefore
    for (const piece of out) {
      if (offset + piece.length <= pausing.outAt) keep.push(piece)
      else if (offset < pausing.outAt) keep.push(piece.subarray(0, pausing.outAt - offset))
      offset += piece.length
    }
    const held: Held = { at: pausing.at, chunks: [pausing.event], bytes: pausing.event.length, ended: false }
    if (this.startHold) {
      this.startHold = false
      held.start = true
    }
    if (this.awaiting) {
      this.awaiting = false
      const { kind: framing, spec: dialect, maxEventBytes, route } = this
      const options = { framing, dialect, maxEventBytes, route }
      held.scout = new UsageProcessor({ ...options, ledger: this.ledger, source: this.source }, true)
      held.scout.parsed = this.parsed
    }
    if (chunk && pausing.endAt < chunkAt + chunk.length) {
      const rest = chunk.subarray(pausing.endAt - chunkAt)
      held.chunks.push(rest)
      held.bytes += rest.length
      held.scout?.push(rest)
    }
    this.held = held
    this.outDelta = pausing.outAt - pausing.at
    this.base = pausing.at
    this.framer = createFramer(this.kind!, this.maxEventBytes)
    return keep
  }

  get holding(): boolean {
    return this.held !== undefined
  }

  get holdEnded(): boolean {
    return this.held?.ended ?? false
  }

  get readAheadFinal(): boolean {
    return this.held?.scout?.final ?? false
  }

  get holdingStart(): boolean {
    return this.held?.start === true
  }

  release(): { chunks: Uint8Array[]; ended: boolean } {
    const held = this.held
    if (!held) return { chunks: [], ended: false }
    this.held = undefined
    const out: Uint8Array[] = []
    // The held bytes are read again from where the hold began: their offsets are the same as the first time.
    this.bytesIn = held.at
    for (const chunk of held.chunks) out.push(...this.push(chunk))
    // Another hold point in the replay keeps what was parsed: its replay reads the same payloads again.
    if (this.held === undefined) this.parsed = undefined
    if (!held.ended) return { chunks: out, ended: false }
    const rest = out.concat(this.end())
    // The replay may have stopped at another hold point (the final event waits for the tap): not ended yet.
    return { chunks: rest, ended: this.held === undefined }
  }

  // ---- the push API -------------------------------------------------------------------------------

  private emitted = 0

  push(input: Uint8Array): Uint8Array[] {
    const chunk = toBuffer(input)
    const at = this.bytesIn
    this.bytesIn += chunk.length
    if (this.held) {
      this.held.chunks.push(chunk)
      this.held.bytes += chunk.length
      return this.held.scout && this.scouted(chunk) ? this.release().chunks : []
    }
    const framer = this.framer
    if (!framer || framer.stopped) return [chunk]
    let out = framer.push(chunk, this)
    this.quickChunk = undefined // the chunk is not kept past its push
    if (this.pausing) out = this.beginHold(out, chunk, at, this.emitted)
    for (let i = 0; i < out.length; i++) this.emitted += out[i]!.length
    // The event awaited may have come in the same chunk as the one awaiting it.
    const held = this.held as Held | undefined
    if (held?.scout && this.scouted(undefined)) return out.concat(this.release().chunks as Buffer[])
    return out
  }

  end(): Uint8Array[] {
    const held = this.held
    if (held) {
      held.ended = true
      // An awaiting event waits no longer than the body: what is known now is all there is. A start that
      // waits for a tap still on its way waits on (the Exchange releases it, bounded by maxHoldMs).
      if (!held.scout || (held.start && this.holdPolicy?.startSettled?.() === false)) return []
      return this.release().chunks
    }
    const framer = this.framer
    if (!framer) return []
    if (framer.stopped) return framer.stop()
    let out: Buffer[]
    try {
      out = framer.end(this)
    } catch (error) {
      return this.fail(`internal error: ${(error as Error).message}`, this.bytesIn)
    }
    if (this.pausing) {
      // The last event waits; what came before it leaves now, and the end comes with the release.
      out = this.beginHold(out, undefined, this.bytesIn, this.emitted)
      this.held!.ended = true
      for (let i = 0; i < out.length; i++) this.emitted += out[i]!.length
      if (this.held!.scout) return out.concat(this.release().chunks as Buffer[])
      return out
    }
    if (!this.failedAt) {
      const last = this.reader?.end?.()
      if (last?.final) this.final_ = true
      if (last?.ended) this.ended = true
    }
    return out
  }

  passthrough(reason: string): Uint8Array[] {
    const held = this.held
    if (held) {
      this.held = undefined
      this.fail(reason, this.bytesIn)
      return held.chunks
    }
    return this.fail(reason, this.bytesIn)
  }

  get failure(): ProcessorResult['passthrough'] {
    return this.failedAt
  }

  get rewrote(): boolean {
    return this.corrections !== undefined
  }

  result(): ProcessorResult {
    return {
      dialect: this.spec?.id,
      model: this.model,
      streaming: this.kind !== undefined && this.kind !== 'json',
      final: this.final_,
      ended: this.ended,
      // Copies: a listed correction still counts the repeats that come after.
      corrections: this.corrections ? this.corrections.map((correction) => ({ ...correction })) : [],
      correctionsOmitted: this.correctionsOmitted,
      error: this.error,
      passthrough: this.failedAt,
      unrewritten: this.unrewritten ? [...this.unrewritten] : [],
    }
  }
}

/** Reads the members a dialect names from an event too large to hold, as it passes. */
class OversizedEvent implements PayloadScanner {
  private readonly scanner: JsonMemberScanner

  constructor(
    private readonly processor: UsageProcessor,
    paths: readonly (readonly string[])[],
    private readonly name: string | undefined,
    private readonly at: number,
  ) {
    this.scanner = new JsonMemberScanner(paths)
  }

  write(bytes: Buffer, start: number, end: number): void {
    this.scanner.write(bytes, start, end)
  }

  end(): void {
    this.scanner.end()
    try {
      this.processor.readLarge(this.scanner.result(), this.name, this.at, this.scanner.problem)
    } catch (error) {
      this.processor.unread(this.name ?? `event@${this.at}`, `internal error: ${(error as Error).message}`)
    }
  }
}

export function createProcessor(options: ProcessorOptions = {}): Processor {
  return new UsageProcessor(options)
}
