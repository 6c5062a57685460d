import type { Transform } from 'node:stream'
import zlib from 'node:zlib'
import { describe, expect, it } from 'vitest'
import {
  createDecoder,
  DECODES_ZSTD,
  inflateSync,
  narrowAcceptEncoding,
  NODE_DECODERS,
  opensZlib,
  readableAcceptEncoding,
  zstdDecompressSync,
} from './decode.js'

/** What Node 20 decodes: no zstd. */
const NODE20 = ['gzip', 'x-gzip', 'deflate', 'br']
/** zlib's zstd compressor, where the runtime has one. */
const zstdCompressSync = (zlib as unknown as { zstdCompressSync?: (bytes: Buffer) => Buffer }).zstdCompressSync

/** Writes `pieces` to `decoder` one at a time, each after the one before was taken; resolves with the output. */
async function decodeAll(decoder: Transform, pieces: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = []
  decoder.on('data', (data: Buffer) => out.push(data))
  const ended = new Promise<void>((resolve, reject) => {
    decoder.once('end', resolve)
    decoder.once('error', reject)
  })
  for (const piece of pieces) {
    await Promise.race([new Promise<void>((resolve) => decoder.write(piece, () => resolve())), ended])
  }
  decoder.end()
  await ended
  return Buffer.concat(out)
}

const TEXT = Buffer.from('event: message_delta\ndata: {"usage":{"output_tokens":42}}\n\n'.repeat(50))
const everyByte = (bytes: Buffer): Buffer[] => [...bytes].map((byte) => Buffer.of(byte))

describe('deflate, zlib-wrapped or raw', () => {
  it('tells a zlib header from raw deflate, whatever the window', () => {
    for (const windowBits of [9, 10, 11, 12, 13, 14, 15]) {
      const wrapped = zlib.deflateSync(TEXT, { windowBits })
      expect(opensZlib(wrapped[0]!, wrapped[1]!)).toBe(true)
    }
    expect(opensZlib(0x78, 0x9c)).toBe(true)
    expect(opensZlib(0x78, 0x9d)).toBe(false) // check bits wrong
    expect(opensZlib(0x88, 0x1c)).toBe(false) // a window over 32 KiB
    const raw = zlib.deflateRawSync(TEXT)
    expect(opensZlib(raw[0]!, raw[1]!)).toBe(false)
  })

  it('decodes a stream of either kind, in one piece or a byte at a time', async () => {
    for (const encoded of [
      zlib.deflateSync(TEXT),
      zlib.deflateSync(TEXT, { windowBits: 9 }),
      zlib.deflateRawSync(TEXT),
    ]) {
      expect(await decodeAll(createDecoder('deflate')!, [encoded])).toEqual(TEXT)
      expect(await decodeAll(createDecoder('deflate')!, everyByte(encoded))).toEqual(TEXT)
    }
  })

  it('yields what a truncated stream holds, and fails on bytes that are not deflate', async () => {
    const raw = zlib.deflateRawSync(TEXT)
    const part = await decodeAll(createDecoder('deflate')!, [raw.subarray(0, raw.length >> 1)])
    expect(part.length).toBeGreaterThan(0)
    expect(TEXT.subarray(0, part.length)).toEqual(part)
    await expect(
      decodeAll(createDecoder('deflate')!, [Buffer.from('\xff\xff not deflate at all', 'latin1')]),
    ).rejects.toThrow()
  })

  it('ends a body of no bytes, or of one', async () => {
    expect(await decodeAll(createDecoder('deflate')!, [])).toEqual(Buffer.alloc(0))
    expect(await decodeAll(createDecoder('deflate')!, [Buffer.of(0x03)])).toEqual(Buffer.alloc(0))
  })

  it('decodes a whole body of either kind', () => {
    expect(inflateSync(zlib.deflateSync(TEXT))).toEqual(TEXT)
    expect(inflateSync(zlib.deflateRawSync(TEXT))).toEqual(TEXT)
    expect(() => inflateSync(Buffer.from('not deflate'))).toThrow()
  })
})

describe('readableAcceptEncoding', () => {
  it('leaves a header that names only codings usagewire decodes', () => {
    expect(readableAcceptEncoding('gzip, deflate, br')).toBeUndefined()
    expect(readableAcceptEncoding('x-gzip;q=0.5, identity')).toBeUndefined()
    expect(readableAcceptEncoding('')).toBeUndefined()
  })

  it('drops zstd, keeping the others in order with their weights', () => {
    expect(readableAcceptEncoding('gzip, deflate, br, zstd', NODE20)).toBe('gzip, deflate, br')
    expect(readableAcceptEncoding('zstd;q=1.0, br;q=0.9, GZIP ; q=0.5', NODE20)).toBe('br;q=0.9, GZIP ; q=0.5')
  })

  it('drops `*`, which would let the provider pick any coding', () => {
    expect(readableAcceptEncoding('gzip, *;q=0.1')).toBe('gzip')
  })

  it('asks for identity when no coding it decodes is left', () => {
    expect(readableAcceptEncoding('zstd', NODE20)).toBe('identity')
    expect(readableAcceptEncoding('zstd, compress, *', NODE20)).toBe('identity')
  })

  it('keeps zstd where the runtime decodes it, and drops it where it does not (Node 20)', () => {
    expect(NODE_DECODERS.includes('zstd')).toBe(DECODES_ZSTD)
    expect(readableAcceptEncoding('gzip, deflate, br, zstd')).toBe(DECODES_ZSTD ? undefined : 'gzip, deflate, br')
  })

  it('asks for identity when what is left refuses everything (q=0)', () => {
    expect(readableAcceptEncoding('identity;q=0, zstd', NODE20)).toBe('identity')
    expect(readableAcceptEncoding('gzip; q=0.000, zstd', NODE20)).toBe('identity')
    expect(readableAcceptEncoding('gzip;q=0, br;q=0.5, zstd', NODE20)).toBe('gzip;q=0, br;q=0.5')
  })

  it('takes the decoders it is given', () => {
    expect(readableAcceptEncoding('gzip, zstd', ['gzip', 'zstd'])).toBeUndefined()
    expect(readableAcceptEncoding('gzip, br', ['gzip'])).toBe('gzip')
  })
})

describe('narrowAcceptEncoding', () => {
  it('narrows the request header in place', () => {
    const req = { headers: { 'accept-encoding': 'gzip, deflate, br, compress' }, url: '/v1/messages' }
    narrowAcceptEncoding(req)
    expect(req.headers['accept-encoding']).toBe('gzip, deflate, br')
  })

  it('leaves a request without the header, or with nothing to drop, as it came', () => {
    const bare: { headers: Record<string, string> } = { headers: {} }
    narrowAcceptEncoding(bare)
    expect(bare.headers).toEqual({})
    const plain = { headers: { 'accept-encoding': 'gzip;q=1.0, br' } }
    narrowAcceptEncoding(plain)
    expect(plain.headers['accept-encoding']).toBe('gzip;q=1.0, br')
    expect(() => narrowAcceptEncoding({} as { headers: Record<string, string> })).not.toThrow()
  })

  it('leaves a header AWS SigV4 signed', () => {
    const authorization =
      'AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/bedrock/aws4_request, ' +
      'SignedHeaders=accept-encoding;content-type;host;x-amz-date, Signature=abc'
    const req = { headers: { authorization, 'accept-encoding': 'gzip, compress' } }
    narrowAcceptEncoding(req)
    expect(req.headers['accept-encoding']).toBe('gzip, compress')
  })

  it('narrows a SigV4 request that did not sign the header', () => {
    const authorization =
      'AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/bedrock/aws4_request, ' +
      'SignedHeaders=content-type;host;x-amz-date, Signature=abc'
    const req = { headers: { authorization, 'accept-encoding': 'gzip, compress' } }
    narrowAcceptEncoding(req)
    expect(req.headers['accept-encoding']).toBe('gzip')
  })

  it('leaves a header a presigned URL or an HTTP Message Signature covers', () => {
    const presigned = {
      headers: { 'accept-encoding': 'compress' },
      url: '/model/m/invoke?X-Amz-SignedHeaders=accept-encoding%3Bhost&X-Amz-Signature=abc',
    }
    narrowAcceptEncoding(presigned)
    expect(presigned.headers['accept-encoding']).toBe('compress')
    const signed = {
      headers: { 'accept-encoding': 'br, compress', 'signature-input': 'sig1=("@method" "accept-encoding");created=1' },
    }
    narrowAcceptEncoding(signed)
    expect(signed.headers['accept-encoding']).toBe('br, compress')
  })

  it('joins a header given as an array', () => {
    const req = { headers: { 'accept-encoding': ['gzip', 'compress'] as unknown as string } }
    narrowAcceptEncoding(req)
    expect(req.headers['accept-encoding']).toBe('gzip')
  })
})

describe.runIf(DECODES_ZSTD)('zstd, where the runtime decodes it', () => {
  it('decodes a stream in one piece or a byte at a time, and a whole body', async () => {
    const encoded = zstdCompressSync!(TEXT)
    expect(await decodeAll(createDecoder('zstd')!, [encoded])).toEqual(TEXT)
    expect(await decodeAll(createDecoder('zstd')!, everyByte(encoded))).toEqual(TEXT)
    expect(zstdDecompressSync(encoded)).toEqual(TEXT)
  })

  it('yields each event as soon as its compressed bytes arrived, from a compressor that flushes per event', async () => {
    const compressor = (zlib as unknown as { createZstdCompress: () => zlib.Gzip }).createZstdCompress()
    const flushed: Buffer[] = []
    let pending: Buffer[] = []
    compressor.on('data', (data: Buffer) => pending.push(data))
    const events = ['event: a\ndata: {"n":1}\n\n', 'event: b\ndata: {"n":2}\n\n', 'event: c\ndata: {"n":3}\n\n']
    for (const event of events) {
      compressor.write(event)
      await new Promise<void>((resolve) => compressor.flush(1 /* ZSTD_e_flush */, () => resolve()))
      flushed.push(Buffer.concat(pending))
      pending = []
    }
    const decoder = createDecoder('zstd')!
    let out = ''
    decoder.on('data', (data: Buffer) => (out += data.toString()))
    for (let i = 0; i < events.length; i++) {
      await new Promise<void>((resolve) => decoder.write(flushed[i], () => resolve()))
      await new Promise((resolve) => setImmediate(resolve))
      expect(out).toBe(events.slice(0, i + 1).join(''))
    }
  })
})

describe.runIf(!DECODES_ZSTD)('zstd, where the runtime has no decoder (Node 20)', () => {
  it('is not decoded: the body passes untouched', () => {
    expect(createDecoder('zstd')).toBeUndefined()
    expect(() => zstdDecompressSync(Buffer.from('x'))).toThrow(/no zstd decoder/)
  })
})
