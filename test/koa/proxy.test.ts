/**
 * Responses written straight to `ctx.res`, on Koa 2 and Koa 3: koa-proxies (http-proxy pipes the
 * upstream's response into `ctx.res` and resolves once it has finished) and a handler that sets
 * `ctx.respond = false` and writes the response itself, after its middleware promise has settled.
 */
import http from 'node:http'
import { createRequire } from 'node:module'
import type Koa from 'koa'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
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

const require = createRequire(import.meta.url)
/** koa-proxies ships no types: the part used here. */
type KoaProxies = (path: string, options: { target: string; changeOrigin?: boolean }) => Koa.Middleware
const proxy = require('koa-proxies') as KoaProxies

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

/** Writes the upstream's response to `ctx.res` by hand, once the middleware chain has already settled. */
const rawWriter =
  (target: string): Koa.Middleware =>
  (ctx) => {
    ctx.respond = false
    const outgoing = http.request(`${target}${ctx.originalUrl}`, { method: ctx.method, headers: ctx.headers })
    ctx.res.once('close', () => {
      if (!ctx.res.writableFinished) outgoing.destroy()
    })
    outgoing.on('response', (response) => {
      ctx.res.writeHead(response.statusCode ?? 502, response.headers)
      response.pipe(ctx.res)
    })
    ctx.req.pipe(outgoing)
  }

const WRITERS = [
  ['koa-proxies', (target: string) => proxy('/v1', { target, changeOrigin: true })],
  ['ctx.respond = false', rawWriter],
] as const

describe.each(KOAS)('%s: responses written to ctx.res', (name, App) => {
  describe.each(WRITERS)('%s', (writer, mount) => {
    it('an SSE stream passes event by event and leaves rewritten; the record is complete', async () => {
      const id = `${name}-${writer}-sse`
      const release = createGate()
      gates.push(release)
      const chunks = anthropicStream({ start: START, delta: ZERO_DELTA })
      upstream.reply = () => ({
        headers: SSE_HEADERS,
        chunks,
        before: (i) => (i === 1 ? release.promise : undefined),
      })
      const gw = await startGateway(App, { after: [mount(upstream.url)] })

      const res = await fetch(`${gw.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': id },
        body: JSON.stringify(streamRequest),
      })
      const reader = res.body!.getReader()
      const first = await within(
        readUntil(reader, (text) => text.includes('\n\n')),
        5_000,
        'the first event did not reach the client while the upstream held the rest (buffered?)',
      )
      expect(first).toBe(chunks[0])
      expect(upstream.progress(id)).toMatchObject({ sent: 1, waitingBefore: 1 })
      release.open()
      const all = await readAll(reader, first)
      expect(parseSse(all)).toHaveLength(chunks.length)
      expect(usageOf(all, 'message_delta')).toMatchObject({ input_tokens: 1200, cache_read_input_tokens: 5000 })
      const record = await gw.record()
      expect(record).toMatchObject({ route: '/v1/messages', status: 'complete', usage: { input: 1200, output: 42 } })
      expect(record.corrections).toHaveLength(2)
    })

    it('a JSON body sent with its Content-Length leaves rewritten with its new length', async () => {
      upstream.reply = () => ({
        headers: JSON_HEADERS,
        body: JSON.stringify(
          chatCompletion({ prompt_tokens: 100, completion_tokens: 5, total_tokens: 905, cache_read_input_tokens: 800 }),
        ),
      })
      const gw = await startGateway(App, { after: [mount(upstream.url)] })
      const res = await postJson(`${gw.url}/v1/chat/completions`, { model: 'gpt-4o', messages: [] })
      expect(res.headers['content-length']).toBe(String(res.body.length))
      expect(JSON.parse(res.body.toString('utf8')).usage).toMatchObject({
        prompt_tokens: 900,
        total_tokens: 905,
        prompt_tokens_details: { cached_tokens: 800 },
      })
      expect(await gw.record()).toMatchObject({ status: 'complete', usage: { input: 100, cacheRead: 800 } })
    })

    it('a client that goes away mid-stream yields one aborted record', async () => {
      const id = `${name}-${writer}-abort`
      const hold = createGate()
      gates.push(hold)
      upstream.reply = () => ({
        headers: SSE_HEADERS,
        chunks: anthropicStream({ start: START, delta: ZERO_DELTA }),
        before: (i) => (i === 2 ? hold.promise : undefined),
      })
      const gw = await startGateway(App, { after: [mount(upstream.url)] })
      const abort = new AbortController()
      const res = await fetch(`${gw.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': id },
        body: JSON.stringify(streamRequest),
        signal: abort.signal,
      })
      await readUntil(res.body!.getReader(), (text) => text.includes('content_block_start'))
      abort.abort()
      expect(await gw.record()).toMatchObject({ status: 'aborted', final: false, usage: { input: 1200 } })
      // Whether the upstream is let go is the proxy's business (http-proxy keeps reading it, with or
      // without usagewire); usagewire's part is one record, written when the client left.
      hold.open()
      await waitFor(() => upstream.progress(id)?.ended || upstream.progress(id)?.closedEarly, 'the upstream to be done')
      expect(gw.records).toHaveLength(1)
    })
  })
})
