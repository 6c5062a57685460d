/**
 * How a response lives and ends through Express + usagewire + http-proxy-middleware: event-by-event
 * delivery (docs/peer-bugs.md row 49), client disconnects (row 43), a throwing onUsage, and `compression()`
 * in front (row 50).
 */
import http from 'node:http'
import zlib from 'node:zlib'
import compression from 'compression'
import express from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { usagewire, type UsageRecord } from '@usagewire/express'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  ANTHROPIC_MODEL,
  anthropicStream,
  chatStream,
  createGate,
  type Gate,
  parseSse,
  SSE_HEADERS,
  startGateway,
  startUpstream,
  useRig,
  waitFor,
  within,
  anthropicClient,
  anthropicRequest,
} from './helpers.js'

const streamBody = JSON.stringify({ ...anthropicRequest, stream: true })
const START_USAGE = {
  input_tokens: 1200,
  cache_creation_input_tokens: 300,
  cache_read_input_tokens: 5000,
  output_tokens: 1,
}
const FULL_DELTA = {
  input_tokens: 1200,
  cache_creation_input_tokens: 300,
  cache_read_input_tokens: 5000,
  output_tokens: 42,
}

/** Reads from `reader` until `done(text)` holds; returns the text read so far. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  done: (text: string) => boolean,
  sofar = '',
): Promise<string> {
  const decoder = new TextDecoder()
  let text = sofar
  while (!done(text)) {
    const { value, done: eof } = await reader.read()
    if (eof) throw new Error(`stream ended before the condition held; got: ${text}`)
    text += decoder.decode(value, { stream: true })
  }
  return text
}

/** Reads `reader` to its end; returns all the text, starting with `sofar`. */
async function readAll(reader: ReadableStreamDefaultReader<Uint8Array>, sofar = ''): Promise<string> {
  const decoder = new TextDecoder()
  let text = sofar
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return text + decoder.decode()
    text += decoder.decode(value, { stream: true })
  }
}

const gates: Gate[] = []
const gate = () => {
  const g = createGate()
  gates.push(g)
  return g
}
afterEach(() => {
  for (const g of gates.splice(0)) g.open() // never leave an upstream loop waiting
})

describe('streaming lifecycle', () => {
  const rig = useRig()

  it.each([
    [
      'Anthropic SSE',
      undefined,
      '/v1/messages',
      () => anthropicStream({ start: START_USAGE, delta: { output_tokens: 42 } }),
    ],
    [
      'Anthropic SSE, gzip',
      'gzip' as const,
      '/v1/messages',
      () => anthropicStream({ start: START_USAGE, delta: { output_tokens: 42 } }),
    ],
    [
      'chat SSE',
      undefined,
      '/v1/chat/completions',
      () => chatStream({ prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 }),
    ],
  ])(
    '%s passes event by event: the client reads the first event while the upstream still holds the rest',
    async (_, encoding, path, events) => {
      const release = gate()
      const chunks = events()
      rig.upstream.reply = () => ({ headers: SSE_HEADERS, encoding, chunks, holdBefore: 1, hold: release.promise })

      let reader!: ReadableStreamDefaultReader<Uint8Array>
      const firstEvent = async () => {
        const res = await fetch(`${rig.gateway.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: streamBody,
        })
        reader = res.body!.getReader()
        return readUntil(reader, (t) => t.includes('\n\n'))
      }
      // A gateway that buffers (head or body) never delivers this while the upstream waits: fail with a
      // message instead of hanging until the test timeout.
      const first = await within(
        firstEvent(),
        5_000,
        'the first event did not reach the client while the upstream held the rest of the stream (buffered?)',
      )
      expect(release.opened).toBe(false)
      expect(rig.upstream.progress).toMatchObject({ sent: 1, holding: true, ended: false })
      expect(first).toBe(chunks[0]) // and, having no usage to fix, it left byte-for-byte

      release.open()
      const all = await readAll(reader, first)
      expect(parseSse(all)).toHaveLength(chunks.length)
      const record = await rig.gateway.record()
      expect(record.status).toBe('complete')
      expect(record.final).toBe(true)
    },
  )

  /** The upstream sends message_start and three deltas, then holds the rest (the client goes away). */
  const replyHeldBeforeDelta = () => {
    const chunks = anthropicStream({ start: START_USAGE, delta: FULL_DELTA, texts: ['one', 'two', 'three'] })
    rig.upstream.reply = () => ({
      headers: SSE_HEADERS,
      chunks,
      holdBefore: chunks.findIndex((c) => c.startsWith('event: message_delta')),
      hold: gate().promise,
      keepOpen: true,
    })
  }

  it('client aborts mid-stream (fetch AbortController): a record with status aborted and the usage known so far', async () => {
    replyHeldBeforeDelta()

    const controller = new AbortController()
    const res = await fetch(`${rig.gateway.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: streamBody,
      signal: controller.signal,
    })
    const reader = res.body!.getReader()
    await readUntil(reader, (t) => (t.match(/event: content_block_delta/g) ?? []).length === 3)
    expect(rig.upstream.progress.holding).toBe(true)
    controller.abort()

    const record = await rig.gateway.record()
    expect(record).toMatchObject({
      route: '/v1/messages',
      status: 'aborted',
      httpStatus: 200,
      dialect: 'anthropic-messages',
      model: ANTHROPIC_MODEL,
      final: false,
    })
    // What message_start said: input and cache exact, output partial.
    expect(record.usage).toEqual({ input: 1200, cacheRead: 5000, cacheWrite: 300, output: 1, reasoning: 0 })
    expect(record.sources.input).toBe('message_start.message.usage.input_tokens')
    expect(record.timing.firstByteMs).not.toBeNull()
    expect(rig.gateway.records).toHaveLength(1)
  })

  it('client aborts mid-stream (Anthropic SDK stream.abort()): a record with status aborted', async () => {
    replyHeldBeforeDelta()

    const stream = anthropicClient(rig.gateway.url).messages.stream(anthropicRequest)
    let texts = 0
    stream.on('text', () => {
      if (++texts === 2) stream.abort()
    })
    await expect(stream.finalMessage()).rejects.toThrow()

    const record = await rig.gateway.record()
    expect(record.status).toBe('aborted')
    expect(record.final).toBe(false)
    expect(record.usage).toMatchObject({ input: 1200, cacheRead: 5000, cacheWrite: 300 })
  })
})

describe('onUsage', () => {
  it('throwing in onUsage does not break the response; the error goes to the logger', async () => {
    const upstream = await startUpstream()
    const warn = vi.fn()
    const seen: UsageRecord[] = []
    const gateway = await startGateway(upstream.url, {
      logger: { warn },
      onUsage: (record) => {
        seen.push(record)
        throw new Error('sink down')
      },
    })
    try {
      upstream.reply = () => ({
        headers: SSE_HEADERS,
        chunks: anthropicStream({
          start: START_USAGE,
          delta: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 42 },
        }),
      })
      const client = anthropicClient(gateway.url)
      for (let i = 1; i <= 2; i++) {
        const message = await client.messages.stream(anthropicRequest).finalMessage()
        expect(message.usage).toMatchObject(FULL_DELTA)
        await waitFor(() => seen.length === i, `record #${i}`)
        await waitFor(() => warn.mock.calls.length === i, `warning #${i}`)
      }
      expect(String(warn.mock.calls[0]![0])).toMatch(/sink onUsage failed: sink down/)
      expect(seen.map((r) => r.status)).toEqual(['complete', 'complete'])
    } finally {
      await gateway.close()
      await upstream.close()
    }
  })
})

// docs/peer-bugs.md row 50: Express `compression()` buffers SSE in its zlib window unless flushed per event.
it('behind compression(), SSE still leaves event by event (usagewire flushes per event)', async () => {
  const upstream = await startUpstream()
  const app = express()
  app.use(compression())
  app.use(usagewire({}))
  app.use(createProxyMiddleware({ target: upstream.url }))
  const server = http.createServer(app)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  const release = gate()
  try {
    upstream.reply = () => ({
      headers: SSE_HEADERS,
      chunks: anthropicStream({ start: START_USAGE, delta: { output_tokens: 42 } }),
      holdBefore: 1,
      hold: release.promise,
    })
    const decoded = await within(
      new Promise<string>((resolve, reject) => {
        const req = http.request(
          { host: '127.0.0.1', port, path: '/v1/messages', method: 'POST', headers: { 'accept-encoding': 'gzip' } },
          (res) => {
            expect(res.headers['content-encoding']).toBe('gzip')
            let text = ''
            const gunzip = zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH })
            res.pipe(gunzip)
            gunzip.on('data', (d: Buffer) => {
              text += d.toString('utf8')
              if (text.includes('\n\n')) resolve(text)
            })
            gunzip.on('error', reject)
          },
        )
        req.on('error', reject)
        req.end(streamBody)
      }),
      5_000,
      'compression() held the first event while the upstream held the rest of the stream',
    )
    expect(parseSse(decoded)[0]!.name).toBe('message_start')
    expect(upstream.progress.holding).toBe(true)
  } finally {
    release.open()
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await upstream.close()
  }
})

it('with compression() mounted after usagewire, the client still gets a decodable body with fixed usage', async () => {
  const upstream = await startUpstream()
  const records: UsageRecord[] = []
  const app = express()
  app.use(usagewire({ onUsage: (r) => records.push(r) }))
  app.use(compression())
  app.use(createProxyMiddleware({ target: upstream.url }))
  const server = http.createServer(app)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  try {
    upstream.reply = () => ({
      headers: SSE_HEADERS,
      chunks: anthropicStream({ start: START_USAGE, delta: { output_tokens: 42 } }),
    })
    const res = await fetch(`http://127.0.0.1:${port}/v1/messages`, {
      method: 'POST',
      headers: { 'accept-encoding': 'gzip' },
      body: streamBody,
    })
    const events = parseSse(await res.text())
    const delta = JSON.parse(events.find((e) => e.name === 'message_delta')!.data)
    expect(delta.usage).toMatchObject({ input_tokens: 1200, cache_read_input_tokens: 5000, output_tokens: 42 })
    const record = await waitFor(() => records[0], 'record')
    expect(record.usage).toMatchObject({ input: 1200, cacheRead: 5000, cacheWrite: 300, output: 42 })
  } finally {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await upstream.close()
  }
})
