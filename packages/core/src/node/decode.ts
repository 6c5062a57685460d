import type { IncomingHttpHeaders } from 'node:http'
import { Transform, type TransformCallback } from 'node:stream'
import zlib from 'node:zlib'
import { opensZlib } from '../deflate.js'

export { opensZlib }

const SYNC = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }

/** zlib's zstd, where the runtime has it (Node 22.15 and 23.8 added it; Node 20 has none). */
const zstd = zlib as unknown as {
  createZstdDecompress?: () => Transform
  zstdDecompressSync?: (bytes: Buffer) => Buffer
}

/** True when this runtime decodes `zstd` (`Content-Encoding: zstd`, RFC 8878). */
export const DECODES_ZSTD =
  typeof zstd.createZstdDecompress === 'function' && typeof zstd.zstdDecompressSync === 'function'

/** `Content-Encoding: deflate`, zlib-wrapped or raw ({@link opensZlib}), decided on the body's first two bytes. */
class Inflate extends Transform {
  private inner: zlib.Inflate | zlib.InflateRaw | undefined
  private head: Buffer | undefined

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let bytes = chunk
    if (this.inner === undefined) {
      bytes = this.head === undefined ? chunk : Buffer.concat([this.head, chunk])
      if (bytes.length < 2) {
        this.head = bytes
        return callback()
      }
      this.head = undefined
      this.begin(opensZlib(bytes[0]!, bytes[1]!))
    }
    this.inner!.write(bytes, () => callback())
  }

  override _flush(callback: TransformCallback): void {
    if (this.inner === undefined) {
      this.begin(false) // a body of one byte (or none) has no zlib header
      if (this.head !== undefined) this.inner!.write(this.head)
    }
    this.inner!.once('end', () => callback())
    this.inner!.end()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.inner?.destroy()
    callback(error)
  }

  private begin(wrapped: boolean): void {
    const inner = wrapped ? zlib.createInflate(SYNC) : zlib.createInflateRaw(SYNC)
    inner.on('data', (data: Buffer) => this.push(data))
    inner.on('error', (error) => this.destroy(error))
    this.inner = inner
  }
}

/** A whole `zstd` body decoded; only where {@link DECODES_ZSTD}. */
export function zstdDecompressSync(bytes: Buffer): Buffer {
  if (!zstd.zstdDecompressSync) throw new Error('this runtime has no zstd decoder')
  return zstd.zstdDecompressSync(bytes)
}

/** A whole `deflate` body decoded: zlib-wrapped or raw ({@link opensZlib}). */
export function inflateSync(bytes: Buffer): Buffer {
  return bytes.length >= 2 && opensZlib(bytes[0]!, bytes[1]!) ? zlib.inflateSync(bytes) : zlib.inflateRawSync(bytes)
}

/**
 * A streaming decoder for a response's content-encoding, or undefined when usagewire cannot decode it
 * (the response then passes untouched). Each write is flushed through, so an SSE event leaves as soon as
 * its compressed bytes arrive, and a truncated body yields what it holds instead of an error.
 */
export function createDecoder(encoding: string): Transform | undefined {
  switch (encoding) {
    case 'gzip':
    case 'x-gzip':
      return zlib.createGunzip(SYNC)
    case 'deflate':
      return new Inflate()
    case 'br':
      return zlib.createBrotliDecompress({
        flush: zlib.constants.BROTLI_OPERATION_FLUSH,
        finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
      })
    case 'zstd':
      return DECODES_ZSTD ? zstd.createZstdDecompress!() : undefined
    default:
      return undefined
  }
}

/** The content encodings `createDecoder` handles: `zstd` too where the runtime decodes it. */
export const NODE_DECODERS: readonly string[] = ['gzip', 'x-gzip', 'deflate', 'br', ...(DECODES_ZSTD ? ['zstd'] : [])]

/**
 * An `Accept-Encoding` narrowed to the codings usagewire decodes, or undefined when it names no other.
 * A provider answers with any coding the request accepts, and one usagewire cannot decode (`zstd` on
 * Node 20, which Claude Code, curl and httpx with zstandard ask for) would leave the response unread:
 * its usage lost.
 * Codings usagewire reads keep their order and weights; `*` and every other coding go; a header left
 * with none asks for `identity`. The client gets the body identity-encoded whenever usagewire decoded
 * it (docs/transport.md#content-encoding), so it loses nothing it would have received.
 */
export function readableAcceptEncoding(
  header: string,
  decoders: readonly string[] = NODE_DECODERS,
): string | undefined {
  const kept: string[] = []
  let dropped = false
  let acceptable = false
  for (const item of header.split(',')) {
    const text = item.trim()
    if (text === '') continue
    const semicolon = text.indexOf(';')
    const coding = (semicolon === -1 ? text : text.slice(0, semicolon)).trim().toLowerCase()
    if (coding === 'identity' || decoders.includes(coding)) {
      kept.push(text)
      if (!refused(text, semicolon)) acceptable = true
    } else dropped = true
  }
  if (!dropped) return undefined
  // What is left must accept something: `identity;q=0` alone would leave the provider nothing to send.
  return acceptable ? kept.join(', ') : 'identity'
}

/** True when a coding's weight is 0 (`gzip;q=0`, `br; q=0.000`): the client refuses it. */
function refused(item: string, semicolon: number): boolean {
  if (semicolon === -1) return false
  const weight = /(?:^|;)\s*q\s*=\s*([0-9.]+)/i.exec(item.slice(semicolon))
  return weight !== null && Number(weight[1]) === 0
}

/**
 * True when the request is signed over its `Accept-Encoding` (AWS SigV4 signs every header it is given,
 * HTTP Message Signatures name theirs): changing the header would break the signature.
 */
function signsAcceptEncoding(headers: IncomingHttpHeaders, url: string | undefined): boolean {
  const authorization = headers.authorization
  if (typeof authorization === 'string' && /^AWS4-/i.test(authorization)) {
    return /SignedHeaders=[^,\s]*\baccept-encoding\b/i.test(authorization)
  }
  const input = headers['signature-input']
  if (input !== undefined && /"accept-encoding"/i.test(String(input))) return true
  return url !== undefined && /X-Amz-SignedHeaders=[^&]*accept-encoding/i.test(url)
}

/**
 * Narrows the `Accept-Encoding` of a request usagewire meters, before the gateway forwards it
 * ({@link readableAcceptEncoding}); a request signed over the header keeps it.
 */
export function narrowAcceptEncoding(req: { headers: IncomingHttpHeaders; url?: string | undefined }): void {
  const header = req.headers?.['accept-encoding'] // a stand-in for a request may have none
  if (header === undefined) return
  const text = Array.isArray(header) ? header.join(', ') : header
  // A gateway's clients send a few headers over and over: the last one's answer is kept.
  if (text !== last.header) last = { header: text, narrowed: readableAcceptEncoding(text) }
  if (last.narrowed !== undefined && !signsAcceptEncoding(req.headers, req.url)) {
    req.headers['accept-encoding'] = last.narrowed
  }
}

let last: { header: string; narrowed: string | undefined } = { header: '', narrowed: undefined }
