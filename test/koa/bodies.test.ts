/**
 * Whole bodies a Koa handler leaves in `ctx.body` (a Buffer, a string, an object, and on Koa 3 a fetch
 * `Response`), on Koa 2 and Koa 3: rewritten with a true Content-Length, or left byte-for-byte; what
 * usagewire must leave alone; and what a handler reaches through `exchangeOf(ctx.req)`.
 */
import { Readable } from 'node:stream'
import Koa from 'koa'
import request from 'supertest'
import { exchangeOf, type Exchange } from '@usagewire/koa'
import { afterEach, describe, expect, it } from 'vitest'
import { anthropicMessage, anthropicStream, ANTHROPIC_MODEL, chatCompletion, waitFor } from '../matrix/upstream.js'
import { closeGateways, KOAS, parseJson, startGateway, usageOf } from './helpers.js'

afterEach(closeGateways)

/** A translator's chat body: the cache only in `cache_read_input_tokens`, `total_tokens` counting it. */
const translatedChat = () =>
  chatCompletion({ prompt_tokens: 200, completion_tokens: 50, total_tokens: 5250, cache_read_input_tokens: 5000 })
const FIXED_CHAT_USAGE = { prompt_tokens: 5200, total_tokens: 5250, prompt_tokens_details: { cached_tokens: 5000 } }

const ANTHROPIC_USAGE = {
  input_tokens: 1200,
  cache_creation_input_tokens: 300,
  cache_read_input_tokens: 5000,
  output_tokens: 42,
}

describe.each(KOAS)('%s: bodies in ctx.body', (_, App) => {
  it('a Buffer of JSON is rewritten: Content-Length is the new length, the stale ETag is gone', async () => {
    const upstreamBody = Buffer.from(JSON.stringify(translatedChat()))
    const gw = await startGateway(App, {
      after: [
        (ctx) => {
          ctx.type = 'application/json'
          ctx.set('etag', '"v1"')
          ctx.body = upstreamBody
        },
      ],
    })
    const res = await request(gw.app.callback()).post('/v1/chat/completions').send({})
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toMatch(/^application\/json/)
    expect(res.headers['content-length']).toBe(String(Buffer.byteLength(res.text)))
    expect(res.headers.etag).toBeUndefined()
    expect(res.text).not.toBe(upstreamBody.toString())
    expect(JSON.parse(res.text).usage).toMatchObject(FIXED_CHAT_USAGE)
    const record = await gw.record()
    expect(record).toMatchObject({ route: '/v1/chat/completions', dialect: 'openai-chat', status: 'complete' })
    expect(record.usage).toEqual({ input: 200, cacheRead: 5000, cacheWrite: 0, output: 50, reasoning: 0 })
    expect(gw.middleware.stats.records).toBe(1)
  })

  it('a string with nothing to fix leaves byte-for-byte, with its Content-Length and ETag', async () => {
    // Odd spacing on purpose: any re-serialization would show.
    const upstreamBody = JSON.stringify(anthropicMessage(ANTHROPIC_USAGE), null, 1)
    const gw = await startGateway(App, {
      after: [
        (ctx) => {
          ctx.type = 'application/json'
          ctx.set('etag', '"v1"')
          ctx.body = upstreamBody
        },
      ],
    })
    const res = await request(gw.app.callback()).post('/v1/messages').send({})
    expect(res.text).toBe(upstreamBody)
    expect(res.headers['content-length']).toBe(String(Buffer.byteLength(upstreamBody)))
    expect(res.headers.etag).toBe('"v1"')
    const record = await gw.record()
    expect(record).toMatchObject({ dialect: 'anthropic-messages', model: ANTHROPIC_MODEL, status: 'complete' })
    expect(record.usage).toEqual({ input: 1200, cacheRead: 5000, cacheWrite: 300, output: 42, reasoning: 0 })
    expect(record.corrections).toEqual([])
  })

  it.each([
    ['before', 'read when usagewire begins'],
    ['after', 'read once the handler is done'],
  ])(
    'an object is sent as Koa would, rewritten; with a body parser mounted %s usagewire the request is %s',
    async (where) => {
      const { model: _, ...body } = translatedChat() // no model in the response: the record takes the request's
      const handler: Koa.Middleware = (ctx) => {
        ctx.body = body
      }
      const gw = await startGateway(App, {
        before: where === 'before' ? [parseJson] : [],
        after: where === 'after' ? [parseJson, handler] : [handler],
      })
      const res = await request(gw.app.callback())
        .post('/v1/chat/completions')
        .send({ model: 'gpt-asked-for', stream: false, messages: [] })
      expect(res.headers['content-type']).toMatch(/^application\/json/)
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(res.text)))
      expect(res.body.usage).toMatchObject(FIXED_CHAT_USAGE)
      expect(res.body.choices).toEqual(body.choices)
      const record = await gw.record()
      expect(record).toMatchObject({ model: 'gpt-asked-for', streaming: false, status: 'complete' })
      expect(record.usage.cacheRead).toBe(5000)
    },
  )

  it('routes match the URL the client sent, whatever a router stripped from ctx.path', async () => {
    const gw = await startGateway(App, {
      before: [
        async (ctx, next) => {
          ctx.path = ctx.path.replace(/^\/llm/, '') // what a mount prefix does
          await next()
        },
      ],
      after: [(ctx) => void (ctx.body = anthropicMessage(ANTHROPIC_USAGE))],
    })
    await request(gw.app.callback()).post('/llm/v1/messages?beta=true').send({})
    expect((await gw.record()).route).toBe('/llm/v1/messages')
  })

  it('non-LLM routes, HEAD requests and 204s are left alone and yield no record', async () => {
    const seen: Array<Exchange | undefined> = []
    const models = { object: 'list', data: [{ id: 'm', usage: { prompt_tokens: 1 } }] }
    const gw = await startGateway(App, {
      after: [
        (ctx) => {
          seen.push(exchangeOf(ctx.req))
          if (ctx.path === '/v1/models') ctx.body = models
          else if (ctx.path === '/health') ctx.body = 'ok'
          else if (ctx.get('x-empty')) ctx.status = 204
          else ctx.body = anthropicMessage(ANTHROPIC_USAGE)
        },
      ],
    })
    const client = request(gw.app.callback())
    const list = await client.get('/v1/models')
    expect(list.text).toBe(JSON.stringify(models))
    expect(list.headers['content-length']).toBe(String(list.text.length))
    expect((await client.get('/health')).text).toBe('ok')
    expect((await client.head('/v1/messages')).status).toBe(200)
    expect((await client.post('/v1/messages').set('x-empty', '1').send({})).status).toBe(204)
    // The one LLM response: its record is the first and only one.
    await client.post('/v1/messages').send({})
    const record = await gw.record()
    expect(gw.records).toEqual([record])
    expect(record).toMatchObject({ route: '/v1/messages', method: 'POST', httpStatus: 200 })
    expect(seen.map((exchange) => exchange?.route)).toEqual([
      undefined,
      undefined,
      undefined,
      '/v1/messages',
      '/v1/messages',
    ])
  })

  it('exchangeOf(ctx.req): a handler holds the final usage until it has the truth, then the body carries it', async () => {
    const TRUTH = { input: 1234, cacheRead: 61711, cacheWrite: 407, output: 291 }
    const body = Buffer.from(JSON.stringify(anthropicMessage({ input_tokens: 0, output_tokens: 3 })))
    const gw = await startGateway(App, {
      after: [
        (ctx) => {
          const exchange = exchangeOf(ctx.req)!
          const hold = exchange.hold(5_000)
          ctx.type = 'application/json'
          ctx.body = body
          // The provider's own numbers arrive after the handler is done.
          setImmediate(() => {
            exchange.ledger.observe('tap', TRUTH, { input: 'tap', cacheRead: 'tap', cacheWrite: 'tap', output: 'tap' })
            hold.release()
          })
        },
      ],
    })
    const res = await request(gw.app.callback()).post('/v1/messages').send({})
    expect(res.body.usage).toMatchObject({
      input_tokens: 1234,
      cache_read_input_tokens: 61711,
      cache_creation_input_tokens: 407,
      output_tokens: 291,
    })
    const record = await gw.record()
    expect(record).toMatchObject({ status: 'complete', usage: { ...TRUTH, reasoning: 0 } })
    expect(record.sources.input).toBe('tap')
  })

  it('a thrown error reaches Koa unchanged, and the error response still yields a record', async () => {
    const thrown = new Error('upstream unreachable')
    const gw = await startGateway(App, {
      after: [
        () => {
          throw thrown
        },
      ],
    })
    const res = await request(gw.app.callback()).post('/v1/messages').send({})
    expect(res.status).toBe(500)
    expect(res.text).toBe('Internal Server Error')
    expect(gw.errors).toEqual([thrown])
    expect(gw.errors[0]).toBe(thrown)
    expect(await gw.record()).toMatchObject({ route: '/v1/messages', status: 'upstream_error', httpStatus: 500 })
  })

  it('an error handler mounted before usagewire catches the very error thrown, and its answer is recorded', async () => {
    const thrown = Object.assign(new Error('overloaded'), { status: 529 })
    let caught: unknown
    const gw = await startGateway(App, {
      before: [
        async (ctx, next) => {
          try {
            await next()
          } catch (error) {
            caught = error
            ctx.status = 529
            ctx.body = { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }
          }
        },
      ],
      after: [
        () => {
          throw thrown
        },
      ],
    })
    const res = await request(gw.app.callback()).post('/v1/messages').send({})
    expect(caught).toBe(thrown)
    expect(res.status).toBe(529)
    expect(res.body.error.type).toBe('overloaded_error')
    expect(await gw.record()).toMatchObject({ status: 'upstream_error', httpStatus: 529, error: 'overloaded_error' })
  })
})

describe('Koa 3: web bodies', () => {
  it('a fetch Response with SSE is carried: Koa takes its status and headers, usagewire its body', async () => {
    const events = anthropicStream({
      start: { input_tokens: 1200, cache_read_input_tokens: 5000, output_tokens: 1 },
      delta: { input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 42 },
    })
    const gw = await startGateway(Koa, {
      after: [
        (ctx) => {
          const stream = Readable.toWeb(Readable.from(events.map((event) => Buffer.from(event))))
          ctx.body = new Response(stream as ReadableStream<Uint8Array>, {
            status: 201,
            headers: { 'content-type': 'text/event-stream', 'x-upstream': 'yes' },
          })
        },
      ],
    })
    const res = await request(gw.app.callback()).post('/v1/messages').send({})
    expect(res.status).toBe(201)
    expect(res.headers['x-upstream']).toBe('yes')
    expect(usageOf(res.text, 'message_delta')).toMatchObject({
      input_tokens: 1200,
      cache_read_input_tokens: 5000,
      output_tokens: 42,
    })
    expect(await gw.record()).toMatchObject({ status: 'complete', httpStatus: 201, usage: { input: 1200, output: 42 } })
  })

  it('a ReadableStream of JSON is carried, a Blob too', async () => {
    const json = JSON.stringify(translatedChat())
    const gw = await startGateway(Koa, {
      after: [
        (ctx) => {
          ctx.type = 'application/json'
          ctx.body = ctx.get('x-blob')
            ? new Blob([json], { type: 'application/json' })
            : (Readable.toWeb(Readable.from([Buffer.from(json)])) as ReadableStream<Uint8Array>)
        },
      ],
    })
    const client = request(gw.app.callback())
    expect((await client.post('/v1/chat/completions').send({})).body.usage).toMatchObject(FIXED_CHAT_USAGE)
    expect((await client.post('/v1/chat/completions').set('x-blob', '1').send({})).body.usage).toMatchObject(
      FIXED_CHAT_USAGE,
    )
    expect(gw.records.map((r) => r.usage.cacheRead)).toEqual([5000, 5000])
  })

  it('a web stream stalled on its upstream is cancelled when the client leaves', async () => {
    const [start] = anthropicStream({ start: { input_tokens: 1200, output_tokens: 1 }, delta: { output_tokens: 42 } })
    let cancelled = false
    const gw = await startGateway(Koa, {
      after: [
        (ctx) => {
          ctx.type = 'text/event-stream'
          ctx.body = new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(new TextEncoder().encode(start))
            },
            pull: () => new Promise<void>(() => {}), // the upstream sends nothing more
            cancel: () => void (cancelled = true),
          })
        },
      ],
    })
    const abort = new AbortController()
    const res = await fetch(`${gw.url}/v1/messages`, { method: 'POST', body: '{}', signal: abort.signal })
    const reader = res.body!.getReader()
    await reader.read() // message_start arrived
    abort.abort()
    expect(await gw.record()).toMatchObject({ status: 'aborted', usage: { input: 1200 } })
    await waitFor(() => cancelled, 'the web stream to be cancelled')
  })

  it('a Response usagewire does not read is left for Koa to send, unread', async () => {
    const gw = await startGateway(Koa, {
      after: [(ctx) => void (ctx.body = new Response('plain words', { headers: { 'content-type': 'text/plain' } }))],
    })
    const res = await request(gw.app.callback()).post('/v1/messages').send({})
    expect(res.text).toBe('plain words')
    expect(await gw.record()).toMatchObject({ status: 'passthrough' })
  })
})
