import {
  createDialect,
  dialectForPath,
  sniffBody,
  sniffEvent,
  type DialectHandler,
  type ResponseState,
  type UsageRewrite,
} from './dialects/index.js'
import { spliceMember } from './framing/json-splice.js'
import {
  createSseFramer,
  matchEventName,
  NO_EVENT_LINE,
  parseEvent,
  replaceData,
  type SseFramer,
} from './framing/sse.js'
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
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  if (type === 'text/event-stream') return 'sse'
  if (type === 'application/json' || type.endsWith('+json')) return 'json'
  return undefined
}

const toBuffer = (chunk: Uint8Array): Buffer =>
  Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)

/** Each numeric leaf of `after` that differs from `before`, as corrections at `where`. */
function diff(before: JsonObject, after: JsonObject, where: string, prefix: string, out: Correction[]): void {
  for (const [key, value] of Object.entries(after)) {
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

export function createProcessor(options: ProcessorOptions = {}): Processor {
  const maxEventBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES
  const framing = framingFor(options.contentType)
  let dialect: Dialect | undefined = options.dialect ?? (options.path ? dialectForPath(options.path) : undefined)
  let handler: DialectHandler | undefined = dialect ? createDialect(dialect) : undefined
  const ledger = new Ledger()
  const state: ResponseState = { model: null, final: false, error: undefined, done: false, events: 0 }
  const ctx = { ledger, state }
  const corrections: Correction[] = []
  let passthrough: ProcessorResult['passthrough']
  let bytesIn = 0
  let bufBase = 0 // stream offset of byte 0 of the buffer the framer is visiting
  let sniffed = false
  const sse: SseFramer | undefined =
    framing === 'sse'
      ? createSseFramer(maxEventBytes, (start) => fail(`event over maxEventBytes (${maxEventBytes})`, bufBase + start))
      : undefined
  let body: Buffer[] | undefined = framing === 'json' ? [] : undefined
  let bodyBytes = 0

  /** Fail open: from here on every byte passes untouched. Returns the bytes that were being held. */
  function fail(reason: string, atByte: number): Buffer[] {
    passthrough ??= { reason, atByte }
    const held = sse ? sse.stop() : (body ?? [])
    body = undefined
    return held
  }
  if (!framing) fail(`content-type "${options.contentType ?? ''}" is not a body usagewire reads`, 0)

  /** Applies a dialect's rewrite to a JSON text; returns the new text, or undefined when nothing changes. */
  function apply(text: string, rewrite: UsageRewrite | undefined, where: string): string | undefined {
    if (!rewrite) return undefined
    const changes: Correction[] = []
    diff(rewrite.before, rewrite.after, where, 'usage', changes)
    if (changes.length === 0) return undefined
    const spliced = spliceMember(text, rewrite.path, rewrite.after)
    if (spliced === undefined) return undefined
    corrections.push(...changes)
    return spliced
  }

  function visitEvent(buf: Buffer, start: number, end: number): Uint8Array | undefined {
    const index = state.events++
    if (end - start > maxEventBytes) {
      fail(`event over maxEventBytes (${maxEventBytes})`, bufBase + start)
      return undefined
    }
    if (handler && sniffed) {
      // The hot path: decide from bytes alone whether this event may carry usage or an error.
      const named = matchEventName(buf, start, end, handler.eventNames)
      if (named === -1) return undefined
      if (named === NO_EVENT_LINE && !handler.mayCarry(buf, start, end)) return undefined
    }
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
      fail(`malformed JSON in ${event.name ?? 'a data'} event`, bufBase + start)
      return undefined
    }
    if (!sniffed) {
      sniffed = true
      // The first event settles the dialect: the path may be silent, or may not say what the body is.
      const seen = sniffEvent(event.name, json)
      if (seen && seen !== dialect) {
        dialect = seen
        handler = createDialect(seen)
      }
      if (!handler) {
        fail('unknown dialect: the first event is none usagewire reads', bufBase + start)
        return undefined
      }
    }
    if (!isObject(json) || !handler) return undefined
    const where = event.name ?? (dialect === 'openai-chat' ? `chunk#${index}` : String(json.type ?? `event#${index}`))
    const data = apply(event.data, handler.onEvent(event.name, json, ctx), where)
    return data === undefined ? undefined : replaceData(buf, start, end, event, data)
  }

  function visit(buf: Buffer, start: number, end: number): Uint8Array | undefined {
    try {
      return visitEvent(buf, start, end)
    } catch (error) {
      fail(`internal error: ${(error as Error).message}`, bufBase + start)
      return undefined
    }
  }

  function finishBody(chunks: Buffer[]): Uint8Array[] {
    const raw = Buffer.concat(chunks)
    let text = raw.toString('utf8')
    const bom = text.charCodeAt(0) === 0xfeff ? '\ufeff' : ''
    if (bom) text = text.slice(1)
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      fail('malformed JSON body', 0)
      return [raw]
    }
    if (!isObject(json)) return [raw]
    const seen = sniffBody(json)
    if (seen && seen !== dialect) {
      dialect = seen
      handler = createDialect(seen)
    }
    if (!handler) {
      fail('unknown dialect: the body is none usagewire reads', 0)
      return [raw]
    }
    const rewritten = apply(text, handler.onBody(json, ctx), 'body')
    return [rewritten === undefined ? raw : Buffer.from(bom + rewritten, 'utf8')]
  }

  return {
    ledger,
    push(input) {
      const chunk = toBuffer(input)
      bufBase = bytesIn - (sse?.pending()?.length ?? 0)
      bytesIn += chunk.length
      if (sse) return sse.push(chunk, visit)
      if (!body) return [chunk]
      body.push(chunk)
      bodyBytes += chunk.length
      if (bodyBytes <= maxEventBytes) return []
      return fail(`body over maxEventBytes (${maxEventBytes})`, 0)
    },
    end() {
      if (sse) {
        bufBase = bytesIn - (sse.pending()?.length ?? 0)
        const rest = sse.end(visit)
        if (!passthrough) handler?.onEnd?.(ctx)
        return rest
      }
      if (!body) return []
      const held = body
      body = undefined
      try {
        return finishBody(held)
      } catch (error) {
        fail(`internal error: ${(error as Error).message}`, 0)
        return held
      }
    },
    passthrough(reason) {
      return fail(reason, bytesIn)
    },
    result() {
      return {
        dialect: dialect ?? 'unknown',
        model: state.model,
        streaming: framing === 'sse',
        usage: ledger.usage(),
        sources: ledger.sources(),
        final: state.final,
        corrections: [...corrections],
        error: state.error,
        passthrough,
      }
    },
  }
}
