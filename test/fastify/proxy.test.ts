/**
 * Fastify gateways in front of a real upstream over HTTP: `fastify.register(usagewire)` before
 * @fastify/http-proxy, or before a route answered by @fastify/reply-from, on Fastify 5 and 4. Streams pass
 * event by event, whole bodies are decoded and rewritten, and a stream cut on either side still yields
 * exactly one record (docs/transport.md#aborts), with the upstream released when the client leaves.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { UsageRecord } from '@usagewire/fastify'
import {
  anthropicClient,
  anthropicRequest,
  anthropicStream,
  chatCompletion,
  createGate,
  type Gate,
  JSON_HEADERS,
  parseSse,
  rawRequest,
  SSE_HEADERS,
  startUpstream,
  type Upstream,
  waitFor,
  within,
} from '../express/helpers.js'
import { type FastifyMajor, type FastifyProxy, startFastifyGateway } from '../matrix/drivers/fastify.js'
import type { Gateway } from '../matrix/driver.js'

const START = { input_tokens: 2048, cache_creation_input_tokens: 287, cache_read_input_tokens: 30433, output_tokens: 1 }
const ZEROS = { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 512 }
const FIXED = { ...START, output_tokens: 512 }
const streamRequest = JSON.stringify({ ...anthropicRequest, stream: true })

const deltaUsage = (body: string): unknown =>
  JSON.parse(parseSse(body).find((event) => event.name === 'message_delta')!.data).usage

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

async function readAll(reader: ReadableStreamDefaultReader<Uint8Array>, sofar = ''): Promise<string> {
  const decoder = new TextDecoder()
  let text = sofar
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return text + decoder.decode()
    text += decoder.decode(value, { stream: true })
  }
}

const ROWS: Array<[string, FastifyMajor, FastifyProxy]> = [
  ['Fastify 5 + @fastify/http-proxy', 5, 'http-proxy'],
  ['Fastify 5 + @fastify/reply-from', 5, 'reply-from'],
  ['Fastify 4 + @fastify/http-proxy', 4, 'http-proxy'],
  ['Fastify 4 + @fastify/reply-from', 4, 'reply-from'],
]

describe.each(ROWS)('%s', (_, major, proxy) => {
  let upstream: Upstream
  let gateway: Gateway
  let records: UsageRecord[]
  const gates: Gate[] = []
  const gate = () => {
    const g = createGate()
    gates.push(g)
    return g
  }

  beforeEach(async () => {
    records = []
    upstream = await startUpstream()
    gateway = await startFastifyGateway({
      major,
      proxy,
      upstream: upstream.url,
      usagewire: { onUsage: (record) => void records.push(record) },
    })
  })
  afterEach(async () => {
    for (const g of gates.splice(0)) g.open() // never leave an upstream loop waiting
    await gateway.close()
    await upstream.close()
  })

  it('a stream passes event by event and its last usage block leaves complete', async () => {
    const release = gate()
    const chunks = anthropicStream({ start: START, delta: ZEROS })
    const atDelta = chunks.findIndex((chunk) => chunk.startsWith('event: message_delta'))
    upstream.reply = () => ({ headers: SSE_HEADERS, chunks, holdBefore: atDelta, hold: release.promise })

    const res = await fetch(`${gateway.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: streamRequest,
    })
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const reader = res.body!.getReader()
    // A gateway that buffers never delivers these while the upstream waits: fail readably, not by timeout.
    const first = await within(
      readUntil(reader, (text) => text.includes('content_block_stop')),
      5_000,
      'the events before message_delta did not reach the client while the upstream held the rest',
    )
    expect(upstream.progress).toMatchObject({ sent: atDelta, holding: true, ended: false })
    expect(first).toBe(chunks.slice(0, atDelta).join('')) // untouched events leave byte for byte

    release.open()
    const all = await readAll(reader, first)
    expect(deltaUsage(all)).toEqual(FIXED)
    const record = await waitFor(() => records[0], 'the usage record')
    expect(record).toMatchObject({
      status: 'complete',
      final: true,
      usage: { input: 2048, cacheRead: 30433, cacheWrite: 287, output: 512 },
    })
    expect(records).toHaveLength(1)
  })

  it('the Anthropic SDK reads the totals from the rewritten message_delta', async () => {
    upstream.reply = () => ({ headers: SSE_HEADERS, chunks: anthropicStream({ start: START, delta: ZEROS }) })
    const message = await anthropicClient(gateway.url).messages.stream(anthropicRequest).finalMessage()
    expect(message.usage).toMatchObject(FIXED)
  })

  it('a gzip JSON body is decoded, rewritten and sent identity-encoded with its new length', async () => {
    const body = JSON.stringify(
      chatCompletion({ prompt_tokens: 200, completion_tokens: 50, total_tokens: 5250, cache_read_input_tokens: 5000 }),
    )
    upstream.reply = () => ({ headers: JSON_HEADERS, body, encoding: 'gzip' })
    const raw = await rawRequest(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' },
      body: JSON.stringify({ model: 'gpt-4o' }),
    })
    expect(raw.headers['content-encoding']).toBeUndefined()
    // The proxy hands Fastify the upstream's stream; a JSON body is read whole before its first byte leaves.
    expect(raw.headers['content-length']).toBe(String(raw.body.length))
    expect(JSON.parse(raw.body.toString()).usage).toMatchObject({
      prompt_tokens: 5200,
      prompt_tokens_details: { cached_tokens: 5000 },
    })
    expect(await waitFor(() => records[0], 'the usage record')).toMatchObject({ status: 'complete' })
  })

  it('a client that goes away mid-stream: one aborted record, and the upstream is released', async () => {
    const chunks = anthropicStream({ start: START, delta: ZEROS, texts: ['one', 'two', 'three'] })
    const atDelta = chunks.findIndex((chunk) => chunk.startsWith('event: message_delta'))
    upstream.reply = () => ({ headers: SSE_HEADERS, chunks, holdBefore: atDelta, hold: gate().promise, keepOpen: true })

    const controller = new AbortController()
    const res = await fetch(`${gateway.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: streamRequest,
      signal: controller.signal,
    })
    await readUntil(res.body!.getReader(), (text) => text.includes('content_block_stop'))
    controller.abort()

    const record = await waitFor(() => records[0], 'the usage record')
    expect(record).toMatchObject({ status: 'aborted', final: false, usage: { input: 2048, cacheRead: 30433 } })
    // Without usagewire the framework destroys the upstream's stream; with it, the same must happen.
    await waitFor(() => upstream.progress.closedEarly, 'the upstream connection to close')
    expect(records).toHaveLength(1)
  })

  it('an upstream reset mid-stream: one incomplete record, and the client sees the cut', async () => {
    const chunks = anthropicStream({ start: START, delta: ZEROS })
    const atDelta = chunks.findIndex((chunk) => chunk.startsWith('event: message_delta'))
    upstream.reply = () => ({ headers: SSE_HEADERS, chunks: chunks.slice(0, atDelta), reset: true })

    const res = await fetch(`${gateway.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: streamRequest,
    })
    await expect(readAll(res.body!.getReader())).rejects.toThrow()
    const record = await waitFor(() => records[0], 'the usage record')
    expect(record).toMatchObject({ status: 'incomplete', final: false })
    expect(records).toHaveLength(1)
  })
})
