/**
 * Gateways served over HTTP/2 (node:http2's compatibility API): Fastify 5 and 4 with `http2: true`, and
 * Koa 3 and 2 on `http2.createServer(app.callback())`, each with usagewire mounted in its own idiom, and
 * an HTTP/2 client. The response under usagewire is then an `Http2ServerResponse`, whose end reads
 * differently from node:http's: it emits 'finish' and reports `writableFinished` for a stream the
 * client reset too (docs/transport.md#http2). Every way a body reaches the client is tried (a stream the
 * framework sends, raw writes, a whole JSON body, a proxied upstream), and every way a stream ends: to
 * its end, reset by the client, destroyed by the gateway.
 */
import http2 from 'node:http2'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import Fastify4 from 'fastify4'
import fastifyProxy from '@fastify/http-proxy'
import fastify4Proxy from 'fastify4-http-proxy'
import Koa from 'koa'
import compress from 'koa-compress'
import zlib from 'node:zlib'
import { usagewire as fastifyUsagewire, type UsageRecord } from '@usagewire/fastify'
import { usagewire as koaUsagewire } from '@usagewire/koa'
import { afterEach, describe, expect, it } from 'vitest'
import {
  anthropicStream,
  chatCompletion,
  parseSse,
  startUpstream,
  SSE_HEADERS,
  waitFor,
  type Upstream,
} from '../express/helpers.js'
import { Koa2 } from '../koa/helpers.js'

const START = { input_tokens: 2048, cache_creation_input_tokens: 287, cache_read_input_tokens: 30433, output_tokens: 1 }
const ZEROS = { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 512 }
const FIXED = { ...START, output_tokens: 512 }
const EVENTS = anthropicStream({ start: START, delta: ZEROS })
// A bridge's Chat body: the cache only under Anthropic's name, prompt_tokens without it.
const CHAT = JSON.stringify(
  chatCompletion({ prompt_tokens: 200, completion_tokens: 50, total_tokens: 5250, cache_read_input_tokens: 5000 }),
)

const deltaUsage = (body: string): unknown =>
  JSON.parse(parseSse(body).find((event) => event.name === 'message_delta')!.data).usage

/** The events one by one, a pause before each, so a client can leave in the middle. */
async function* slowEvents(): AsyncGenerator<Buffer> {
  for (const event of EVENTS) {
    await sleep(25)
    yield Buffer.from(event)
  }
}

/** Raw writes to the response, as a gateway that writes to the socket itself does; slowly for `raw-slow`. */
async function writeRaw(res: http2.Http2ServerResponse, slow: boolean): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream' })
  for (const event of EVENTS) {
    if (slow) await sleep(25)
    if (res.destroyed || res.stream.destroyed) return
    res.write(event)
  }
  res.end()
}

interface H2Response {
  status: number
  headers: http2.IncomingHttpHeaders
  body: string
}

/** One POST over a fresh HTTP/2 connection. */
async function post(origin: string, path: string, body = '{"model":"claude-x","stream":true}'): Promise<H2Response> {
  const session = http2.connect(origin)
  try {
    return await new Promise((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' })
      let headers: http2.IncomingHttpHeaders = {}
      let text = ''
      req.setEncoding('utf8')
      req.on('response', (h) => (headers = h))
      req.on('data', (chunk: string) => (text += chunk))
      req.on('end', () => resolve({ status: Number(headers[':status']), headers, body: text }))
      req.on('error', reject)
      req.end(body)
    })
  } finally {
    session.close()
  }
}

/** Opens a stream, and resets it (CANCEL, as a browser or an SDK's abort does) once its first bytes came. */
async function cancelAfterFirstBytes(origin: string, path: string): Promise<void> {
  const session = http2.connect(origin)
  session.on('error', () => {})
  await new Promise<void>((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' })
    req.on('error', () => {})
    req.once('data', () => {
      req.close(http2.constants.NGHTTP2_CANCEL)
      resolve()
    })
    req.end('{"model":"claude-x","stream":true}')
  })
  session.close()
}

const closers: (() => Promise<unknown>)[] = []
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

type Body = 'stream' | 'raw' | 'slow' | 'raw-slow' | 'cut'

/** What each gateway's handler sends for `/v1/...?body=<kind>`, in its framework's terms. */
interface H2Gateway {
  origin: string
  records: UsageRecord[]
}

const FASTIFY = [
  ['Fastify 5', Fastify, fastifyProxy],
  ['Fastify 4', Fastify4 as unknown as typeof Fastify, fastify4Proxy as unknown as typeof fastifyProxy],
] as const

async function fastifyGateway(fastify: typeof Fastify): Promise<H2Gateway> {
  const records: UsageRecord[] = []
  const app: FastifyInstance = fastify({ http2: true }) as unknown as FastifyInstance
  await app.register(fastifyUsagewire, { onUsage: (record) => void records.push(record) })
  app.post('/v1/messages', async (request, reply) => {
    const kind = (request.query as { body?: Body }).body
    if (kind === 'raw' || kind === 'raw-slow') {
      reply.hijack()
      void writeRaw(reply.raw as unknown as http2.Http2ServerResponse, kind === 'raw-slow')
      return reply
    }
    reply.header('content-type', 'text/event-stream')
    if (kind === 'cut') {
      const body = new Readable({ read() {} })
      body.push(EVENTS[0])
      setTimeout(() => body.destroy(new Error('upstream reset')), 30)
      return reply.send(body)
    }
    return reply.send(Readable.from(kind === 'slow' ? slowEvents() : EVENTS.map((event) => Buffer.from(event))))
  })
  app.post('/v1/chat/completions', async (_request, reply) =>
    reply.header('content-type', 'application/json').send(CHAT),
  )
  await app.listen({ port: 0, host: '127.0.0.1' })
  closers.push(() => app.close())
  return { origin: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, records }
}

const KOAS = [
  ['Koa 3', Koa],
  ['Koa 2', Koa2],
] as const

async function koaGateway(KoaClass: typeof Koa): Promise<H2Gateway> {
  const records: UsageRecord[] = []
  const app = new KoaClass()
  app.on('error', () => {}) // a cut body is the record's to tell
  app.use(koaUsagewire({ onUsage: (record) => void records.push(record) }))
  app.use(async (ctx) => {
    if (ctx.path === '/v1/chat/completions') {
      ctx.type = 'application/json'
      ctx.body = CHAT
      return
    }
    const kind = ctx.query.body as Body | undefined
    if (kind === 'raw' || kind === 'raw-slow') {
      ctx.respond = false
      void writeRaw(ctx.res as unknown as http2.Http2ServerResponse, kind === 'raw-slow')
      return
    }
    ctx.type = 'text/event-stream'
    if (kind === 'cut') {
      const body = new Readable({ read() {} })
      body.push(EVENTS[0])
      setTimeout(() => body.destroy(new Error('upstream reset')), 30)
      ctx.body = body
      return
    }
    ctx.body = Readable.from(kind === 'slow' ? slowEvents() : EVENTS.map((event) => Buffer.from(event)))
  })
  const server = http2.createServer(app.callback())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closers.push(() => new Promise((resolve) => server.close(resolve)))
  return { origin: `http://127.0.0.1:${(server.address() as { port: number }).port}`, records }
}

const GATEWAYS = [
  ...FASTIFY.map(([name, fastify]) => [name, () => fastifyGateway(fastify)] as const),
  ...KOAS.map(([name, KoaClass]) => [name, () => koaGateway(KoaClass)] as const),
]

describe.each(GATEWAYS)('%s over HTTP/2', (_, start) => {
  it.each(['stream', 'raw'] as const)('a stream (%s) is rewritten and recorded complete', async (kind) => {
    const gateway = await start()
    const res = await post(gateway.origin, `/v1/messages?body=${kind}`)
    expect(res.status).toBe(200)
    expect(deltaUsage(res.body)).toEqual(FIXED)
    await waitFor(() => gateway.records.length === 1, 'the record')
    expect(gateway.records[0]).toMatchObject({ status: 'complete', httpStatus: 200, final: true })
    expect(gateway.records[0]!.usage).toMatchObject({ input: 2048, cacheRead: 30433, cacheWrite: 287, output: 512 })
  })

  it('a whole JSON body is rewritten and sent with its new length', async () => {
    const gateway = await start()
    const res = await post(gateway.origin, '/v1/chat/completions', '{"model":"gpt-x"}')
    const usage = JSON.parse(res.body).usage
    expect(usage.prompt_tokens).toBe(5200)
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body))
    await waitFor(() => gateway.records.length === 1, 'the record')
    expect(gateway.records[0]).toMatchObject({ status: 'complete', usage: { input: 200, cacheRead: 5000 } })
  })

  it.each(['slow', 'raw-slow'] as const)(
    'a client that resets its stream mid-response (%s) is recorded as aborted',
    async (kind) => {
      const gateway = await start()
      await cancelAfterFirstBytes(gateway.origin, `/v1/messages?body=${kind}`)
      await waitFor(() => gateway.records.length === 1, 'the record')
      await sleep(100) // no second record comes
      expect(gateway.records.map((record) => record.status)).toEqual(['aborted'])
    },
  )

  it('a body the gateway cuts is recorded as incomplete, not as the client leaving', async () => {
    const gateway = await start()
    // Not awaited: Koa 2 leaves an HTTP/2 client waiting after a body error, with usagewire or without.
    const session = http2.connect(gateway.origin)
    session.on('error', () => {})
    session
      .request({ ':method': 'POST', ':path': '/v1/messages?body=cut' })
      .on('error', () => {})
      .end('{}')
    await waitFor(() => gateway.records.length === 1, 'the record')
    session.destroy()
    expect(gateway.records.map((record) => record.status)).toEqual(['incomplete'])
    expect(gateway.records[0]!.error).toMatch(/upstream reset|destroyed|premature/i)
  })
})

describe.each(FASTIFY)('%s over HTTP/2 with @fastify/http-proxy to an HTTP/1.1 provider', (_, fastify, proxy) => {
  let upstream: Upstream
  it('streams the provider answer rewritten, and a reset by the client is aborted', async () => {
    upstream = await startUpstream()
    closers.push(() => upstream.close())
    upstream.reply = () => ({ headers: SSE_HEADERS, chunks: EVENTS, delayMs: 20 })
    const records: UsageRecord[] = []
    const app: FastifyInstance = fastify({ http2: true }) as unknown as FastifyInstance
    await app.register(fastifyUsagewire, { onUsage: (record) => void records.push(record) })
    await app.register(proxy, { upstream: upstream.url, prefix: '/v1', rewritePrefix: '/v1', http2: false })
    await app.listen({ port: 0, host: '127.0.0.1' })
    closers.push(() => app.close())
    const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

    const res = await post(origin, '/v1/messages')
    expect(deltaUsage(res.body)).toEqual(FIXED)
    await waitFor(() => records.length === 1, 'the first record')
    expect(records[0]).toMatchObject({ status: 'complete', final: true })

    await cancelAfterFirstBytes(origin, '/v1/messages')
    await waitFor(() => records.length === 2, 'the second record')
    expect(records[1]!.status).toBe('aborted')
  })
})

describe.each(KOAS)('%s over HTTP/2 behind koa-compress', (_, KoaClass) => {
  /** A gzip-accepting request; what the client decoded, and in how many pieces it arrived. */
  async function gzipped(origin: string): Promise<{ encoding: unknown; text: string; pieces: number }> {
    const session = http2.connect(origin)
    try {
      return await new Promise((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/v1/messages', 'accept-encoding': 'gzip' })
        const gunzip = zlib.createGunzip()
        let encoding: unknown
        let text = ''
        let pieces = 0
        gunzip.on('data', (data: Buffer) => {
          text += data.toString()
          pieces++
        })
        gunzip.on('end', () => resolve({ encoding, text, pieces }))
        req.on('response', (headers) => (encoding = headers['content-encoding']))
        req.on('error', reject)
        req.pipe(gunzip)
        req.end('{"model":"claude-x","stream":true}')
      })
    } finally {
      session.close()
    }
  }

  it('sends the rewritten stream compressed, event by event, and a reset by the client is aborted', async () => {
    const records: UsageRecord[] = []
    const app = new KoaClass()
    app.on('error', () => {}) // Koa reports the client's reset as "Premature close"; the record tells it
    app.use(compress({ threshold: 0, gzip: { flush: zlib.constants.Z_SYNC_FLUSH } }))
    app.use(koaUsagewire({ onUsage: (record) => void records.push(record) }))
    app.use(async (ctx) => {
      ctx.type = 'text/event-stream'
      ctx.body = Readable.from(slowEvents())
    })
    const server = http2.createServer(app.callback())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    closers.push(() => new Promise((resolve) => server.close(resolve)))
    const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`

    const res = await gzipped(origin)
    expect(res.encoding).toBe('gzip')
    expect(deltaUsage(res.text)).toEqual(FIXED)
    expect(res.pieces).toBe(EVENTS.length) // one flush per event: none waits in the compressor
    await waitFor(() => records.length === 1, 'the first record')
    expect(records[0]!.status).toBe('complete')

    await cancelAfterFirstBytes(origin, '/v1/messages')
    await waitFor(() => records.length === 2, 'the second record')
    expect(records[1]!.status).toBe('aborted')
  })
})
