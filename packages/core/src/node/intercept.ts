import { randomUUID } from 'node:crypto'
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Transform } from 'node:stream'
import { DIALECTS } from '../dialects/index.js'
import { createProcessor, type Processor } from '../processor.js'
import { buildRecord, type UsageRecord } from '../record.js'
import { matchRoute, routeOf, type RouteRule, type UsagewireOptions } from '../routes.js'
import { createDecoder } from './decode.js'

type Chunk = string | Uint8Array
type Callback = (error?: Error | null) => void
type WriteHead = ServerResponse['writeHead']

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
  const logger = options.logger

  function deliver(record: UsageRecord): void {
    if (!options.onUsage) return
    try {
      options.onUsage(record)
    } catch (error) {
      logger?.warn(`usagewire: onUsage threw: ${(error as Error).message}`)
    }
  }

  return function intercept(req, res, url = req.url ?? '/') {
    const route = routeOf(url)
    const rule = matchRoute(route, rules)
    if (!rule) return false

    const started = performance.now()
    let firstByteMs: number | null = null
    let processor: Processor | undefined
    let decoder: Transform | undefined
    let decoding = '' // the content-encoding being decoded
    let holdHead = false // JSON bodies and decoded bodies: the head waits for the (new) length and encoding
    let headArgs: [number, string | undefined] | undefined
    let headSent = false
    let sse = false
    let decided = false
    let active = false
    let writerEnded = false // the writer called end()
    let finished = false // we ended the response
    let passthroughReason: string | undefined
    let reported = false

    const original = {
      writeHead: res.writeHead,
      write: res.write,
      end: res.end,
      flushHeaders: res.flushHeaders,
    }
    // Loosely typed views of the originals for the calls made with argument lists of our own.
    const call = {
      writeHead: original.writeHead as (...args: unknown[]) => ServerResponse,
      write: original.write as (...args: unknown[]) => boolean,
      end: original.end as (...args: unknown[]) => ServerResponse,
    }
    const restore = () => {
      res.writeHead = original.writeHead
      res.write = original.write
      res.end = original.end
      res.flushHeaders = original.flushHeaders
    }

    function report(aborted: boolean): void {
      if (reported) return
      reported = true
      const result = processor?.result() ?? {
        dialect: rule!.dialect ?? 'unknown',
        model: null,
        streaming: header(res, 'content-type').startsWith('text/event-stream'),
        usage: {},
        sources: {},
        final: false,
        corrections: [],
        error: undefined,
        passthrough: passthroughReason ? { reason: passthroughReason, atByte: 0 } : undefined,
      }
      const id =
        header(res, 'request-id') ||
        header(res, 'x-request-id') ||
        String(req.headers['x-request-id'] ?? '') ||
        randomUUID()
      const record = buildRecord(result, {
        id,
        route,
        method: req.method ?? 'GET',
        httpStatus: res.statusCode,
        aborted,
        firstByteMs,
        totalMs: Math.round((performance.now() - started) * 100) / 100,
      })
      if (record.passthrough && logger) {
        logger.warn(
          `usagewire: ${route} left untouched from byte ${record.passthrough.atByte}: ${record.passthrough.reason}`,
        )
      }
      deliver(record)
    }
    res.once('finish', () => report(false))
    res.once('close', () => report(!res.writableFinished))

    function decide(): void {
      if (decided) return
      decided = true
      const status = res.statusCode
      const contentType = header(res, 'content-type')
      const encoding = header(res, 'content-encoding').trim().toLowerCase()
      const noBody = req.method === 'HEAD' || status === 204 || status === 304
      if (noBody || status >= 400) {
        if (noBody) reported = true // nothing was generated, nothing to record
        return restore()
      }
      sse = contentType.toLowerCase().startsWith('text/event-stream')
      if (!sse && !/json/i.test(contentType)) {
        passthroughReason = `content-type "${contentType}" is not a body usagewire reads`
        return restore()
      }
      if (encoding && encoding !== 'identity') {
        decoder = createDecoder(encoding)
        if (!decoder) {
          passthroughReason = `content-encoding "${encoding}" is not one usagewire decodes`
          return restore()
        }
        decoding = encoding
      }
      active = true
      processor = createProcessor({
        dialect: rule!.dialect,
        path: route,
        contentType,
        maxEventBytes: options.maxEventBytes,
      })
      holdHead = !sse || decoder !== undefined
      if (sse) res.removeHeader('content-length')
      if (decoder) wireDecoder(decoder)
    }

    /** The head is due: written now, or held until the body's length and encoding are settled. */
    function headDue(): void {
      if (headSent) return
      headArgs ??= [res.statusCode, undefined]
      if (!holdHead) sendHead()
    }

    function sendHead(): void {
      if (!headArgs || headSent) return
      const [status, reason] = headArgs
      headArgs = undefined
      headSent = true
      if (reason === undefined) call.writeHead.call(res, status)
      else call.writeHead.call(res, status, reason)
    }

    /** Writes processor output to the client; returns what the socket said. */
    function emit(chunks: Uint8Array[]): boolean {
      let ok = true
      for (const chunk of chunks) {
        if (chunk.length === 0) continue
        if (headArgs) {
          // The body is leaving as it came (passthrough) or as the decoder produced it.
          if (decoding) res.removeHeader('content-encoding')
          if (decoding || res.hasHeader('transfer-encoding')) res.removeHeader('content-length')
          sendHead()
        }
        firstByteMs ??= Math.round((performance.now() - started) * 100) / 100
        ok = call.write.call(res, chunk) && ok
      }
      if (sse && chunks.length > 0 && typeof (res as { flush?: () => void }).flush === 'function') {
        // `compression()` buffers in its zlib window until flushed: SSE must leave per event (PEERS.md §2 row 50).
        ;(res as unknown as { flush: () => void }).flush()
      }
      return ok
    }

    /**
     * Nothing has left yet and the decoded body could not be read: send the body exactly as the upstream
     * encoded it, from its first byte. Returns false when that is no longer possible.
     */
    function sendEncoded(reason: string): boolean {
      if (headSent || !encodedHeld) return false
      processor!.passthrough(reason)
      raw = true
      sendHead()
      for (const chunk of encodedHeld) call.write.call(res, chunk)
      encodedHeld = undefined
      if (writerEnded) {
        finished = true
        call.end.call(res, endCallback)
      }
      return true
    }

    function finish(callback?: Callback): void {
      if (finished) return
      const rest = processor!.end()
      const failed = processor!.result().passthrough
      if (decoder && failed && sendEncoded(failed.reason)) return
      finished = true
      if (headArgs) {
        const length = rest.reduce((n, c) => n + c.length, 0)
        if (decoding) res.removeHeader('content-encoding')
        if (!res.hasHeader('transfer-encoding')) res.setHeader('content-length', length)
        if (processor!.result().corrections.length > 0) res.removeHeader('etag') // the body is not the one it tagged
        sendHead()
      }
      emit(rest)
      call.end.call(res, callback)
    }

    function wireDecoder(stream: Transform): void {
      stream.on('data', (data: Buffer) => {
        if (emit(processor!.push(data)) === false) {
          stream.pause()
          res.once('drain', () => stream.resume())
        }
      })
      // The decoder's own buffer filling up is what `write()` reported; tell the writer when it empties.
      stream.on('drain', () => res.emit('drain'))
      stream.on('error', (error: Error) => {
        if (finished || raw) return
        logger?.warn(`usagewire: ${decoding} decoding failed on ${route}: ${error.message}`)
        const reason = `content-encoding ${decoding}: ${error.message}`
        if (sendEncoded(reason)) return
        // Decoded bytes already left: end with what was decoded; the upstream's body was broken anyway.
        emit(processor!.passthrough(reason))
        finish(endCallback)
      })
      stream.on('end', () => finish(endCallback))
    }
    let endCallback: Callback | undefined
    // Encoded input kept until the first decoded byte leaves, so a body that fails to decode can still
    // go out exactly as it came.
    let encodedHeld: Buffer[] | undefined = []
    let raw = false

    res.writeHead = function writeHead(this: ServerResponse, ...args: unknown[]) {
      const reason = adoptHeadArgs(res, args)
      decide()
      if (!active) return call.writeHead.call(res, res.statusCode, ...(reason ? [reason] : []))
      if (!headSent) headArgs = [res.statusCode, reason]
      headDue()
      return res
    } as WriteHead

    res.flushHeaders = function flushHeaders() {
      decide()
      if (!active) return original.flushHeaders.call(res)
      if (!holdHead) {
        headDue()
        original.flushHeaders.call(res)
      }
    }

    res.write = function write(this: ServerResponse, chunk: Chunk, encoding?: unknown, callback?: unknown) {
      decide()
      if (!active || finished || raw) return call.write.call(res, chunk, encoding, callback)
      const cb = (typeof encoding === 'function' ? encoding : callback) as Callback | undefined
      headDue()
      const data = toBuffer(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : undefined)
      if (decoder) {
        if (encodedHeld && !headSent) encodedHeld.push(data)
        else encodedHeld = undefined
        return decoder.write(data, cb)
      }
      const ok = emit(processor!.push(data))
      if (cb) process.nextTick(cb)
      return ok && !res.writableNeedDrain
    } as ServerResponse['write']

    res.end = function end(this: ServerResponse, chunk?: unknown, encoding?: unknown, callback?: unknown) {
      decide()
      if (!active || finished || writerEnded || raw) return call.end.call(res, chunk, encoding, callback)
      if (typeof chunk === 'function') [chunk, callback] = [undefined, chunk]
      if (typeof encoding === 'function') [encoding, callback] = [undefined, encoding]
      headDue()
      const data = chunk == null ? undefined : toBuffer(chunk as Chunk, encoding as BufferEncoding | undefined)
      if (decoder) {
        endCallback = callback as Callback | undefined
        if (data && encodedHeld && !headSent) encodedHeld.push(data)
        writerEnded = true
        decoder.end(data)
        return res
      }
      if (data) emit(processor!.push(data))
      finish(callback as Callback | undefined)
      return res
    } as ServerResponse['end']

    return true
  }
}
