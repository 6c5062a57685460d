/**
 * usagewire with @fastify/compress (9 on Fastify 5, 7 on Fastify 4) in front of @fastify/http-proxy.
 * @fastify/compress adds its onSend hook to each route, after the instance's hooks, so usagewire always
 * reads the body before it is compressed (docs/transport.md#event-by-event-delivery). SSE still leaves
 * event by event, whether @fastify/compress leaves it alone (its default) or compresses it with a flush
 * after every write: the upstream here sends each event only once the client has received the one
 * before, so a gateway that held events back would never finish.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import zlib from 'node:zlib'
import type { UsageRecord } from '@usagewire/fastify'
import { afterEach, describe, expect, it } from 'vitest'
import {
  anthropicStream,
  chatCompletion,
  createGate,
  type Gate,
  parseSse,
  rawRequest,
  waitFor,
  within,
} from '../express/helpers.js'
import { COMPRESS_SSE, type FastifyMajor, startFastifyGateway } from '../matrix/drivers/fastify.js'
import type { Gateway } from '../matrix/driver.js'

const START = { input_tokens: 2048, cache_creation_input_tokens: 287, cache_read_input_tokens: 30433, output_tokens: 1 }
const ZEROS = { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 512 }
const EVENTS = anthropicStream({ start: START, delta: ZEROS })

/** One line per step, in the order the steps happened on either side. */
type Log = string[]

/**
 * An upstream that answers SSE in lockstep with the client: it writes event i, then waits until the
 * client has said it received event i before it writes the next. Anything else gets a gzip JSON body.
 */
async function lockstepUpstream(log: Log, received: Gate[]) {
  const server = http.createServer(async (req, res) => {
    for await (const _ of req); // the request body, drained
    if (req.url !== '/v1/messages') {
      const body = zlib.gzipSync(
        JSON.stringify(
          chatCompletion(
            { prompt_tokens: 200, completion_tokens: 50, total_tokens: 5250, cache_read_input_tokens: 5000 },
            'x'.repeat(4096), // over @fastify/compress's threshold however it was sent
          ),
        ),
      )
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'content-length': body.length,
      })
      res.end(body)
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' })
    const gzip = zlib.createGzip()
    gzip.pipe(res)
    for (const [i, event] of EVENTS.entries()) {
      if (res.destroyed) return
      log.push(`sent ${i}`)
      gzip.write(event)
      await new Promise<void>((resolve) => gzip.flush(() => resolve()))
      await received[i]!.promise
    }
    gzip.end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** @fastify/compress as installed (SSE left alone), and told to compress SSE too (flushing every write). */
const SETUPS = [
  ['defaults', {}, null],
  ['SSE compressed', COMPRESS_SSE, 'br'],
] as const

describe.each(
  ([5, 4] as FastifyMajor[]).flatMap((major) =>
    SETUPS.map(([name, options, sse]) => [major, name, options, sse] as const),
  ),
)('Fastify %d with @fastify/compress (%s)', (major, _, compressOptions, sseEncoding) => {
  let gateway: Gateway | undefined
  let upstream: { url: string; close(): Promise<void> } | undefined
  let received: Gate[] = []

  afterEach(async () => {
    for (const gate of received) gate.open() // never leave the upstream waiting
    await gateway?.close()
    await upstream?.close()
    gateway = upstream = undefined
  })

  async function start(log: Log, records: UsageRecord[]) {
    received = EVENTS.map(() => createGate())
    upstream = await lockstepUpstream(log, received)
    gateway = await startFastifyGateway({
      major,
      proxy: 'http-proxy',
      compress: true,
      compressOptions,
      upstream: upstream.url,
      usagewire: { onUsage: (record) => void records.push(record) },
    })
    return gateway.url
  }

  it('a gzip SSE stream is decoded, fixed, and reaches the client event by event', async () => {
    // Each event is written by the upstream only once the client has the one before: a gateway (or a
    // compressor) that held events back would never get to the end.
    const log: Log = []
    const records: UsageRecord[] = []
    const url = await start(log, records)
    let encoding: string | null = null
    const decoder = new TextDecoder()
    let text = ''
    const readEvents = async () => {
      const res = await fetch(`${url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip, br' },
        body: JSON.stringify({ model: 'claude-x', stream: true }),
      })
      encoding = res.headers.get('content-encoding')
      const reader = res.body!.getReader()
      for (let i = 0; i < EVENTS.length; i++) {
        while (parseSse(text).length <= i || !text.endsWith('\n\n')) {
          const { value, done } = await reader.read()
          if (done) throw new Error(`the stream ended after ${i} events`)
          text += decoder.decode(value, { stream: true })
        }
        log.push(`got ${i}`)
        received[i]!.open()
      }
    }
    await within(readEvents(), 5_000, 'events were held back on the way to the client')
    expect(encoding).toBe(sseEncoding)
    expect(log).toEqual(EVENTS.flatMap((_, i) => [`sent ${i}`, `got ${i}`]))
    const delta = parseSse(text).find((event) => event.name === 'message_delta')!
    expect(JSON.parse(delta.data).usage).toEqual({ ...START, output_tokens: 512 })
    expect(await waitFor(() => records[0], 'the usage record')).toMatchObject({ status: 'complete', final: true })
  })

  it('a JSON body is rewritten first, then compressed for the client', async () => {
    const records: UsageRecord[] = []
    const url = await start([], records)
    const raw = await rawRequest(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'accept-encoding': 'br' },
      body: JSON.stringify({ model: 'gpt-4o' }),
    })
    expect(raw.headers['content-encoding']).toBe('br')
    const json = JSON.parse(zlib.brotliDecompressSync(raw.body).toString())
    expect(json.usage).toMatchObject({ prompt_tokens: 5200, prompt_tokens_details: { cached_tokens: 5000 } })
    expect(await waitFor(() => records[0], 'the usage record')).toMatchObject({
      status: 'complete',
      usage: { input: 200, cacheRead: 5000 },
    })
  })
})
