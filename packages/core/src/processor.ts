import {
  createDialect,
  dialectForPath,
  sniffBody,
  sniffEvent,
  type DialectContext,
  type DialectHandler,
  type ResponseState,
  type UsageRewrite,
} from './dialects/index.js'
import { spliceMember } from './framing/json-splice.js'
import { matchEventName, NO_EVENT_LINE, parseEvent, replaceData, SseFramer, type EventVisitor } from './framing/sse.js'
import { Ledger } from './ledger.js'
import type { Correction, Dialect } from './record.js'
import { isObject, type JsonObject, type Usage, type UsageSources } from './usage.js'

export const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024

export interface ProcessorOptions {
  /** The dialect, when the caller knows it; else it is chosen from `path`, then from the first event. */
  dialect?: Dialect
  /** Request path (a query string is ignored). */
  path?: string
  /** Response content type: `text/event-stream` is framed as SSE, a JSON type as one whole body. */
  contentType?: string
  /** An event (or a whole JSON body) larger than this is forwarded untouched. Default 1 MiB. */
  maxEventBytes?: number
}

/** What the processor learned from one response. */
export interface ProcessorResult {
  dialect: Dialect | 'unknown'
  model: string | null
  streaming: boolean
  usage: Usage
  sources: UsageSources
  final: boolean
  corrections: Correction[]
  error: string | undefined
  passthrough: { reason: string; atByte: number } | undefined
}

/**
 * The synchronous push processor: bytes in, bytes out, no stream machinery. Framework adapters and the
 * Node/WHATWG stream wrappers are thin shells around it.
 */
export interface Processor {
  /** Feeds a chunk; returns the bytes to send now. A chunk with nothing to rewrite comes back as itself. */
  push(chunk: Uint8Array): Uint8Array[]
  /** The body ended; returns the last bytes to send. */
  end(): Uint8Array[]
  /** From now on forward every byte untouched, and say why in the result; returns the bytes held so far. */
  passthrough(reason: string): Uint8Array[]
  /** Observations about this response from outside the body (an upstream tap, an estimate) go here. */
  readonly ledger: Ledger
  result(): ProcessorResult
}

type Framing = 'sse' | 'json'

function framingFor(contentType: string | undefined): Framing | undefined {
  if (contentType?.startsWith('text/event-stream')) return 'sse'
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  if (type === 'text/event-stream') return 'sse'
  if (type === 'application/json' || type.endsWith('+json')) return 'json'
  return undefined
}

const toBuffer = (chunk: Uint8Array): Buffer =>
  Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)

/** Each numeric leaf of `after` that differs from `before`, as corrections at `where`. */
function diff(before: JsonObject, after: JsonObject, where: string, prefix: string, out: Correction[]): void {
  for (const key in after) {
    const value = after[key]
    const was = before[key]
    if (typeof value === 'number') {
      if (was !== value)
        out.push({ where, field: `${prefix}.${key}`, from: typeof was === 'number' ? was : null, to: value })
    } else if (isObject(value)) {
      diff(isObject(was) ? was : {}, value, where, `${prefix}.${key}`, out)
    }
  }
}

function hasBom(buf: Buffer, at: number): boolean {
  return buf[at] === 0xef && buf[at + 1] === 0xbb && buf[at + 2] === 0xbf
}

/** The push processor for one response. A class, not closures: it is created per LLM response. */
class UsageProcessor implements Processor {
  readonly ledger = new Ledger()
  private readonly state: ResponseState = { model: null, final: false, error: undefined, done: false, events: 0 }
  private readonly ctx: DialectContext
  private readonly maxEventBytes: number
  private readonly framing: Framing | undefined
  private dialect: Dialect | undefined
  private handler: DialectHandler | undefined
  private readonly corrections: Correction[] = []
  private failure: ProcessorResult['passthrough']
  private bytesIn = 0
  private sniffed = false
  private readonly sse: SseFramer | undefined
  private body: Buffer[] | undefined
  private bodyBytes = 0
  private readonly visit: EventVisitor

  constructor(options: ProcessorOptions) {
    this.ctx = { ledger: this.ledger, state: this.state }
    this.maxEventBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES
    this.framing = framingFor(options.contentType)
    this.dialect = options.dialect ?? (options.path ? dialectForPath(options.path) : undefined)
    this.handler = this.dialect ? createDialect(this.dialect) : undefined
    this.visit = this.visitEvent.bind(this)
    if (this.framing === 'sse') {
      this.sse = new SseFramer(
        this.maxEventBytes,
        (reason, at) => this.fail(reason, at),
        (buf, start, end) => this.passes(buf, start, end),
      )
    } else if (this.framing === 'json') {
      this.body = []
    } else {
      this.fail(`content-type "${options.contentType ?? ''}" is not a body usagewire reads`, 0)
    }
  }

  /** Fail open: from here on every byte passes untouched. Returns the bytes that were being held. */
  private fail(reason: string, atByte: number): Buffer[] {
    this.failure ??= { reason, atByte }
    const held = this.sse ? this.sse.stop() : (this.body ?? [])
    this.body = undefined
    return held
  }

  /** Applies a dialect's rewrite to a JSON text; returns the new text, or undefined when nothing changes. */
  private apply(text: string, rewrite: UsageRewrite | undefined, where: string): string | undefined {
    if (!rewrite) return undefined
    const changes: Correction[] = []
    diff(rewrite.before, rewrite.after, where, 'usage', changes)
    if (changes.length === 0) return undefined
    const spliced = spliceMember(text, rewrite.path, rewrite.after)
    if (spliced === undefined) return undefined
    this.corrections.push(...changes)
    return spliced
  }

  /**
   * An event not yet complete may leave at once when its `event:` line is whole and names an event that
   * cannot carry usage: a long content event then costs no copy and no wait.
   */
  private passes(buf: Buffer, start: number, end: number): boolean {
    const handler = this.handler
    if (!handler || !this.sniffed) return false
    const eol = buf.indexOf(0x0a, start)
    if (eol === -1 || eol >= end || matchEventName(buf, start, end, handler.eventNames) !== -1) return false
    this.state.events++
    return true
  }

  private visitEvent(buf: Buffer, start: number, end: number, at: number): Uint8Array | undefined {
    const handler = this.handler
    // The hot path: once the dialect is settled, decide from bytes alone whether the event may carry
    // usage or an error.
    const judged = handler !== undefined && this.sniffed
    const named = judged ? matchEventName(buf, start, end, handler.eventNames) : NO_EVENT_LINE
    // An event named as one that cannot carry usage is never read, whatever its size; in an LF stream
    // it may even leave before its end (`passes`), so a size bound here would depend on the chunking.
    if (named === -1 && !this.sse!.crMode) return this.skip()
    if (end - start > this.maxEventBytes) {
      this.fail(`event over maxEventBytes (${this.maxEventBytes})`, at)
      return undefined
    }
    if (judged && (named === -1 || (named === NO_EVENT_LINE && !handler.mayCarry(buf, start, end)))) {
      return this.skip()
    }
    try {
      return this.readEvent(buf, start, end, at)
    } catch (error) {
      this.fail(`internal error: ${(error as Error).message}`, at)
      return undefined
    }
  }

  private skip(): undefined {
    this.state.events++
    return undefined
  }

  /** Parses an event that may carry usage, and rewrites it when its usage is not the best known. */
  private readEvent(buf: Buffer, start: number, end: number, at: number): Uint8Array | undefined {
    const state = this.state
    const index = state.events++
    let handler = this.handler
    const event = parseEvent(buf, index === 0 && hasBom(buf, start) ? start + 3 : start, end)
    if (!event) return undefined
    if (event.data === '[DONE]') {
      state.done = true
      return undefined
    }
    let json: unknown
    try {
      json = JSON.parse(event.data)
    } catch {
      this.fail(`malformed JSON in ${event.name ?? 'a data'} event`, at)
      return undefined
    }
    if (!this.sniffed) {
      this.sniffed = true
      // The first event settles the dialect: the path may be silent, or may not say what the body is.
      handler = this.adopt(sniffEvent(event.name, json))
      if (!handler) {
        this.fail('unknown dialect: the first event is none usagewire reads', at)
        return undefined
      }
    }
    if (!isObject(json) || !handler) return undefined
    const where =
      event.name ?? (this.dialect === 'openai-chat' ? `chunk#${index}` : String(json.type ?? `event#${index}`))
    const data = this.apply(event.data, handler.onEvent(event.name, json, this.ctx), where)
    return data === undefined ? undefined : replaceData(buf, start, end, event, data)
  }

  /** Switches to the dialect the body shows, when it differs from the one the path suggested. */
  private adopt(seen: Dialect | undefined): DialectHandler | undefined {
    if (seen && seen !== this.dialect) {
      this.dialect = seen
      this.handler = createDialect(seen)
    }
    return this.handler
  }

  private finishBody(chunks: Buffer[]): Uint8Array[] {
    const raw = Buffer.concat(chunks)
    let text = raw.toString('utf8')
    const bom = text.charCodeAt(0) === 0xfeff ? '\ufeff' : ''
    if (bom) text = text.slice(1)
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      this.fail('malformed JSON body', 0)
      return [raw]
    }
    if (!isObject(json)) return [raw]
    const handler = this.adopt(sniffBody(json))
    if (!handler) {
      this.fail('unknown dialect: the body is none usagewire reads', 0)
      return [raw]
    }
    const rewritten = this.apply(text, handler.onBody(json, this.ctx), 'body')
    return [rewritten === undefined ? raw : Buffer.from(bom + rewritten, 'utf8')]
  }

  push(input: Uint8Array): Uint8Array[] {
    const chunk = toBuffer(input)
    this.bytesIn += chunk.length
    if (this.sse) return this.sse.push(chunk, this.visit)
    if (!this.body) return [chunk]
    this.body.push(chunk)
    this.bodyBytes += chunk.length
    if (this.bodyBytes <= this.maxEventBytes) return []
    return this.fail(`body over maxEventBytes (${this.maxEventBytes})`, 0)
  }

  end(): Uint8Array[] {
    if (this.sse) {
      const rest = this.sse.end(this.visit)
      if (!this.failure) this.handler?.onEnd?.(this.ctx)
      return rest
    }
    const held = this.body
    if (!held) return []
    this.body = undefined
    try {
      return this.finishBody(held)
    } catch (error) {
      this.fail(`internal error: ${(error as Error).message}`, 0)
      return held
    }
  }

  passthrough(reason: string): Uint8Array[] {
    return this.fail(reason, this.bytesIn)
  }

  result(): ProcessorResult {
    return {
      dialect: this.dialect ?? 'unknown',
      model: this.state.model,
      streaming: this.framing === 'sse',
      usage: this.ledger.usage(),
      sources: this.ledger.sources(),
      final: this.state.final,
      corrections: [...this.corrections],
      error: this.state.error,
      passthrough: this.failure,
    }
  }
}

export function createProcessor(options: ProcessorOptions = {}): Processor {
  return new UsageProcessor(options)
}
