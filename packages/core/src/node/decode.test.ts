import { describe, expect, it } from 'vitest'
import { narrowAcceptEncoding, readableAcceptEncoding } from './decode.js'

describe('readableAcceptEncoding', () => {
  it('leaves a header that names only codings usagewire decodes', () => {
    expect(readableAcceptEncoding('gzip, deflate, br')).toBeUndefined()
    expect(readableAcceptEncoding('x-gzip;q=0.5, identity')).toBeUndefined()
    expect(readableAcceptEncoding('')).toBeUndefined()
  })

  it('drops zstd, keeping the others in order with their weights', () => {
    expect(readableAcceptEncoding('gzip, deflate, br, zstd')).toBe('gzip, deflate, br')
    expect(readableAcceptEncoding('zstd;q=1.0, br;q=0.9, GZIP ; q=0.5')).toBe('br;q=0.9, GZIP ; q=0.5')
  })

  it('drops `*`, which would let the provider pick any coding', () => {
    expect(readableAcceptEncoding('gzip, *;q=0.1')).toBe('gzip')
  })

  it('asks for identity when no coding it decodes is left', () => {
    expect(readableAcceptEncoding('zstd')).toBe('identity')
    expect(readableAcceptEncoding('zstd, compress, *')).toBe('identity')
  })

  it('takes the decoders it is given', () => {
    expect(readableAcceptEncoding('gzip, zstd', ['gzip', 'zstd'])).toBeUndefined()
    expect(readableAcceptEncoding('gzip, br', ['gzip'])).toBe('gzip')
  })
})

describe('narrowAcceptEncoding', () => {
  it('narrows the request header in place', () => {
    const req = { headers: { 'accept-encoding': 'gzip, deflate, br, zstd' }, url: '/v1/messages' }
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
    const req = { headers: { authorization, 'accept-encoding': 'gzip, zstd' } }
    narrowAcceptEncoding(req)
    expect(req.headers['accept-encoding']).toBe('gzip, zstd')
  })

  it('narrows a SigV4 request that did not sign the header', () => {
    const authorization =
      'AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/bedrock/aws4_request, ' +
      'SignedHeaders=content-type;host;x-amz-date, Signature=abc'
    const req = { headers: { authorization, 'accept-encoding': 'gzip, zstd' } }
    narrowAcceptEncoding(req)
    expect(req.headers['accept-encoding']).toBe('gzip')
  })

  it('leaves a header a presigned URL or an HTTP Message Signature covers', () => {
    const presigned = {
      headers: { 'accept-encoding': 'zstd' },
      url: '/model/m/invoke?X-Amz-SignedHeaders=accept-encoding%3Bhost&X-Amz-Signature=abc',
    }
    narrowAcceptEncoding(presigned)
    expect(presigned.headers['accept-encoding']).toBe('zstd')
    const signed = {
      headers: { 'accept-encoding': 'br, zstd', 'signature-input': 'sig1=("@method" "accept-encoding");created=1' },
    }
    narrowAcceptEncoding(signed)
    expect(signed.headers['accept-encoding']).toBe('br, zstd')
  })

  it('joins a header given as an array', () => {
    const req = { headers: { 'accept-encoding': ['gzip', 'zstd'] as unknown as string } }
    narrowAcceptEncoding(req)
    expect(req.headers['accept-encoding']).toBe('gzip')
  })
})
