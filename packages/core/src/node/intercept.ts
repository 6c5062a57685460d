import { randomUUID } from 'node:crypto'
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Transform } from 'node:stream'
import { DIALECTS } from '../dialects/index.js'
import { createProcessor, type Processor, type ProcessorResult } from '../processor.js'
import { buildRecord } from '../record.js'
import { matchRoute, routeOf, type RouteRule, type UsagewireOptions } from '../routes.js'
import { createDecoder } from './decode.js'

type Chunk = string | Uint8Array
type Callback = (error?: Error | null) => void
type Loose<R> = (...args: unknown[]) => R

/** What the adapters share: decide per request whether a response is an LLM response, and rewrite it. */
export interface Interceptor {
  /**
   * Wraps `res` so the LLM response it will carry leaves with complete, consistent usage. `url` is the
   * request path as the client sent it (e.g. Express's `req.originalUrl`). Returns false, having touched
   * nothing, when the path is not an LLM endpoint.
   */
  (req: IncomingMessage, res: ServerResponse, url?: string): boolean
}

const toBuffer = (chunk: Chunk, encoding?: BufferEncoding): Buffer =>
  typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)

const since = (start: number): number => Math.round((performance.now() - start) * 100) / 100

function header(res: ServerResponse, name: string): string {
  const value = res.getHeader(name)
  return Array.isArray(value) ? value.join(', ') : value === undefined ? '' : String(value)
}

/** `writeHead(status, [reason], [headers])` moved onto `res`, so every decision reads one set of headers. */
function adoptHeadArgs(res: ServerResponse, args: unknown[]): string | undefined {
  const [status, second, third] = args
  const reason = typeof second === 'string' ? second : undefined
  const headers = (typeof second === 'string' ? third : second) as OutgoingHttpHeaders | unknown[] | undefined
  if (typeof status === 'number') res.statusCode = status
  if (Array.isArray(headers)) {
    const flat = Array.isArray(headers[0]) ? (headers as unknown[][]).flat() : headers
    const merged = new Map<string, string[]>()
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const name = String(flat[i])
      merged.set(name, [...(merged.get(name) ?? []), String(flat[i + 1])])
    }
    for (const [name, values] of merged) res.setHeader(name, values.length === 1 ? values[0]! : values)
  } else if (headers) {
    for (const [name, value] of Object.entries(headers)) if (value !== undefined) res.setHeader(name, value)
  }
  return reason
}

/** Options are checked once, when the middleware is created: a mistake there is the developer's to see. */
function validate(options: UsagewireOptions): void {
  const { onUsage, routes, maxEventBytes, logger } = options
  if (onUsage !== undefined && typeof onUsage !== 'function')
    throw new TypeError('usagewire: onUsage must be a function')
  if (maxEventBytes !== undefined && !(Number.isInteger(maxEventBytes) && maxEventBytes > 0)) {
    throw new TypeError('usagewire: maxEventBytes must be a positive integer')
  }
  if (logger !== undefined && typeof logger?.warn !== 'function')
    throw new TypeError('usagewire: logger must have warn()')
  if (routes === undefined) return
  if (!Array.isArray(routes)) throw new TypeError('usagewire: routes must be an array of { path, dialect? }')
  for (const rule of routes) {
    if (typeof rule?.path !== 'string' && !(rule?.path instanceof RegExp)) {
      throw new TypeError('usagewire: each route needs a path (a string suffix or a RegExp)')
    }
    if (rule.dialect !== undefined && !DIALECTS.includes(rule.dialect)) {
      throw new TypeError(`usagewire: unknown dialect "${String(rule.dialect)}" (one of ${DIALECTS.join(', ')})`)
    }
  }
}

export function createInterceptor(options: UsagewireOptions = {}): Interceptor {
  validate(options)
  const rules: readonly RouteRule[] | undefined = options.routes
  return function intercept(req, res, url = req.url ?? '/') {
    const route = routeOf(url)
    const rule = matchRoute(route, rules)
    if (!rule) return false
    // The interception lives on through the methods it installs on `res` and its listeners.
    new Interception(req, res, route, rule, options)
    return true
  }
}

/**
 * One intercepted response. Like `compression()`, it decides at the first write, from the headers,
 * whether the response is one to rewrite; when it is not, it puts the original methods back and gets
 * out of the way. A class, not a bundle of closures: one is made per LLM request.
 */
class Interception {
  private readonly started = performance.now()
  private firstByteMs: number | null = null
  private processor: Processor | undefined
  private decoder: Transform | undefined
  private decoding = '' // the content-encoding being decoded
  private holdHead = false // JSON and decoded bodies: the head waits for the new length and encoding
  private headArgs: [number, string | undefined] | undefined
  private headSent = false
  private sse = false
  private decided = false
  private active = false
  private writerEnded = false // the writer called end()
  private finished = false // we ended the response
  private raw = false // from now on the body leaves exactly as the upstream encoded it
  private endCallback: Callback | undefined
  // Encoded input kept until the first decoded byte leaves, so a body that fails to decode can still
  // go out exactly as it came.
  private encodedHeld: Buffer[] | undefined = []
  private passthroughReason: string | undefined
  private reported = false
  private readonly writeHead: Loose<ServerResponse>
  private readonly write: Loose<boolean>
  private readonly end: Loose<ServerResponse>
  private readonly flushHeaders: () => void

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly route: string,
    private readonly rule: RouteRule,
    private readonly options: UsagewireOptions,
  ) {
    this.writeHead = res.writeHead as Loose<ServerResponse>
    this.write = res.write as Loose<boolean>
    this.end = res.end as Loose<ServerResponse>
    this.flushHeaders = res.flushHeaders
    res.writeHead = ((...args: unknown[]) => this.onWriteHead(args)) as ServerResponse['writeHead']
    res.flushHeaders = () => this.onFlushHeaders()
    res.write = ((chunk: Chunk, encoding?: unknown, callback?: unknown) =>
      this.onWrite(chunk, encoding, callback)) as ServerResponse['write']
    res.end = ((chunk?: unknown, encoding?: unknown, callback?: unknown) =>
      this.onEnd(chunk, encoding, callback)) as ServerResponse['end']
    res.once('finish', () => this.report(false))
    res.once('close', () => this.report(!res.writableFinished))
  }

  private restore(): void {
    const res = this.res
    res.writeHead = this.writeHead as ServerResponse['writeHead']
    res.write = this.write as ServerResponse['write']
    res.end = this.end as ServerResponse['end']
    res.flushHeaders = this.flushHeaders
  }

  private decide(): void {
    if (this.decided) return
    this.decided = true
    const { req, res } = this
    const status = res.statusCode
    const contentType = header(res, 'content-type')
    const encoding = header(res, 'content-encoding').trim().toLowerCase()
    if (req.method === 'HEAD' || status === 204 || status === 304) {
      this.reported = true // nothing was generated, nothing to record
      return this.restore()
    }
    // An error body is read too (it carries no usage, so it leaves as it came): the record then names
    // the upstream's error type, not just its status.
    this.sse = contentType.toLowerCase().startsWith('text/event-stream')
    if (!this.sse && !/json/i.test(contentType)) {
      this.passthroughReason = `content-type "${contentType}" is not a body usagewire reads`
      return this.restore()
    }
    if (encoding && encoding !== 'identity') {
      this.decoder = createDecoder(encoding)
      if (!this.decoder) {
        this.passthroughReason = `content-encoding "${encoding}" is not one usagewire decodes`
        return this.restore()
      }
      this.decoding = encoding
    }
    this.active = true
    this.processor = createProcessor({
      dialect: this.rule.dialect,
      path: this.route,
      contentType,
      maxEventBytes: this.options.maxEventBytes,
    })
    this.holdHead = !this.sse || this.decoder !== undefined
    if (this.sse) res.removeHeader('content-length')
    if (this.decoder) this.wireDecoder(this.decoder)
  }

  /** The head is due: written now, or held until the body's length and encoding are settled. */
  private headDue(): void {
    if (this.headSent) return
    this.headArgs ??= [this.res.statusCode, undefined]
    if (!this.holdHead) this.sendHead()
  }

  private sendHead(): void {
    if (!this.headArgs || this.headSent) return
    const [status, reason] = this.headArgs
    this.headArgs = undefined
    this.headSent = true
    if (reason === undefined) this.writeHead.call(this.res, status)
    else this.writeHead.call(this.res, status, reason)
  }

  /** Writes processor output to the client; returns what the socket said. */
  private emit(chunks: Uint8Array[]): boolean {
    const res = this.res
    let ok = true
    // Several pieces of one input chunk (a held event completed, the untouched rest) leave in one write.
    const cork = chunks.length > 1
    if (cork) res.cork()
    for (const chunk of chunks) {
      if (chunk.length === 0) continue
      if (this.headArgs) {
        // The body is leaving as it came (passthrough) or as the decoder produced it.
        if (this.decoding) res.removeHeader('content-encoding')
        if (this.decoding || res.hasHeader('transfer-encoding')) res.removeHeader('content-length')
        this.sendHead()
      }
      this.firstByteMs ??= since(this.started)
      ok = this.write.call(res, chunk) && ok
    }
    if (cork) res.uncork()
    const flush = (res as { flush?: () => void }).flush
    // `compression()` buffers in its zlib window until flushed: SSE must leave per event (PEERS.md §2 row 50).
    if (this.sse && chunks.length > 0 && typeof flush === 'function') flush.call(res)
    return ok
  }

  /**
   * Nothing has left yet and the decoded body could not be read: send the body exactly as the upstream
   * encoded it, from its first byte. Returns false when that is no longer possible.
   */
  private sendEncoded(reason: string): boolean {
    if (this.headSent || !this.encodedHeld) return false
    this.processor!.passthrough(reason)
    this.raw = true
    this.sendHead()
    for (const chunk of this.encodedHeld) this.write.call(this.res, chunk)
    this.encodedHeld = undefined
    if (this.writerEnded) {
      this.finished = true
      this.end.call(this.res, this.endCallback)
    }
    return true
  }

  private finish(callback?: Callback): void {
    if (this.finished) return
    const res = this.res
    const processor = this.processor!
    const rest = processor.end()
    const failed = processor.result().passthrough
    if (this.decoder && failed && this.sendEncoded(failed.reason)) return
    this.finished = true
    if (this.headArgs) {
      const length = rest.reduce((n, c) => n + c.length, 0)
      if (this.decoding) res.removeHeader('content-encoding')
      if (!res.hasHeader('transfer-encoding')) res.setHeader('content-length', length)
      if (processor.result().corrections.length > 0) res.removeHeader('etag') // the body is not the one it tagged
      this.sendHead()
    }
    this.emit(rest)
    this.end.call(res, callback)
  }

  private wireDecoder(stream: Transform): void {
    const res = this.res
    stream.on('data', (data: Buffer) => {
      if (!this.emit(this.processor!.push(data))) {
        stream.pause()
        res.once('drain', () => stream.resume())
      }
    })
    // The decoder's own buffer filling up is what `write()` reported; tell the writer when it empties.
    stream.on('drain', () => res.emit('drain'))
    stream.on('error', (error: Error) => {
      if (this.finished || this.raw) return
      this.options.logger?.warn(`usagewire: ${this.decoding} decoding failed on ${this.route}: ${error.message}`)
      const reason = `content-encoding ${this.decoding}: ${error.message}`
      if (this.sendEncoded(reason)) return
      // Decoded bytes already left: end with what was decoded; the upstream's body was broken anyway.
      this.emit(this.processor!.passthrough(reason))
      this.finish(this.endCallback)
    })
    stream.on('end', () => this.finish(this.endCallback))
  }

  private onWriteHead(args: unknown[]): ServerResponse {
    const res = this.res
    const reason = adoptHeadArgs(res, args)
    this.decide()
    if (!this.active) return this.writeHead.call(res, res.statusCode, ...(reason ? [reason] : []))
    if (!this.headSent) this.headArgs = [res.statusCode, reason]
    this.headDue()
    return res
  }

  private onFlushHeaders(): void {
    this.decide()
    if (!this.active) return this.flushHeaders.call(this.res)
    if (!this.holdHead) {
      this.headDue()
      this.flushHeaders.call(this.res)
    }
  }

  private onWrite(chunk: Chunk, encoding: unknown, callback: unknown): boolean {
    this.decide()
    const res = this.res
    if (!this.active || this.finished || this.raw) return this.write.call(res, chunk, encoding, callback)
    const cb = (typeof encoding === 'function' ? encoding : callback) as Callback | undefined
    this.headDue()
    const data = toBuffer(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : undefined)
    if (this.decoder) {
      if (this.encodedHeld && !this.headSent) this.encodedHeld.push(data)
      else this.encodedHeld = undefined
      return this.decoder.write(data, cb)
    }
    const ok = this.emit(this.processor!.push(data))
    if (cb) process.nextTick(cb)
    return ok && !res.writableNeedDrain
  }

  private onEnd(chunk: unknown, encoding: unknown, callback: unknown): ServerResponse {
    this.decide()
    const res = this.res
    if (!this.active || this.finished || this.writerEnded || this.raw) {
      return this.end.call(res, chunk, encoding, callback)
    }
    if (typeof chunk === 'function') [chunk, callback] = [undefined, chunk]
    if (typeof encoding === 'function') [encoding, callback] = [undefined, encoding]
    this.headDue()
    const data = chunk == null ? undefined : toBuffer(chunk as Chunk, encoding as BufferEncoding | undefined)
    if (this.decoder) {
      this.endCallback = callback as Callback | undefined
      if (data && this.encodedHeld && !this.headSent) this.encodedHeld.push(data)
      this.writerEnded = true
      this.decoder.end(data)
      return res
    }
    if (data) this.emit(this.processor!.push(data))
    this.finish(callback as Callback | undefined)
    return res
  }

  private report(aborted: boolean): void {
    if (this.reported) return
    this.reported = true
    const { req, res, options } = this
    const result: ProcessorResult = this.processor?.result() ?? {
      dialect: this.rule.dialect ?? 'unknown',
      model: null,
      streaming: this.sse,
      usage: {},
      sources: {},
      final: false,
      corrections: [],
      error: undefined,
      passthrough: this.passthroughReason ? { reason: this.passthroughReason, atByte: 0 } : undefined,
    }
    const id =
      header(res, 'request-id') ||
      header(res, 'x-request-id') ||
      String(req.headers['x-request-id'] ?? '') ||
      randomUUID()
    const record = buildRecord(result, {
      id,
      route: this.route,
      method: req.method ?? 'GET',
      httpStatus: res.statusCode,
      aborted,
      firstByteMs: this.firstByteMs,
      totalMs: since(this.started),
    })
    if (record.passthrough) {
      options.logger?.warn(
        `usagewire: ${this.route} left untouched from byte ${record.passthrough.atByte}: ${record.passthrough.reason}`,
      )
    }
    if (!options.onUsage) return
    try {
      options.onUsage(record)
    } catch (error) {
      options.logger?.warn(`usagewire: onUsage threw: ${(error as Error).message}`)
    }
  }
}
