/**
 * Whole bodies and what surrounds them: non-streaming JSON (rewritten or not) and its Content-Length,
 * chunked and Content-Length upstreams, routes and bodies usagewire must leave alone, HEAD / 204 / 304,
 * upstream HTTP errors, and gzip / br / deflate upstreams.
 */
import http from 'node:http'
import zlib from 'node:zlib'
import { randomBytes } from 'node:crypto'
import { expect } from 'vitest'
import { ACCEPT_ALL, decodeBody, parseSse, rawRequest, sha256, type RawResponse } from '../client.js'
import {
  COMPLETE,
  expectBytes,
  expectHonestLength,
  expectNoOtherRecords,
  expectRecordAsOracle,
  oracle,
  post,
  type Rig,
  type Scenario,
} from '../rig.js'
import {
  ANTHROPIC_MODEL,
  anthropicMessage,
  chatCompletion,
  JSON_HEADERS,
  responsesBody,
  SSE_HEADERS,
  type Encoding,
} from '../upstream.js'
import {
  BARE_RESPONSES,
  TRANSLATED_CHAT,
  TRUE_ANTHROPIC,
  TRUE_ANTHROPIC_RECORD,
  TRUE_CHAT,
  TRUE_CHAT_RECORD,
  TRUE_RESPONSES,
  TRUE_RESPONSES_RECORD,
  ZEROING_ANTHROPIC,
} from './shapes.js'

export const BODIES: Scenario[] = [
  {
    name: 'JSON Anthropic: nothing to fix, so it leaves byte-for-byte with its Content-Length and ETag',
    async run(rig) {
      const url = await rig.gateway()
      const usage = {
        input_tokens: 1200,
        cache_creation_input_tokens: 300,
        cache_read_input_tokens: 5000,
        output_tokens: 42,
      }
      const body = JSON.stringify(anthropicMessage(usage), null, 1) // odd spacing: any re-serialization shows
      rig.upstream.reply = () => ({ headers: { ...JSON_HEADERS, etag: '"v1"' }, body })
      const id = rig.id()
      const res = await rawRequest(`${url}/v1/messages`, post(id))
      expect(res.status).toBe(200)
      expect(sha256(res.body)).toBe(sha256(body))
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(body)))
      expect(res.headers.etag).toBe('"v1"')
      const record = await rig.record(id)
      expect(record).toMatchObject({
        ...COMPLETE,
        dialect: 'anthropic-messages',
        model: ANTHROPIC_MODEL,
        streaming: false,
      })
      expect(record.usage).toEqual(TRUE_ANTHROPIC_RECORD)
      expect(record.corrections).toEqual([])
      expectRecordAsOracle(record, oracle(body, '/v1/messages', 'application/json').record)
    },
  },
  ...(
    [
      ['Chat', '/v1/chat/completions', () => chatCompletion(TRANSLATED_CHAT), TRUE_CHAT, TRUE_CHAT_RECORD],
      ['Responses', '/v1/responses', () => responsesBody(BARE_RESPONSES), TRUE_RESPONSES, TRUE_RESPONSES_RECORD],
    ] as const
  ).map(([dialect, path, body, wire, usage]): Scenario => ({
    name: `JSON ${dialect}: rewritten, with a Content-Length equal to the new length and no stale ETag`,
    async run(rig) {
      const url = await rig.gateway()
      const sent = JSON.stringify(body())
      rig.upstream.reply = () => ({ headers: { ...JSON_HEADERS, etag: '"v1"' }, body: sent })
      const id = rig.id()
      const res = await rawRequest(`${url}${path}`, post(id))
      expect(res.status).toBe(200)
      expect(res.headers['content-length']).toBe(String(res.body.length))
      expect(res.headers['transfer-encoding']).toBeUndefined()
      expect(res.headers.etag).toBeUndefined() // it tagged the upstream's body, not this one
      const expected = oracle(sent, path, 'application/json')
      expect(res.body.equals(Buffer.from(sent))).toBe(false)
      expectBytes(res.body, expected.output)
      expect(JSON.parse(res.body.toString('utf8')).usage).toMatchObject(wire)
      const record = await rig.record(id)
      expect(record).toMatchObject({ ...COMPLETE, streaming: false })
      expect(record.usage).toEqual(usage)
      expectRecordAsOracle(record, expected.record)
    },
  })),
  {
    name: 'JSON the upstream sent chunked (no Content-Length): rewritten, framed consistently',
    async run(rig) {
      const url = await rig.gateway()
      const sent = JSON.stringify(chatCompletion(TRANSLATED_CHAT))
      rig.upstream.reply = () => ({
        headers: JSON_HEADERS,
        chunks: [sent.slice(0, 57), sent.slice(57, 180), sent.slice(180)],
      })
      const id = rig.id()
      const res = await rawRequest(`${url}/v1/chat/completions`, post(id))
      expect(res.status).toBe(200)
      expectHonestLength(res)
      const expected = oracle(sent, '/v1/chat/completions', 'application/json')
      expectBytes(res.body, expected.output)
      expect(JSON.parse(res.body.toString('utf8')).usage).toMatchObject(TRUE_CHAT)
      expectRecordAsOracle(await rig.record(id), expected.record)
    },
  },
  {
    name: 'SSE the upstream sent with a Content-Length: rewritten (longer) and never cut to the stale length',
    async run(rig) {
      const url = await rig.gateway()
      const sent = ZEROING_ANTHROPIC().join('')
      rig.upstream.reply = () => ({ headers: SSE_HEADERS, body: sent }) // a `body` reply carries a Content-Length
      const id = rig.id()
      const res = await rawRequest(`${url}/v1/messages`, post(id, { stream: true }))
      expect(res.status).toBe(200)
      expectHonestLength(res)
      const expected = oracle(sent, '/v1/messages', 'text/event-stream')
      expect(expected.output.length).toBeGreaterThan(Buffer.byteLength(sent)) // the delta grew
      expectBytes(res.body, expected.output)
      const record = await rig.record(id)
      expect(record).toMatchObject({ ...COMPLETE, streaming: true })
      expect(record.usage).toEqual(TRUE_ANTHROPIC_RECORD)
      expectRecordAsOracle(record, expected.record)
    },
  },
  {
    name: 'non-LLM routes pass byte-for-byte (sha256) both ways, with their lengths, and yield no record',
    async run(rig) {
      const url = await rig.gateway()
      const mark = rig.records.length
      const health = '{ "status" : "ok",\n  "uptime": 12 }'
      const upload = randomBytes(256 * 1024)
      const download = randomBytes(192 * 1024 + 7)
      // Looks like a usage event with zeros a rewriter would "fix": on this path it must not be touched.
      const events = ZEROING_ANTHROPIC()
      rig.upstream.reply = (req) => {
        if (req.url === '/health') return { headers: JSON_HEADERS, body: health }
        if (req.url === '/v1/files')
          return { status: 201, headers: { 'content-type': 'application/octet-stream' }, body: download }
        if (req.url === '/v1/events') return { headers: SSE_HEADERS, chunks: events }
        return { status: 404, body: 'not found' }
      }
      const healthId = rig.id()
      const h = await rawRequest(`${url}/health`, { headers: { 'x-request-id': healthId } })
      expect(h.status).toBe(200)
      expect(sha256(h.body)).toBe(sha256(health))
      expect(h.headers['content-length']).toBe(String(Buffer.byteLength(health)))

      const fileId = rig.id()
      const f = await rawRequest(`${url}/v1/files`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'x-request-id': fileId },
        body: upload,
      })
      expect(f.status).toBe(201)
      expect(sha256(rig.upstream.request(fileId)!.body)).toBe(sha256(upload)) // the request body intact on the way up
      expect(sha256(f.body)).toBe(sha256(download))
      expect(f.headers['content-length']).toBe(String(download.length))

      const sse = await rawRequest(`${url}/v1/events`, post(rig.id()))
      expect(sha256(sse.body)).toBe(sha256(events.join('')))

      await expectNoOtherRecords(rig, url, mark)
    },
  },
  {
    name: 'a binary body on an LLM route passes byte-for-byte; its record says passthrough',
    async run(rig) {
      const url = await rig.gateway()
      const binary = randomBytes(64 * 1024)
      rig.upstream.reply = () => ({
        headers: { 'content-type': 'application/octet-stream' },
        chunks: [binary.subarray(0, 1000), binary.subarray(1000)],
      })
      const id = rig.id()
      const res = await rawRequest(`${url}/v1/messages`, post(id))
      expect(res.status).toBe(200)
      expect(sha256(res.body)).toBe(sha256(binary))
      const record = await rig.record(id)
      expect(record).toMatchObject({ route: '/v1/messages', status: 'passthrough', corrections: [] })
      expect(record.passthrough?.reason).toMatch(/octet-stream/)
    },
  },
  {
    name: 'HEAD, 204 and 304 leave without a body on a kept-alive connection, and yield no record',
    async run(rig) {
      const url = await rig.gateway()
      const mark = rig.records.length
      // One connection for all: a body sent where none may go would break the next response's framing.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
      try {
        const json = JSON.stringify(chatCompletion({ prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 }))
        rig.upstream.reply = () => ({ headers: JSON_HEADERS, body: json })
        const head = await rawRequest(`${url}/v1/chat/completions`, {
          method: 'HEAD',
          headers: { 'x-request-id': rig.id() },
          agent,
        })
        expect(head.status).toBe(200)
        expect(head.body.length).toBe(0)
        expect(head.headers['content-length']).toBe(String(Buffer.byteLength(json))) // what a GET would send

        // Typed as JSON, as some upstreams send them: nothing to read all the same.
        rig.upstream.reply = () => ({ status: 204, headers: { ...JSON_HEADERS, 'x-upstream': 'yes' } })
        const empty = await rawRequest(`${url}/v1/messages`, { ...post(rig.id()), agent })
        expect(empty.status).toBe(204)
        expect(empty.body.length).toBe(0)
        expect(empty.headers['x-upstream']).toBe('yes')

        rig.upstream.reply = () => ({ status: 304, headers: { ...JSON_HEADERS, etag: '"v1"' } })
        const notModified = await rawRequest(`${url}/v1/chat/completions`, {
          headers: { 'if-none-match': '"v1"', 'x-request-id': rig.id() },
          agent,
        })
        expect(notModified.status).toBe(304)
        expect(notModified.body.length).toBe(0)
        expect(notModified.headers.etag).toBe('"v1"')

        await expectNoOtherRecords(rig, url, mark, agent)
      } finally {
        agent.destroy()
      }
    },
  },
]

// ---------------------------------------------------------------------------------------------------------
// Upstream errors

const ERRORS: Array<[string, number, string, Record<string, unknown>, string]> = [
  [
    'Anthropic 529',
    529,
    '/v1/messages',
    { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } },
    'overloaded_error',
  ],
  [
    'Anthropic 429',
    429,
    '/v1/messages',
    {
      type: 'error',
      error: { type: 'rate_limit_error', message: 'Number of request tokens has exceeded your per-minute rate limit' },
    },
    'rate_limit_error',
  ],
  [
    'Chat 400',
    400,
    '/v1/chat/completions',
    {
      error: {
        message: "Unsupported parameter: 'max_tokens'",
        type: 'invalid_request_error',
        param: 'max_tokens',
        code: 'unsupported_parameter',
      },
    },
    'invalid_request_error',
  ],
  [
    'Responses 500',
    500,
    '/v1/responses',
    {
      error: {
        message: 'The server had an error while processing your request.',
        type: 'server_error',
        param: null,
        code: null,
      },
    },
    'server_error',
  ],
]

export const UPSTREAM_ERRORS: Scenario[] = ERRORS.map(([label, status, path, json, type]) => ({
  name: `${label} JSON error: untouched (sha256, length, headers); record upstream_error`,
  async run(rig) {
    const url = await rig.gateway()
    const body = JSON.stringify(json, null, 2)
    rig.upstream.reply = () => ({ status, headers: { ...JSON_HEADERS, 'retry-after': '7' }, body })
    const id = rig.id()
    const res = await rawRequest(`${url}${path}`, post(id))
    expect(res.status).toBe(status)
    expect(sha256(res.body)).toBe(sha256(body))
    expect(res.headers['content-length']).toBe(String(Buffer.byteLength(body)))
    expect(res.headers['retry-after']).toBe('7')
    const record = await rig.record(id)
    expect(record).toMatchObject({
      route: path,
      status: 'upstream_error',
      httpStatus: status,
      error: type,
      corrections: [],
    })
    expect(record.usage).toEqual({ input: 0, cacheRead: 0, cacheWrite: 0, output: 0, reasoning: 0 })
    expectRecordAsOracle(record, oracle(body, path, 'application/json', { httpStatus: status }).record)
  },
}))

// ---------------------------------------------------------------------------------------------------------
// Compressed upstreams

const CODINGS: Scenario[] = (['gzip', 'br', 'deflate'] as const satisfies readonly Encoding[]).flatMap((encoding) => [
  {
    name: `${encoding} upstream, SSE flushed per event: valid bytes, the usage fixed inside`,
    async run(rig: Rig) {
      const url = await rig.gateway()
      const events = ZEROING_ANTHROPIC()
      rig.upstream.reply = () => ({ headers: SSE_HEADERS, encoding, chunks: events })
      const id = rig.id()
      const res = await rawRequest(`${url}/v1/messages`, post(id, { stream: true }, ACCEPT_ALL))
      expect(res.status).toBe(200)
      expectHonestLength(res)
      const expected = oracle(events.join(''), '/v1/messages', 'text/event-stream')
      expectBytes(decodeBody(res), expected.output, 'decoded body')
      const delta = parseSse(decodeBody(res).toString('utf8')).find((e) => e.name === 'message_delta')!
      expect(JSON.parse(delta.data).usage).toEqual(TRUE_ANTHROPIC)
      const record = await rig.record(id)
      expect(record).toMatchObject(COMPLETE)
      expect(record.passthrough).toBeUndefined()
      expect(record.usage).toEqual(TRUE_ANTHROPIC_RECORD)
      expectRecordAsOracle(record, expected.record)
    },
  },
  {
    name: `${encoding} upstream, JSON with a Content-Length: valid bytes, the usage fixed, the length true`,
    async run(rig: Rig) {
      const url = await rig.gateway()
      const sent = JSON.stringify(chatCompletion(TRANSLATED_CHAT))
      rig.upstream.reply = () => ({ headers: JSON_HEADERS, encoding, body: sent })
      const id = rig.id()
      const res = await rawRequest(`${url}/v1/chat/completions`, post(id, {}, ACCEPT_ALL))
      expect(res.status).toBe(200)
      expect(res.headers['content-length']).toBe(String(res.body.length))
      const expected = oracle(sent, '/v1/chat/completions', 'application/json')
      expectBytes(decodeBody(res), expected.output, 'decoded body')
      expect(JSON.parse(decodeBody(res).toString('utf8')).usage).toMatchObject(TRUE_CHAT)
      const record = await rig.record(id)
      expect(record.usage).toEqual(TRUE_CHAT_RECORD)
      expectRecordAsOracle(record, expected.record)
    },
  },
])

/** usagewire read the encoded stream: the decoded body is the oracle's, the record holds the true usage. */
async function expectReadAnthropic(rig: Rig, res: RawResponse, id: string, events: string[]): Promise<void> {
  const expected = oracle(events.join(''), '/v1/messages', 'text/event-stream')
  expectBytes(decodeBody(res), expected.output, 'decoded body')
  const record = await rig.record(id)
  expect(record).toMatchObject(COMPLETE)
  expect(record.passthrough).toBeUndefined()
  expect(record.usage).toEqual(TRUE_ANTHROPIC_RECORD)
}

/** usagewire read the encoded JSON: the body holds the true usage, its length is true, and so is the record. */
async function expectReadChat(rig: Rig, res: RawResponse, id: string): Promise<void> {
  expect(res.status).toBe(200)
  expect(res.headers['content-length']).toBe(String(res.body.length))
  expect(JSON.parse(decodeBody(res).toString('utf8')).usage).toMatchObject(TRUE_CHAT)
  const record = await rig.record(id)
  expect(record.passthrough).toBeUndefined()
  expect(record.usage).toEqual(TRUE_CHAT_RECORD)
}

/** Deflate as servers send it: raw (no zlib header), and zlib-wrapped with a 512-byte window (CMF 0x18, not 0x78). */
const DEFLATES = [
  { name: 'raw deflate', encode: (raw: Buffer) => zlib.deflateRawSync(raw) },
  { name: 'zlib deflate with a small window', encode: (raw: Buffer) => zlib.deflateSync(raw, { windowBits: 9 }) },
]

export const ENCODINGS: Scenario[] = [
  ...CODINGS,
  ...DEFLATES.flatMap(({ name, encode }): Scenario[] => [
    {
      name: `${name} upstream, SSE, its first byte alone: the usage fixed inside`,
      async run(rig: Rig) {
        const url = await rig.gateway()
        const events = ZEROING_ANTHROPIC()
        const encoded = encode(Buffer.from(events.join('')))
        rig.upstream.reply = () => ({
          headers: { ...SSE_HEADERS, 'content-encoding': 'deflate' },
          chunks: [encoded.subarray(0, 1), encoded.subarray(1, 40), encoded.subarray(40)],
        })
        const id = rig.id()
        const res = await rawRequest(`${url}/v1/messages`, post(id, { stream: true }, ACCEPT_ALL))
        expect(res.status).toBe(200)
        await expectReadAnthropic(rig, res, id, events)
      },
    },
    {
      name: `${name} upstream, JSON with a Content-Length: the usage fixed, the length true`,
      async run(rig: Rig) {
        const url = await rig.gateway()
        const sent = JSON.stringify(chatCompletion(TRANSLATED_CHAT))
        const body = encode(Buffer.from(sent))
        rig.upstream.reply = () => ({ headers: { ...JSON_HEADERS, 'content-encoding': 'deflate' }, body })
        const id = rig.id()
        const res = await rawRequest(`${url}/v1/chat/completions`, post(id, {}, ACCEPT_ALL))
        await expectReadChat(rig, res, id)
      },
    },
  ]),
  {
    name: 'a client that accepts zstd: the provider answers in a coding usagewire reads, and the usage is fixed',
    async run(rig: Rig) {
      const url = await rig.gateway()
      const events = ZEROING_ANTHROPIC()
      // A provider answers in any coding the request accepts. Node 20 has no zstd at all: a body it is
      // sent that way could not be read, so the request must not ask for one; where the runtime decodes
      // zstd, the request asks for it and the body is read.
      const zstdCompress = (zlib as unknown as { zstdCompressSync?: (raw: Buffer) => Buffer }).zstdCompressSync
      rig.upstream.reply = (req) =>
        String(req.headers['accept-encoding']).includes('zstd')
          ? {
              headers: { ...SSE_HEADERS, 'content-encoding': 'zstd' },
              chunks: [zstdCompress ? zstdCompress(Buffer.from(events.join(''))) : randomBytes(64)],
            }
          : { headers: SSE_HEADERS, encoding: 'gzip', chunks: events }
      const id = rig.id()
      const accepted = 'gzip, deflate, br, zstd'
      const res = await rawRequest(`${url}/v1/messages`, post(id, { stream: true }, { 'accept-encoding': accepted }))
      expect(res.status).toBe(200)
      expect(rig.upstream.request(id)!.headers['accept-encoding']).toBe(zstdCompress ? accepted : 'gzip, deflate, br')
      await expectReadAnthropic(rig, res, id, events)
    },
  },
  {
    name: 'a client that accepts zstd, JSON: the provider answers in a coding usagewire reads, the length true',
    async run(rig: Rig) {
      const url = await rig.gateway()
      const sent = JSON.stringify(chatCompletion(TRANSLATED_CHAT))
      const zstdCompress = (zlib as unknown as { zstdCompressSync?: (raw: Buffer) => Buffer }).zstdCompressSync
      rig.upstream.reply = (req) =>
        zstdCompress && String(req.headers['accept-encoding']).includes('zstd')
          ? { headers: { ...JSON_HEADERS, 'content-encoding': 'zstd' }, body: zstdCompress(Buffer.from(sent)) }
          : { headers: JSON_HEADERS, encoding: 'gzip', body: sent }
      const id = rig.id()
      const res = await rawRequest(`${url}/v1/chat/completions`, post(id, {}, { 'accept-encoding': 'zstd, gzip' }))
      await expectReadChat(rig, res, id)
    },
  },
]
