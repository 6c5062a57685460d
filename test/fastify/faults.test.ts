/**
 * Fastify gateways where something besides the LLM body shapes the reply: trailers (Fastify sends such a
 * reply chunked), @fastify/compress piping the carried body into its compressor when the client leaves,
 * and a later onSend hook that fails so that Fastify sends an error reply instead. On Fastify 5 and 4,
 * over real sockets where the framing matters.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import compress from '@fastify/compress'
import Fastify, { type FastifyInstance } from 'fastify'
import Fastify4 from 'fastify4'
import compress4 from 'fastify4-compress'
import { usagewire, type UsageRecord } from '@usagewire/fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { COMPRESS_SSE } from '../matrix/drivers/fastify.js'
import { anthropicStream, chatCompletion, parseSse, waitFor } from '../express/helpers.js'

const MAJORS = [
  [5, Fastify, compress],
  [4, Fastify4 as unknown as typeof Fastify, compress4 as unknown as typeof compress],
] as const

const START = { input_tokens: 2048, cache_read_input_tokens: 30433, output_tokens: 1 }
const ZEROS = { input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 512 }
const SSE_EVENTS = anthropicStream({ start: START, delta: ZEROS })
const CHAT_BODY = chatCompletion({
  prompt_tokens: 200,
  completion_tokens: 50,
  total_tokens: 5250,
  cache_read_input_tokens: 5000,
})

const apps: FastifyInstance[] = []
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()))
})

async function gateway(fastify: typeof Fastify, setup: (app: FastifyInstance) => Promise<void> | void = () => {}) {
  const records: UsageRecord[] = []
  const app = fastify({ forceCloseConnections: true })
  apps.push(app)
  await setup(app)
  await app.register(usagewire, { onUsage: (record) => void records.push(record), logger: { warn() {} } })
  return { app, records }
}

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

/** A POST over a real socket: node's HTTP parser rejects a head with both Content-Length and chunking. */
function post(port: number, path: string, headers: http.OutgoingHttpHeaders = {}) {
  return new Promise<{
    status: number
    headers: http.IncomingHttpHeaders
    body: string
    trailers: NodeJS.Dict<string>
  }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (part: string) => (body += part))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, trailers: res.trailers }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end('{}')
  })
}

describe.each(MAJORS)('Fastify %d: faults around the reply', (_, fastify, compressPlugin) => {
  it('a reply with trailers goes out chunked, without a Content-Length beside it, rewritten', async () => {
    const { app, records } = await gateway(fastify)
    app.post('/v1/chat/completions', async (_request, reply) => {
      reply.trailer('server-timing', async () => 'upstream;dur=12')
      return CHAT_BODY
    })
    app.post('/v1/messages', (_request, reply) => {
      reply.trailer('server-timing', async () => 'upstream;dur=12')
      return reply.type('text/event-stream').send(SSE_EVENTS.join(''))
    })
    const port = await listen(app)
    const chat = await post(port, '/v1/chat/completions', { 'content-type': 'application/json' })
    const sse = await post(port, '/v1/messages', { 'content-type': 'application/json' })
    for (const res of [chat, sse]) {
      expect(res.headers['transfer-encoding']).toBe('chunked')
      expect(res.headers['content-length']).toBeUndefined()
      expect(res.trailers['server-timing']).toBe('upstream;dur=12')
    }
    expect(JSON.parse(chat.body).usage.prompt_tokens_details).toEqual({ cached_tokens: 5000 })
    const delta = JSON.parse(parseSse(sse.body).find((event) => event.name === 'message_delta')!.data)
    expect(delta.usage).toMatchObject({ input_tokens: 2048, cache_read_input_tokens: 30433, output_tokens: 512 })
    await waitFor(() => records[1], 'both records')
    expect(records.map((record) => record.status)).toEqual(['complete', 'complete'])
  })

  it('behind @fastify/compress, a client that leaves mid-stream is recorded as aborted', async () => {
    let source: Readable | undefined
    const { app, records } = await gateway(fastify, async (instance) => {
      await instance.register(compressPlugin, COMPRESS_SSE)
    })
    app.post('/v1/messages', (_request, reply) => {
      source = new Readable({ read() {} })
      source.push(SSE_EVENTS[0])
      source.push(SSE_EVENTS[1])
      return reply.type('text/event-stream').send(source)
    })
    const port = await listen(app)
    const encoding = await new Promise<string | undefined>((resolve) => {
      const headers = { 'accept-encoding': 'gzip', 'content-type': 'application/json' }
      const req = http.request(
        { host: '127.0.0.1', port, path: '/v1/messages', method: 'POST', headers, agent: false },
        (res) => {
          res.once('data', () => {
            req.destroy() // the client leaves after its first bytes
            resolve(res.headers['content-encoding'])
          })
        },
      )
      req.on('error', () => {})
      req.end('{}')
    })
    expect(encoding).toBe('gzip')
    const record = await waitFor(() => records[0], 'the record')
    expect(record).toMatchObject({ status: 'aborted', usage: { input: 2048, cacheRead: 30433 } })
    await waitFor(() => source?.destroyed, 'the source to be let go')
  })

  it.each([
    ['an object', () => CHAT_BODY, '/v1/chat/completions'],
    ['an SSE string', () => SSE_EVENTS.join(''), '/v1/messages'],
    ['a stream that ended', () => Readable.from(SSE_EVENTS), '/v1/messages'],
  ])(
    'when a later onSend hook fails on %s, the client gets the error reply and the record does not say complete',
    async (_kind, body, path) => {
      const { app, records } = await gateway(fastify)
      app.addHook('onSend', async (_request, reply, payload) => {
        // By now a stream body was read to its end: its record is the one at stake.
        await new Promise((resolve) => setTimeout(resolve, 20))
        if (reply.statusCode === 200) throw new Error('signing failed')
        return payload
      })
      app.post(path, (_request, reply) =>
        reply.type(path === '/v1/messages' ? 'text/event-stream' : 'application/json').send(body()),
      )
      const res = await app.inject({ method: 'POST', url: path, payload: {} })
      expect(res.statusCode).toBe(500)
      expect(res.json()).toMatchObject({ message: 'signing failed' })
      const record = await waitFor(() => records[0], 'the record')
      expect(record).toMatchObject({ status: 'incomplete', error: 'the response was replaced by an error reply' })
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(records).toHaveLength(1)
    },
  )
})
