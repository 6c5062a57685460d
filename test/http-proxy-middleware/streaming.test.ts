/**
 * Streaming through `createProxyMiddleware({ plugins: [usagewire()] })`: each SSE event reaches the client
 * while the upstream still holds the next one (docs/peer-bugs.md row 49), gzip upstreams are read and
 * leave identity-encoded (rows 47, 48), and `compression()` in front still sends event by event (row 50).
 */
import http, { type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import zlib from 'node:zlib'
import compression from 'compression'
import connect from 'connect'
import { createProxyMiddleware as hpm3 } from 'http-proxy-middleware'
import { createProxyMiddleware as hpm4 } from 'http-proxy-middleware4'
import { usagewire, type UsageRecord } from '@usagewire/http-proxy-middleware'
import { afterEach, describe, expect, it } from 'vitest'
import {
  anthropicStream,
  chatCompletion,
  createGate,
  type Gate,
  JSON_HEADERS,
  parseSse,
  rawRequest,
  SSE_HEADERS,
  waitFor,
  within,
} from '../express/helpers.js'

type CreateProxy = typeof hpm3
const MAJORS: Array<[string, CreateProxy]> = [
  ['3', hpm3],
  ['4', hpm4 as unknown as CreateProxy],
]

const EVENTS = anthropicStream({
  start: { input_tokens: 1200, cache_read_input_tokens: 5000, output_tokens: 1 },
  delta: { input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 42 },
  texts: ['one', 'two', 'three'],
})
const DELTA = EVENTS.findIndex((e) => e.startsWith('event: message_delta'))
const TRUE_DELTA = { input_tokens: 1200, cache_read_input_tokens: 5000, output_tokens: 42 }
const streamRequest = JSON.stringify({ model: 'claude-sonnet-4-6', stream: true, max_tokens: 8, messages: [] })

const servers: Server[] = []
const gates: Gate[] = []
afterEach(async () => {
  for (const gate of gates.splice(0)) gate.open() // never leave an upstream loop waiting
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  }
})

async function listen(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  servers.push(server)
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** An upstream that writes event `i` only once gate `i` is open (gzip flushed per event when asked). */
async function gatedUpstream(events: readonly string[], encoding?: 'gzip') {
  const opened = events.map(() => createGate())
  gates.push(...opened)
  let written = 0
  const url = await listen(async (req, res) => {
    for await (const _ of req); // the request body, read to its end
    res.writeHead(200, { ...SSE_HEADERS, ...(encoding && { 'content-encoding': encoding }) })
    res.flushHeaders()
    const gzip = encoding ? zlib.createGzip() : undefined
    gzip?.pipe(res)
    for (let i = 0; i < events.length; i++) {
      await opened[i]!.promise
      if (res.destroyed) return
      if (gzip) {
        gzip.write(events[i]!)
        await new Promise<void>((r) => gzip.flush(() => r()))
      } else res.write(events[i]!)
      written = i + 1
    }
    ;(gzip ?? res).end()
  })
  return { url, gates: opened, written: () => written }
}

interface Started {
  url: string
  records: UsageRecord[]
}

async function gateway(
  create: CreateProxy,
  target: string,
  kind: 'node:http' | 'connect+compression',
): Promise<Started> {
  const records: UsageRecord[] = []
  const proxy = create({ target, plugins: [usagewire({ onUsage: (r) => records.push(r) })] })
  if (kind === 'node:http') return { url: await listen((req, res) => void proxy(req, res)), records }
  const app = connect()
  app.use(compression() as unknown as connect.NextHandleFunction) // typed for Express, written for connect
  app.use(proxy)
  return { url: await listen(app), records }
}

/** Reads a fetch body until `n` whole events have arrived; returns all the text so far. */
async function untilEvents(reader: ReadableStreamDefaultReader<Uint8Array>, n: number, sofar: string) {
  const decoder = new TextDecoder()
  let text = sofar
  while (text.split('\n\n').length - 1 < n) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`the body ended after ${text.split('\n\n').length - 1} events`)
    text += decoder.decode(value, { stream: true })
  }
  return text
}

describe.each(MAJORS)('http-proxy-middleware %s', (_, create) => {
  it.each([
    ['node:http', undefined],
    ['node:http', 'gzip'],
    ['connect+compression', undefined],
  ] as const)(
    'on %s, upstream encoding %s: every event reaches the client before the upstream writes the next',
    async (kind, encoding) => {
      const upstream = await gatedUpstream(EVENTS, encoding)
      const gw = await gateway(create, upstream.url, kind)
      upstream.gates[0]!.open()
      const res = await within(
        fetch(`${gw.url}/v1/messages`, {
          method: 'POST',
          headers: { ...JSON_HEADERS, 'accept-encoding': 'gzip' },
          body: streamRequest,
        }),
        5_000,
        'the response head did not reach the client while the upstream held the second event (buffered?)',
      )
      expect(res.headers.get('content-encoding')).toBe(kind === 'connect+compression' ? 'gzip' : null)
      const reader = res.body!.getReader()
      let text = ''
      for (let i = 0; i < EVENTS.length; i++) {
        text = await within(
          untilEvents(reader, i + 1, text),
          5_000,
          `event ${i} did not reach the client while the upstream held the next (buffered?)`,
        )
        // Arrived while the upstream had written only this far: nothing downstream waited for more.
        expect(upstream.written()).toBe(i + 1)
        upstream.gates[i + 1]?.open()
      }
      const events = text.split(/(?<=\n\n)/)
      expect(events).toHaveLength(EVENTS.length)
      // Untouched events leave byte for byte; only the usage of message_delta changes.
      events.forEach((event, i) => i !== DELTA && expect(event).toBe(EVENTS[i]))
      expect(JSON.parse(parseSse(events[DELTA]!)[0]!.data).usage).toEqual(TRUE_DELTA)
      const record = await waitFor(() => gw.records[0], 'record')
      expect(record).toMatchObject({ status: 'complete', final: true, usage: { input: 1200, output: 42 } })
    },
  )

  it('a gzip JSON body is decoded, fixed, and sent identity-encoded with its new length', async () => {
    const body = zlib.gzipSync(
      JSON.stringify(chatCompletion({ prompt_tokens: 80, completion_tokens: 20, cache_read_input_tokens: 1000 })),
    )
    const target = await listen((req, res) => {
      req.resume()
      res.writeHead(200, { ...JSON_HEADERS, 'content-encoding': 'gzip', 'content-length': body.length })
      res.end(body)
    })
    const gw = await gateway(create, target, 'node:http')
    const res = await rawRequest(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...JSON_HEADERS, 'accept-encoding': 'gzip' },
      body: '{}',
    })
    expect(res.headers['content-encoding']).toBeUndefined()
    expect(Number(res.headers['content-length'])).toBe(res.body.length)
    expect(JSON.parse(res.body.toString()).usage).toMatchObject({
      prompt_tokens: 1080,
      total_tokens: 1100,
      prompt_tokens_details: { cached_tokens: 1000 },
    })
    expect(await waitFor(() => gw.records[0], 'record')).toMatchObject({
      status: 'complete',
      usage: { cacheRead: 1000 },
    })
  })

  it('an encoding usagewire does not decode passes untouched, with a passthrough record', async () => {
    const body = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]) // the start of a zstd frame: bytes, not text
    const target = await listen((req, res) => {
      req.resume()
      res.writeHead(200, { ...SSE_HEADERS, 'content-encoding': 'zstd', 'content-length': body.length })
      res.end(body)
    })
    const gw = await gateway(create, target, 'node:http')
    const res = await rawRequest(`${gw.url}/v1/messages`, { method: 'POST', headers: JSON_HEADERS, body: '{}' })
    expect(res.body.equals(body)).toBe(true)
    expect(res.headers).toMatchObject({ 'content-encoding': 'zstd', 'content-length': String(body.length) })
    const record = await waitFor(() => gw.records[0], 'record')
    expect(record.status).toBe('passthrough')
    expect(record.passthrough?.reason).toMatch(/zstd/)
  })
})
