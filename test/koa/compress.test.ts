/**
 * usagewire with koa-compress, on Koa 2 and Koa 3. Mounted before usagewire (the documented order),
 * koa-compress compresses the body usagewire already fixed, and an SSE body still leaves event by event;
 * mounted after it, usagewire decodes what koa-compress produced and sends it identity-encoded.
 */
import zlib from 'node:zlib'
import compress from 'koa-compress'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { forwardTo } from '../matrix/drivers/koa.js'
import {
  anthropicStream,
  chatCompletion,
  createGate,
  type Gate,
  SSE_HEADERS,
  startUpstream,
  type Upstream,
  within,
} from '../matrix/upstream.js'
import { closeGateways, KOAS, parseSse, rawRequest, readAll, readUntil, startGateway, usageOf } from './helpers.js'

const START = { input_tokens: 1200, cache_read_input_tokens: 5000, output_tokens: 1 }
const ZERO_DELTA = { input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 42 }
const streamRequest = { model: 'claude-sonnet-4-6', max_tokens: 64, stream: true, messages: [] }

let upstream: Upstream
beforeAll(async () => {
  upstream = await startUpstream()
})
afterAll(() => upstream.close())

const gates: Gate[] = []
afterEach(async () => {
  for (const gate of gates.splice(0)) gate.open()
  await closeGateways()
})

const decode = (encoding: string | undefined, body: Buffer): Buffer =>
  encoding === 'gzip' ? zlib.gunzipSync(body) : encoding === 'br' ? zlib.brotliDecompressSync(body) : body

describe.each(KOAS)('%s with koa-compress', (name, App) => {
  it.each(['gzip', 'br'])(
    'mounted before usagewire: an SSE body is compressed (%s) and still leaves event by event, fixed',
    async (encoding) => {
      const id = `${name}-${encoding}-sse`
      const release = createGate()
      gates.push(release)
      const chunks = anthropicStream({ start: START, delta: ZERO_DELTA })
      upstream.reply = () => ({ headers: SSE_HEADERS, chunks, before: (i) => (i === 1 ? release.promise : undefined) })
      const gw = await startGateway(App, { before: [compress()], after: [forwardTo(upstream.url)] })

      const res = await fetch(`${gw.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'accept-encoding': encoding, 'x-request-id': id },
        body: JSON.stringify(streamRequest),
      })
      expect(res.headers.get('content-encoding')).toBe(encoding)
      const reader = res.body!.getReader() // fetch decodes as the bytes arrive
      const first = await within(
        readUntil(reader, (text) => text.includes('\n\n')),
        5_000,
        'the first event stayed in the compressor while the upstream held the rest',
      )
      expect(first).toBe(chunks[0])
      expect(upstream.progress(id)).toMatchObject({ sent: 1, waitingBefore: 1 })
      release.open()
      const all = await readAll(reader, first)
      expect(parseSse(all)).toHaveLength(chunks.length)
      expect(usageOf(all, 'message_delta')).toMatchObject({ input_tokens: 1200, cache_read_input_tokens: 5000 })
      expect(await gw.record()).toMatchObject({ status: 'complete', usage: { input: 1200, cacheRead: 5000 } })
    },
  )

  it('mounted before usagewire: a JSON object is fixed first, then compressed', async () => {
    const gw = await startGateway(App, {
      before: [compress({ threshold: 0 })],
      after: [
        (ctx) => {
          ctx.body = chatCompletion({
            prompt_tokens: 200,
            completion_tokens: 50,
            total_tokens: 5250,
            cache_read_input_tokens: 5000,
          })
        },
      ],
    })
    const res = await rawRequest(`${gw.url}/v1/chat/completions`, { headers: { 'accept-encoding': 'gzip' } })
    expect(res.headers['content-encoding']).toBe('gzip')
    const json = JSON.parse(decode('gzip', res.body).toString('utf8'))
    expect(json.usage).toMatchObject({ prompt_tokens: 5200, prompt_tokens_details: { cached_tokens: 5000 } })
    expect((await gw.record()).usage.cacheRead).toBe(5000)
  })

  it('mounted after usagewire: its output is decoded, fixed and sent identity-encoded', async () => {
    upstream.reply = () => ({ headers: SSE_HEADERS, chunks: anthropicStream({ start: START, delta: ZERO_DELTA }) })
    const gw = await startGateway(App, { after: [compress(), forwardTo(upstream.url)] })
    const res = await rawRequest(`${gw.url}/v1/messages`, {
      headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' },
      body: JSON.stringify(streamRequest),
    })
    expect(res.headers['content-encoding']).toBeUndefined()
    const text = res.body.toString('utf8')
    expect(parseSse(text).at(-1)?.name).toBe('message_stop')
    expect(usageOf(text, 'message_delta')).toMatchObject({ input_tokens: 1200, output_tokens: 42 })
    expect((await gw.record()).status).toBe('complete')
  })
})
