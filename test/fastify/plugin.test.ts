/**
 * The plugin inside Fastify, driven by `fastify.inject`: every payload kind `onSend` sees (an object
 * serialized to JSON, a string, a Buffer, a Node stream, a WHATWG stream, a fetch Response), what
 * reaches `reply.raw` without it (a legacy stream, a hijacked reply), routes it must leave alone, the
 * typed `request.usagewire`, `fastify.usagewire.stats`, registration in a prefixed scope, and checks
 * made once at registration. On Fastify 5 and 4.
 */
import { Readable, Stream } from 'node:stream'
import { gzipSync } from 'node:zlib'
import Fastify, { type FastifyInstance } from 'fastify'
import Fastify4 from 'fastify4'
import { exchangeOf, usagewire, type UsageRecord, type UsagewireOptions } from '@usagewire/fastify'
import { describe, expect, it } from 'vitest'
import { anthropicStream, chatCompletion, parseSse } from '../express/helpers.js'

/** Fastify 4 is installed under an alias; its own types name its own instance, so it is typed as 5's here. */
const MAJORS = [
  [5, Fastify],
  [4, Fastify4 as unknown as typeof Fastify],
] as const

// A translator's stream: message_delta writes 0 over the input and cache counts message_start gave.
const START = { input_tokens: 2048, cache_creation_input_tokens: 287, cache_read_input_tokens: 30433, output_tokens: 1 }
const ZEROS = { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 512 }
const FIXED = { ...START, output_tokens: 512 }
const SSE_EVENTS = anthropicStream({ start: START, delta: ZEROS })
const SSE_BODY = SSE_EVENTS.join('')

// A bridge's Chat body: the cache only under Anthropic's name, prompt_tokens without it, total with it.
const CHAT_BODY = chatCompletion({
  prompt_tokens: 200,
  completion_tokens: 50,
  total_tokens: 5250,
  cache_read_input_tokens: 5000,
})

const deltaUsage = (body: string): unknown =>
  JSON.parse(parseSse(body).find((event) => event.name === 'message_delta')!.data).usage

async function app(
  fastify: typeof Fastify,
  options: UsagewireOptions = {},
): Promise<{ app: FastifyInstance; records: UsageRecord[] }> {
  const records: UsageRecord[] = []
  const instance = fastify()
  await instance.register(usagewire, { ...options, onUsage: (record) => void records.push(record) })
  return { app: instance, records }
}

const post = (url: string, payload: Record<string, unknown> = { model: 'claude-x', stream: true }) => ({
  method: 'POST' as const,
  url,
  payload,
})

describe.each(MAJORS)('Fastify %d: what a handler sends, however it sends it', (_, fastify) => {
  it('an object the handler returns is serialized, rewritten, and sent with its new Content-Length', async () => {
    const { app: gateway, records } = await app(fastify)
    gateway.post('/v1/chat/completions', async () => CHAT_BODY)
    const res = await gateway.inject(post('/v1/chat/completions'))
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-length']).toBe(String(res.rawPayload.length))
    expect(res.json().usage).toMatchObject({
      prompt_tokens: 5200,
      completion_tokens: 50,
      total_tokens: 5250,
      prompt_tokens_details: { cached_tokens: 5000 },
    })
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({
      status: 'complete',
      dialect: 'openai-chat',
      streaming: true, // the parsed request body asked for a stream
      usage: { input: 200, cacheRead: 5000, output: 50 },
    })
  })

  it('an SSE string is rewritten, its length set to the new one', async () => {
    const { app: gateway, records } = await app(fastify)
    gateway.post('/v1/messages', (_request, reply) => {
      reply.type('text/event-stream').header('content-length', Buffer.byteLength(SSE_BODY)).send(SSE_BODY)
    })
    const res = await gateway.inject(post('/v1/messages'))
    expect(deltaUsage(res.body)).toEqual(FIXED)
    expect(res.headers['content-length']).toBe(String(res.rawPayload.length))
    expect(records[0]).toMatchObject({ status: 'complete', final: true, usage: { input: 2048, output: 512 } })
  })

  it('a gzip Buffer is decoded, rewritten and sent identity-encoded', async () => {
    const { app: gateway, records } = await app(fastify)
    gateway.post('/v1/chat/completions', (_request, reply) => {
      reply
        .type('application/json')
        .header('content-encoding', 'gzip')
        .send(gzipSync(JSON.stringify(CHAT_BODY)))
    })
    const res = await gateway.inject(post('/v1/chat/completions'))
    expect(res.headers['content-encoding']).toBeUndefined()
    expect(res.json().usage.prompt_tokens_details).toEqual({ cached_tokens: 5000 })
    expect(records[0]).toMatchObject({ status: 'complete', usage: { cacheRead: 5000 } })
  })

  it('a Node stream is carried event by event: no Content-Length, record when it ends', async () => {
    const { app: gateway, records } = await app(fastify)
    gateway.post('/v1/messages', (_request, reply) => {
      reply
        .type('text/event-stream')
        .header('content-length', '999')
        .send(Readable.from(SSE_EVENTS.map((event) => Buffer.from(event))))
    })
    const res = await gateway.inject(post('/v1/messages'))
    expect(res.headers['content-length']).toBeUndefined()
    expect(deltaUsage(res.body)).toEqual(FIXED)
    expect(parseSse(res.body)).toHaveLength(SSE_EVENTS.length)
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ status: 'complete', final: true })
    expect(records[0]!.corrections.length).toBeGreaterThan(0)
  })

  it('a stream that fails before its first byte: Fastify sends its error reply, one record says the cut', async () => {
    const { app: gateway, records } = await app(fastify)
    gateway.post('/v1/messages', (_request, reply) => {
      const body = new Readable({ read() {} })
      setImmediate(() => body.destroy(new Error('upstream reset')))
      reply.type('text/event-stream').send(body)
    })
    const res = await gateway.inject(post('/v1/messages'))
    expect(res.statusCode).toBe(500)
    expect(JSON.parse(res.body)).toMatchObject({ message: 'upstream reset' })
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ status: 'incomplete', error: 'upstream reset', final: false })
  })

  it('a WHATWG stream and a fetch Response are carried too', async () => {
    const { app: gateway, records } = await app(fastify)
    const bytes = () => new Response(SSE_BODY).body!
    gateway.post('/web/v1/messages', (_request, reply) => reply.type('text/event-stream').send(bytes()))
    gateway.post('/fetch/v1/messages', (_request, reply) =>
      reply.send(
        new Response(SSE_BODY, { status: 200, headers: { 'content-type': 'text/event-stream', 'x-up': '1' } }),
      ),
    )
    const web = await gateway.inject(post('/web/v1/messages'))
    const fetched = await gateway.inject(post('/fetch/v1/messages'))
    expect(deltaUsage(web.body)).toEqual(FIXED)
    expect(deltaUsage(fetched.body)).toEqual(FIXED)
    expect(fetched.headers['x-up']).toBe('1')
    expect(records.map((record) => record.status)).toEqual(['complete', 'complete'])
  })

  it('a legacy stream Fastify pipes itself is read on its way out through reply.raw', async () => {
    const { app: gateway, records } = await app(fastify)
    gateway.post('/v1/messages', (_request, reply) => {
      const legacy = new Stream() as Stream & { readable: boolean }
      legacy.readable = true
      reply.type('text/event-stream').send(legacy)
      setImmediate(() => {
        for (const event of SSE_EVENTS) legacy.emit('data', Buffer.from(event))
        legacy.emit('end')
      })
    })
    const res = await gateway.inject(post('/v1/messages'))
    expect(deltaUsage(res.body)).toEqual(FIXED)
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ status: 'complete', final: true, usage: { input: 2048, output: 512 } })
  })

  it('a hijacked reply written to reply.raw is read on its way out, under inject too', async () => {
    const { app: gateway, records } = await app(fastify)
    gateway.post('/v1/messages', (_request, reply) => {
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'content-length': SSE_BODY.length })
      for (const event of SSE_EVENTS) reply.raw.write(event)
      reply.raw.end()
    })
    const res = await gateway.inject(post('/v1/messages'))
    expect(res.headers['content-length']).toBeUndefined() // the body changed length: the old one goes
    expect(deltaUsage(res.body)).toEqual(FIXED)
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ status: 'complete', final: true })
  })

  it('an upstream error names the model the parsed request asked for', async () => {
    const { app: gateway, records } = await app(fastify)
    gateway.post('/v1/messages', (_request, reply) => {
      reply.code(529).send({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })
    })
    const res = await gateway.inject(post('/v1/messages', { model: 'claude-asked', stream: false }))
    expect(res.json()).toEqual({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })
    expect(records[0]).toMatchObject({
      status: 'upstream_error',
      httpStatus: 529,
      model: 'claude-asked',
      streaming: false,
      error: 'overloaded_error',
    })
  })
})

describe.each(MAJORS)('Fastify %d: what is left alone', (_, fastify) => {
  it('routes that are not LLM endpoints pass byte for byte, with no record', async () => {
    const { app: gateway, records } = await app(fastify)
    const models = JSON.stringify({ data: [{ id: 'm' }], usage: { prompt_tokens: 1 } })
    gateway.get('/v1/models', (_request, reply) => reply.type('application/json').send(models))
    gateway.post('/v1/embeddings/stream', (_request, reply) => reply.type('text/event-stream').send(SSE_BODY))
    const list = await gateway.inject({ method: 'GET', url: '/v1/models' })
    const other = await gateway.inject(post('/v1/embeddings/stream'))
    expect(list.body).toBe(models)
    expect(other.body).toBe(SSE_BODY)
    expect(records).toEqual([])
    expect(gateway.usagewire.stats.records).toBe(0)
  })

  it('a body on an LLM route that is neither SSE nor JSON leaves untouched, with a passthrough record', async () => {
    const { app: gateway, records } = await app(fastify)
    gateway.post('/v1/messages', (_request, reply) => reply.type('text/plain').send(SSE_BODY))
    const res = await gateway.inject(post('/v1/messages'))
    expect(res.body).toBe(SSE_BODY)
    expect(records[0]).toMatchObject({
      status: 'passthrough',
      passthrough: { reason: expect.stringMatching(/text\/plain/) },
    })
  })

  it('HEAD and 204 responses yield no record', async () => {
    const { app: gateway, records } = await app(fastify)
    gateway.route({
      method: ['POST', 'HEAD'],
      url: '/v1/responses',
      handler: (_request, reply) => reply.code(204).send(),
    })
    await gateway.inject({ method: 'HEAD', url: '/v1/responses' })
    await gateway.inject(post('/v1/responses'))
    expect(records).toEqual([])
  })
})

describe.each(MAJORS)('Fastify %d: the request, the instance, the scope', (_, fastify) => {
  it('request.usagewire is the Exchange, with its record by onResponse; null elsewhere; stats count', async () => {
    const { app: gateway } = await app(fastify)
    const seen: Array<[string, string | undefined, boolean]> = []
    gateway.addHook('onResponse', (request, _reply, done) => {
      seen.push([request.url, request.usagewire?.record?.status, exchangeOf(request.raw) === request.usagewire])
      done()
    })
    gateway.post('/v1/messages', (_request, reply) => reply.type('text/event-stream').send(SSE_BODY))
    gateway.get('/health', async () => ({ ok: true }))
    await gateway.inject(post('/v1/messages'))
    await gateway.inject({ method: 'GET', url: '/health' })
    expect(seen).toEqual([
      ['/v1/messages', 'complete', true],
      ['/health', undefined, false],
    ])
    expect(gateway.usagewire.stats).toEqual({ records: 1, failures: 0 })
  })

  it('registered in a prefixed scope, it meters that scope by full path, and nothing outside it', async () => {
    const records: UsageRecord[] = []
    const gateway = fastify()
    await gateway.register(
      async (api) => {
        await api.register(usagewire, { onUsage: (record) => void records.push(record) })
        api.post('/messages', (_request, reply) => reply.type('text/event-stream').send(SSE_BODY))
      },
      { prefix: '/v1' },
    )
    gateway.post('/other/v1/messages', (_request, reply) => reply.type('text/event-stream').send(SSE_BODY))
    const inside = await gateway.inject(post('/v1/messages'))
    const outside = await gateway.inject(post('/other/v1/messages'))
    expect(deltaUsage(inside.body)).toEqual(FIXED)
    expect(outside.body).toBe(SSE_BODY)
    expect(records.map((record) => record.route)).toEqual(['/v1/messages'])
  })

  it('checks its options once, at registration, and refuses a second registration that would meter twice', async () => {
    const bad = fastify()
    await expect(bad.register(usagewire, { maxEventBytes: -1 } as UsagewireOptions).ready()).rejects.toThrow(
      /maxEventBytes/,
    )
    const twice = fastify()
    twice.register(usagewire, {})
    twice.register(usagewire, {})
    await expect(twice.ready()).rejects.toThrow(/already registered/)
    const nested = fastify()
    nested.register(usagewire, {})
    nested.register(async (child) => void child.register(usagewire, {}))
    await expect(nested.ready()).rejects.toThrow(/already registered/)
  })

  it('a throwing onUsage is counted, never raised: the response is unaffected', async () => {
    const gateway = fastify()
    await gateway.register(usagewire, {
      onUsage: () => {
        throw new Error('sink down')
      },
      logger: { warn: () => {} },
    })
    gateway.post('/v1/messages', (_request, reply) => reply.type('text/event-stream').send(SSE_BODY))
    const res = await gateway.inject(post('/v1/messages'))
    expect(res.statusCode).toBe(200)
    expect(deltaUsage(res.body)).toEqual(FIXED)
    expect(gateway.usagewire.stats).toEqual({ records: 1, failures: 1 })
  })

  it('when a later onSend hook fails, the error reply leaves as it is and the request keeps one record', async () => {
    const { app: gateway, records } = await app(fastify)
    const upstream = new Readable({ read() {} })
    upstream.push(SSE_EVENTS[0])
    gateway.addHook('onSend', async (request, _reply, payload) => {
      if (request.headers['x-fail'] === '1' && payload instanceof Readable) throw new Error('signing failed')
      return payload
    })
    gateway.post('/v1/messages', (_request, reply) => reply.type('text/event-stream').send(upstream))
    const res = await gateway.inject({ ...post('/v1/messages'), headers: { 'x-fail': '1' } })
    expect(res.statusCode).toBe(500)
    expect(res.json()).toMatchObject({ message: 'signing failed' })
    expect(upstream.destroyed).toBe(true) // the stream that was never sent does not hold its source open
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ status: 'incomplete', error: 'the response was replaced by an error reply' })
  })
})
