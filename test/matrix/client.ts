/**
 * Raw HTTP clients for the conformance matrix: the bytes exactly as a gateway sent them (no automatic
 * decoding), a body decoded per the Content-Encoding it declares, and a reader that follows a stream as
 * it arrives (decoding it on the fly) so a scenario can stop, check the upstream, and go on.
 */
import { createHash } from 'node:crypto'
import http, { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import type { Readable } from 'node:stream'
import zlib from 'node:zlib'

export const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex')

/** What a client that decodes every encoding usagewire reads asks for. */
export const ACCEPT_ALL = { 'accept-encoding': 'gzip, br, deflate' }

export interface RequestOptions {
  method?: string
  headers?: OutgoingHttpHeaders
  body?: string | Buffer
  /** Defaults to a fresh connection per request (`agent: false`). */
  agent?: http.Agent | false
}

export interface RawResponse {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/** One request; resolves with the status, headers and the body bytes as they came off the wire. */
export function rawRequest(url: string, { method = 'GET', headers = {}, body, agent = false }: RequestOptions = {}) {
  return new Promise<RawResponse>((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res: IncomingMessage) => {
      const parts: Buffer[] = []
      res.on('data', (part: Buffer) => parts.push(part))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** The body decoded per the Content-Encoding the response declares (what any correct client does). */
export function decodeBody(res: RawResponse): Buffer {
  const encoding = String(res.headers['content-encoding'] ?? 'identity').toLowerCase()
  if (encoding === 'gzip' || encoding === 'x-gzip') return zlib.gunzipSync(res.body)
  if (encoding === 'br') return zlib.brotliDecompressSync(res.body)
  if (encoding === 'deflate') return zlib.inflateSync(res.body)
  if (encoding === 'identity') return res.body
  throw new Error(`unexpected content-encoding ${encoding}`)
}

/** A streaming decoder for what the response declares, flushing whatever it can as bytes arrive. */
function decoderFor(encoding: string): zlib.Gunzip | zlib.BrotliDecompress | zlib.Inflate | undefined {
  const flush = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }
  if (encoding === 'gzip' || encoding === 'x-gzip') return zlib.createGunzip(flush)
  if (encoding === 'deflate') return zlib.createInflate(flush)
  if (encoding === 'br') {
    return zlib.createBrotliDecompress({
      flush: zlib.constants.BROTLI_OPERATION_FLUSH,
      finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
    })
  }
  if (encoding === 'identity') return undefined
  throw new Error(`unexpected content-encoding ${encoding}`)
}

/** A response being read as it arrives: the raw bytes so far and the decoded bytes so far. */
export interface StreamReader {
  status: number
  headers: IncomingHttpHeaders
  /** Bytes as they came off the wire. */
  raw(): Buffer
  /** Bytes decoded per the declared Content-Encoding, as far as they decode. */
  decoded(): Buffer
  /** Resolves once `done(decoded text)` holds; rejects if the response ends, fails or takes `timeoutMs` first. */
  until(done: (text: string) => boolean, what: string, timeoutMs?: number): Promise<string>
  /** Resolves with the whole decoded body once the response has ended (rejects after `timeoutMs`). */
  end(timeoutMs?: number): Promise<Buffer>
  /** The client goes away: the connection is destroyed mid-response. */
  abort(): void
}

/** How long a reader waits for a head, a condition or the end before it fails with a message. */
export const READ_TIMEOUT_MS = 5_000

/**
 * Sends one request and resolves as soon as the response head has arrived (rejects, cancelling the
 * request, when it has not after `READ_TIMEOUT_MS`: a gateway that holds the head back).
 */
export function openStream(url: string, { method = 'POST', headers = {}, body, agent = false }: RequestOptions = {}) {
  return new Promise<StreamReader>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`no response head after ${READ_TIMEOUT_MS} ms (held back by the gateway?)`))
      req.destroy()
    }, READ_TIMEOUT_MS)
    const req = http.request(url, { method, headers, agent }, (res) => {
      clearTimeout(timer)
      const raw: Buffer[] = []
      const decoded: Buffer[] = []
      let ended = false
      let failure: Error | undefined
      const waiters = new Set<() => void>()
      const wake = () => {
        for (const waiter of [...waiters]) waiter()
      }
      const decoder = decoderFor(String(res.headers['content-encoding'] ?? 'identity').toLowerCase())
      const text: Readable = decoder ?? res
      res.on('data', (part: Buffer) => raw.push(part))
      if (decoder) res.pipe(decoder)
      text.on('data', (part: Buffer) => {
        decoded.push(part)
        wake()
      })
      text.on('end', () => {
        ended = true
        wake()
      })
      const fail = (error: Error) => {
        failure ??= error
        wake()
      }
      text.on('error', fail)
      res.on('error', fail)
      res.on('close', () => {
        if (!res.complete) fail(new Error('the response was cut before its end'))
      })
      /** Re-checks `settle` whenever bytes arrive or the response ends, until it settles or time runs out. */
      const wait = <T>(
        timeoutMs: number,
        what: string,
        settle: (ok: (value: T) => void, ko: (error: Error) => void) => boolean,
      ) =>
        new Promise<T>((ok, ko) => {
          const check = () => {
            if (settle(ok, ko)) stop()
          }
          const timer = setTimeout(() => {
            stop()
            ko(new Error(`timed out waiting for ${what}; got:\n${reader.decoded().toString('utf8').slice(-2000)}`))
          }, timeoutMs)
          const stop = () => {
            clearTimeout(timer)
            waiters.delete(check)
          }
          waiters.add(check)
          check()
        })
      const reader: StreamReader = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        raw: () => Buffer.concat(raw),
        decoded: () => Buffer.concat(decoded),
        until: (done, what, timeoutMs = READ_TIMEOUT_MS) =>
          wait(timeoutMs, `${what} after ${timeoutMs} ms`, (ok, ko) => {
            const sofar = reader.decoded().toString('utf8')
            if (done(sofar)) ok(sofar)
            else if (failure || ended)
              ko(new Error(`${failure?.message ?? 'the response ended'} before ${what}; got:\n${sofar}`))
            else return false
            return true
          }),
        end: (timeoutMs = READ_TIMEOUT_MS) =>
          wait(timeoutMs, `the end of the response after ${timeoutMs} ms`, (ok, ko) => {
            if (ended) ok(reader.decoded())
            else if (failure) ko(failure)
            else return false
            return true
          }),
        abort: () => req.destroy(),
      }
      resolve(reader)
    })
    req.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    req.end(body)
  })
}

/** Complete SSE events in `text` (each ends with a blank line; LF framing, as the scenarios write it). */
export const eventCount = (text: string): number => text.split('\n\n').length - 1

/** Cuts an SSE body into `{ name, data }` events (enough for the bodies the scenarios produce). */
export function parseSse(text: string): Array<{ name: string | undefined; data: string }> {
  return text
    .split(/\r?\n\r?\n/)
    .filter((block) => block.trim() !== '')
    .map((block) => {
      let name: string | undefined
      const data: string[] = []
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith('event:')) name = line.slice(6).trim()
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
      }
      return { name, data: data.join('\n') }
    })
}
