/**
 * Streams in `ctx.body`, on Koa 2 and Koa 3: an upstream response forwarded the way Koa gateways proxy
 * (the matrix's forwarding middleware), delivered event by event, decoded when the upstream compressed
 * it, and recorded as it ended: complete, aborted by the client, or cut on the gateway's side.
 */
import Anthropic from '@anthropic-ai/sdk'
import { Readable } from 'node:stream'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { forwardTo } from '../matrix/drivers/koa.js'
import {
  anthropicStream,
  chatCompletion,
  createGate,
  type Gate,
  JSON_HEADERS,
  SSE_HEADERS,
  startUpstream,
  type Upstream,
  waitFor,
  within,
} from '../matrix/upstream.js'
import { closeGateways, KOAS, parseSse, postJson, readAll, readUntil, startGateway, usageOf } from './helpers.js'

const START = { input_tokens: 1200, cache_read_input_tokens: 5000, output_tokens: 1 }
/** A translator's final delta: "unknown" written as 0. */
const ZERO_DELTA = { input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 42 }
const streamRequest = { model: 'claude-sonnet-4-6', max_tokens: 64, stream: true, messages: [] }

let upstream: Upstream
beforeAll(async () => {
  upstream = await startUpstream()
})
afterAll(() => upstream.close())

const gates: Gate[] = []
afterEach(async () => {
  for (const gate of gates.splice(0)) gate.open() // never leave an upstream loop waiting
  await closeGateways()
})
const gate = (): Gate => {
  const g = createGate()
  gates.push(g)
  return g
}

/** Opens a streaming request; returns its reader once the response head has arrived. */
async function open(url: string, id: string, signal?: AbortSignal) {
  const res = await fetch(`${url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id },
    body: JSON.stringify(streamRequest),
    signal: signal ?? null,
  })
  return { res, reader: res.body!.getReader() }
}

describe.each(KOAS)('%s: an upstream stream in ctx.body', (name, App) => {
  it('passes event by event: the client reads the first event while the upstream still holds the rest', async () => {
    const id = `${name}-events`
    const release = gate()
    const chunks = anthropicStream({ start: START, delta: ZERO_DELTA })
    upstream.reply = () => ({ headers: SSE_HEADERS, chunks, before: (i) => (i === 1 ? release.promise : undefined) })
    const gw = await startGateway(App, { after: [forwardTo(upstream.url)] })

    const { res, reader } = await open(gw.url, id)
    expect(res.headers.get('content-type')).toBe(SSE_HEADERS['content-type'])
    const first = await within(
      readUntil(reader, (text) => text.includes('\n\n')),
      5_000,
      'the first event did not reach the client while the upstream held the rest (buffered?)',
    )
    expect(first).toBe(chunks[0])
    expect(upstream.progress(id)).toMatchObject({ sent: 1, waitingBefore: 1, ended: false })

    release.open()
    const all = await readAll(reader, first)
    expect(parseSse(all)).toHaveLength(chunks.length)
    expect(usageOf(all, 'message_delta')).toMatchObject({ input_tokens: 1200, cache_read_input_tokens: 5000 })
    const record = await gw.record()
    expect(record).toMatchObject({
      status: 'complete',
      final: true,
      streaming: true,
      usage: { input: 1200, output: 42 },
    })
    expect(record.corrections).toHaveLength(2)
  })

  it('a gzip-encoded upstream stream leaves decoded and identity-encoded, rewritten', async () => {
    upstream.reply = () => ({
      headers: SSE_HEADERS,
      encoding: 'gzip',
      chunks: anthropicStream({ start: START, delta: ZERO_DELTA }),
    })
    const gw = await startGateway(App, { after: [forwardTo(upstream.url)] })
    const res = await postJson(`${gw.url}/v1/messages`, streamRequest, { 'accept-encoding': 'gzip' })
    expect(res.headers['content-encoding']).toBeUndefined()
    expect(res.headers['content-length']).toBeUndefined()
    const text = res.body.toString('utf8')
    expect(parseSse(text).at(-1)?.name).toBe('message_stop')
    expect(usageOf(text, 'message_delta')).toMatchObject({ input_tokens: 1200, output_tokens: 42 })
    expect((await gw.record()).status).toBe('complete')
  })

  it('a JSON upstream body keeps a true Content-Length: the new one when rewritten, its own when untouched', async () => {
    const rewritten = JSON.stringify(
      chatCompletion({ prompt_tokens: 100, completion_tokens: 5, total_tokens: 905, cache_read_input_tokens: 800 }),
    )
    const error = JSON.stringify({ type: 'error', error: { type: 'rate_limit_error', message: 'slow down' } })
    upstream.reply = (req) =>
      req.url === '/v1/messages'
        ? { status: 429, headers: { ...JSON_HEADERS, 'retry-after': '7' }, body: error }
        : { headers: JSON_HEADERS, body: rewritten }
    const gw = await startGateway(App, { after: [forwardTo(upstream.url)] })

    const fixed = await postJson(`${gw.url}/v1/chat/completions`, { model: 'gpt-4o', messages: [] })
    expect(fixed.headers['content-length']).toBe(String(fixed.body.length))
    expect(fixed.headers['transfer-encoding']).toBeUndefined()
    expect(fixed.body.length).toBeGreaterThan(Buffer.byteLength(rewritten))
    expect(JSON.parse(fixed.body.toString('utf8')).usage).toMatchObject({ prompt_tokens: 900, total_tokens: 905 })

    const limited = await postJson(`${gw.url}/v1/messages`, streamRequest)
    expect(limited.status).toBe(429)
    expect(limited.body.toString('utf8')).toBe(error)
    expect(limited.headers['content-length']).toBe(String(Buffer.byteLength(error)))
    expect(limited.headers['retry-after']).toBe('7')
    expect(await gw.record(2)).toMatchObject({ status: 'upstream_error', httpStatus: 429, error: 'rate_limit_error' })
  })

  it('a client that goes away mid-stream yields an aborted record, and the upstream is let go', async () => {
    const id = `${name}-abort`
    const chunks = anthropicStream({ start: START, delta: ZERO_DELTA })
    upstream.reply = () => ({ headers: SSE_HEADERS, chunks, before: (i) => (i === 2 ? gate().promise : undefined) })
    const gw = await startGateway(App, { after: [forwardTo(upstream.url)] })

    const abort = new AbortController()
    const { reader } = await open(gw.url, id, abort.signal)
    await readUntil(reader, (text) => text.includes('content_block_start'))
    abort.abort()

    const record = await gw.record()
    expect(record).toMatchObject({ status: 'aborted', final: false, usage: { input: 1200, cacheRead: 5000 } })
    expect(await waitFor(() => upstream.progress(id)?.closedEarly, 'the upstream to be let go')).toBe(true)
    expect(gw.records).toHaveLength(1)
  })

  it('a body stream that fails part-way (an upstream reset) yields an incomplete record saying why', async () => {
    const [start, ...rest] = anthropicStream({ start: START, delta: ZERO_DELTA })
    const gw = await startGateway(App, {
      after: [
        (ctx) => {
          const body = new Readable({ read() {} })
          body.push(start)
          body.push(rest[0])
          setImmediate(() => body.destroy(new Error('socket hang up')))
          ctx.type = 'text/event-stream'
          ctx.body = body
        },
      ],
    })
    const abort = new AbortController()
    const { reader } = await open(gw.url, `${name}-cut`, abort.signal)
    const record = await gw.record()
    expect(record).toMatchObject({ status: 'incomplete', final: false, usage: { input: 1200 } })
    expect(record.error).toContain('socket hang up')
    // Koa 3 ends the response with the error; Koa 2 leaves it open, with or without usagewire.
    abort.abort()
    await expect(readAll(reader)).rejects.toThrow()
    expect(gw.records).toHaveLength(1)
    // Reported as without usagewire, not again for the body usagewire hands Koa in its place: once by
    // Koa 2, twice by Koa 3 (its `pipeline` callback, then the response it ended with the error).
    expect(gw.errors).toHaveLength(name === 'Koa 2' ? 1 : 2)
    for (const error of gw.errors) expect(error).toMatchObject({ message: 'socket hang up' })
  })

  it('the Anthropic SDK reads the fixed totals from a stream the gateway forwards', async () => {
    upstream.reply = () => ({ headers: SSE_HEADERS, chunks: anthropicStream({ start: START, delta: ZERO_DELTA }) })
    const gw = await startGateway(App, { after: [forwardTo(upstream.url)] })
    const client = new Anthropic({ apiKey: 'x', baseURL: gw.url, maxRetries: 0 })
    const message = await client.messages
      .stream({ model: 'claude-sonnet-4-6', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] })
      .finalMessage()
    expect(message.usage).toMatchObject({ input_tokens: 1200, cache_read_input_tokens: 5000, output_tokens: 42 })
    expect((await gw.record()).model).toBe('claude-sonnet-4-6')
  })
})
