/**
 * The broken translating gateways: one thin shell per framework around the shared core (translate.ts).
 * Express, Koa and Fastify call the provider with global fetch and write the translated SSE as each
 * framework does (raw writes, a stream body); the http-proxy-middleware gateway rewrites the proxied
 * request and translates the proxied response itself (`selfHandleResponse`). usagewire is mounted as the
 * example gateways mount it (examples/*-gateway/gateway.ts); the upstream tap is the caller's to install.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { PassThrough } from 'node:stream'
import express from 'express'
import Koa from 'koa'
import Fastify from 'fastify'
import { createProxyMiddleware } from 'http-proxy-middleware'
import type { UsageRecord, UsagewireOptions } from '@usagewire/core'
import { usagewire as expressUsagewire } from '@usagewire/express'
import { usagewire as koaUsagewire } from '@usagewire/koa'
import { usagewire as fastifyUsagewire } from '@usagewire/fastify'
import { usagewire as hpmUsagewire } from '@usagewire/http-proxy-middleware'
import { listen, shut } from '../matrix/upstream.js'
import type { GatewayAdapter, UpstreamKind } from './common.js'
import { relayStream, translateBody, upstreamCall, type ClientSink, type MessagesRequest } from './translate.js'

interface TranslatorOptions {
  adapter: GatewayAdapter
  upstream: UpstreamKind
  providerUrl: string
  usagewire?: UsagewireOptions
}

export interface Translator {
  url: string
  records: UsageRecord[]
  close(): Promise<void>
}

const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }

const isMessages = (url: string | undefined): boolean => url?.split('?')[0] === '/v1/messages'

/** The provider's answer to the call `request` translates into (fetch: undici). */
async function callProvider(options: TranslatorOptions, request: MessagesRequest): Promise<Response> {
  const call = upstreamCall(options.upstream, request)
  const response = await fetch(options.providerUrl + call.path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(call.body),
  })
  if (!response.ok || !response.body) throw new Error(`provider answered ${response.status}`)
  return response
}

const bodyOf = (response: Response) => response.body as unknown as AsyncIterable<Uint8Array>

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of stream) parts.push(Buffer.from(part as Uint8Array))
  return Buffer.concat(parts)
}

/** A response written directly, left alone once it is destroyed (the client left). */
const responseSink = (res: ServerResponse): ClientSink => ({
  write: (text) => void (res.destroyed || res.write(text)),
  end: () => void (res.destroyed || res.end()),
})

/** A stream body that ignores writes once the framework has let go of it (the client left). */
function streamSink(stream: PassThrough): ClientSink {
  return {
    write: (text) => void (stream.destroyed || stream.write(text)),
    end: () => void (stream.destroyed || stream.end()),
  }
}

function expressGateway(options: TranslatorOptions, usagewire: UsagewireOptions | undefined): http.Server {
  const app = express()
  if (usagewire) app.use(expressUsagewire(usagewire))
  app.use(express.json({ limit: '10mb' })) // Claude Code sends 50–80 KB of tools and context
  app.post('/v1/messages', async (req, res) => {
    const request = req.body as MessagesRequest
    const response = await callProvider(options, request)
    if (!request.stream) {
      res.json(translateBody(options.upstream, request.model, await readAll(bodyOf(response))))
      return
    }
    res.writeHead(200, SSE_HEADERS)
    await relayStream(options.upstream, request.model, bodyOf(response), responseSink(res))
  })
  return http.createServer(app)
}

function koaGateway(options: TranslatorOptions, usagewire: UsagewireOptions | undefined): http.Server {
  const app = new Koa()
  app.silent = true // a client that leaves mid-stream is no error to print
  if (usagewire) app.use(koaUsagewire(usagewire))
  app.use(async (ctx) => {
    if (ctx.method !== 'POST' || ctx.path !== '/v1/messages') return void (ctx.status = 404)
    const request = JSON.parse((await readAll(ctx.req)).toString('utf8')) as MessagesRequest
    // Where a body parser leaves it, for usagewire to read the model and the stream flag.
    ;(ctx.request as { body?: unknown }).body = request
    const response = await callProvider(options, request)
    if (!request.stream) {
      ctx.body = translateBody(options.upstream, request.model, await readAll(bodyOf(response)))
      return
    }
    const stream = new PassThrough()
    ctx.set(SSE_HEADERS)
    ctx.body = stream
    void relayStream(options.upstream, request.model, bodyOf(response), streamSink(stream))
  })
  return http.createServer(app.callback())
}

async function fastifyGateway(options: TranslatorOptions, usagewire: UsagewireOptions | undefined) {
  // Streams still open at shutdown (a client mid-answer) must not keep close() waiting.
  const app = Fastify({ forceCloseConnections: true })
  if (usagewire) await app.register(fastifyUsagewire, usagewire)
  app.post('/v1/messages', async (req, reply) => {
    const request = req.body as MessagesRequest
    const response = await callProvider(options, request)
    if (!request.stream) return translateBody(options.upstream, request.model, await readAll(bodyOf(response)))
    const stream = new PassThrough()
    void relayStream(options.upstream, request.model, bodyOf(response), streamSink(stream))
    return reply.headers(SSE_HEADERS).send(stream)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, close: () => app.close() }
}

/**
 * node:http + http-proxy-middleware: the request is rewritten on its way (path and body), and the
 * provider's response is translated in `on.proxyRes` onto the client's response.
 */
function hpmGateway(options: TranslatorOptions, usagewire: UsagewireOptions | undefined): http.Server {
  type Req = IncomingMessage & { body?: MessagesRequest }
  const proxy = createProxyMiddleware<Req, ServerResponse>({
    target: options.providerUrl,
    changeOrigin: true,
    selfHandleResponse: true,
    plugins: usagewire ? [hpmUsagewire(usagewire)] : [],
    on: {
      proxyReq: (proxyReq, req) => {
        const call = upstreamCall(options.upstream, req.body!)
        const data = JSON.stringify(call.body)
        proxyReq.path = call.path
        for (const name of ['x-api-key', 'authorization', 'anthropic-version', 'anthropic-beta'])
          proxyReq.removeHeader(name)
        proxyReq.setHeader('content-type', 'application/json')
        proxyReq.setHeader('content-length', Buffer.byteLength(data))
        proxyReq.write(data)
      },
      proxyRes: (proxyRes, req, res) => {
        const { model, stream } = req.body!
        if (!stream) {
          void readAll(proxyRes).then(
            (raw) => {
              const data = JSON.stringify(translateBody(options.upstream, model, raw))
              res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) })
              res.end(data)
            },
            () => res.destroy(),
          )
          return
        }
        res.writeHead(200, SSE_HEADERS)
        void relayStream(options.upstream, model, proxyRes, responseSink(res))
      },
    },
  })
  return http.createServer(async (req: Req, res) => {
    if (req.method !== 'POST' || !isMessages(req.url)) return void res.writeHead(404).end()
    req.body = JSON.parse((await readAll(req)).toString('utf8')) as MessagesRequest
    void proxy(req, res, () => {
      if (res.headersSent) return void res.destroy()
      res.writeHead(502, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ type: 'error', error: { type: 'api_error', message: 'gateway error' } }))
    })
  })
}

/**
 * A deliberately broken translating gateway: Anthropic Messages in (POST /v1/messages, streaming and not,
 * whatever the query string), the upstream wire out to `providerUrl`, Anthropic Messages back with that
 * translator's bugs (translate.ts). With `usagewire` set, the adapter's usagewire middleware/plugin is
 * mounted with those options (records collected in `records`); the caller installs the tap itself with
 * tapUpstream().
 */
export async function startTranslator(options: TranslatorOptions): Promise<Translator> {
  const records: UsageRecord[] = []
  const usagewire = options.usagewire && {
    ...options.usagewire,
    onUsage: (record: UsageRecord) => {
      records.push(record)
      return options.usagewire?.onUsage?.(record)
    },
  }
  if (options.adapter === 'fastify') return { records, ...(await fastifyGateway(options, usagewire)) }
  const server =
    options.adapter === 'express'
      ? expressGateway(options, usagewire)
      : options.adapter === 'koa'
        ? koaGateway(options, usagewire)
        : hpmGateway(options, usagewire)
  return { url: await listen(server), records, close: () => shut(server) }
}
