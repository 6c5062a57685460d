/**
 * Shared rig for the Koa tests: a Koa 2 or Koa 3 gateway exactly as a user writes it (middleware before
 * usagewire, `app.use(usagewire(...))`, then the handler or proxy), a raw client that sees the bytes as
 * sent, and small readers for streamed bodies. The mock upstream and the wire builders are the matrix's
 * (test/matrix/upstream.ts). Everything binds 127.0.0.1 on an ephemeral port.
 */
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders, type Server } from 'node:http'
import { createRequire } from 'node:module'
import Koa from 'koa'
import { usagewire, type UsageRecord, type UsagewireMiddleware, type UsagewireOptions } from '@usagewire/koa'
import { listen, shut, waitFor } from '../matrix/upstream.js'

const require = createRequire(import.meta.url)
/** Koa 2, installed under the alias `koa2`; its API used here is Koa 3's. */
export const Koa2 = require('koa2') as typeof Koa

/** Every Koa major the peer range covers: each test that does not depend on one runs on both. */
export const KOAS = [
  ['Koa 3', Koa],
  ['Koa 2', Koa2],
] as const

export interface Rig {
  url: string
  app: Koa
  middleware: UsagewireMiddleware
  records: UsageRecord[]
  /** Errors Koa reported through `app.on('error')`. */
  errors: unknown[]
  /** Resolves with the `n`-th record (1-based). */
  record(n?: number): Promise<UsageRecord>
}

const servers: Server[] = []

/** Closes every gateway started since the last call (each test file runs it in afterEach). */
export async function closeGateways(): Promise<void> {
  await Promise.all(servers.splice(0).map((server) => shut(server)))
}

export interface GatewaySpec {
  /** Mounted before usagewire (koa-compress, an error handler, a body parser). */
  before?: Koa.Middleware[]
  /** Mounted after usagewire: the handler or proxy that produces the response. */
  after: Koa.Middleware[]
  options?: UsagewireOptions
}

export async function startGateway(App: typeof Koa, { before = [], after, options = {} }: GatewaySpec): Promise<Rig> {
  const records: UsageRecord[] = []
  const errors: unknown[] = []
  const app = new App()
  app.on('error', (error: unknown) => errors.push(error))
  for (const middleware of before) app.use(middleware)
  const middleware = usagewire({
    ...options,
    onUsage: (record) => {
      records.push(record)
      return options.onUsage?.(record)
    },
  })
  app.use(middleware)
  for (const handler of after) app.use(handler)
  const server = http.createServer(app.callback())
  servers.push(server)
  const url = await listen(server)
  return { url, app, middleware, records, errors, record: (n = 1) => waitFor(() => records[n - 1], `record #${n}`) }
}

/** A body parser as koa-bodyparser is one: `ctx.request.body` holds the parsed JSON request. */
export const parseJson: Koa.Middleware = async (ctx, next) => {
  const parts: Buffer[] = []
  for await (const part of ctx.req) parts.push(part as Buffer)
  const text = Buffer.concat(parts).toString('utf8')
  ;(ctx.request as { body?: unknown }).body = text ? JSON.parse(text) : {}
  await next()
}

export interface RawResponse {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/** One request; the response exactly as sent (no decoding). */
export function rawRequest(
  url: string,
  { method = 'POST', headers = {}, body }: { method?: string; headers?: OutgoingHttpHeaders; body?: string } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (part: Buffer) => parts.push(part))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** A JSON POST, as the SDKs send one. */
export const postJson = (url: string, body: unknown, headers: OutgoingHttpHeaders = {}) =>
  rawRequest(url, {
    headers: { 'content-type': 'application/json', 'accept-encoding': 'identity', ...headers },
    body: JSON.stringify(body),
  })

/** Cuts an SSE body into `{ name, data }` events (enough for the bodies these tests produce). */
export function parseSse(text: string): Array<{ name: string | undefined; data: string }> {
  return text
    .split(/\r?\n\r?\n/)
    .filter((block) => block.trim() !== '')
    .map((block) => {
      let name: string | undefined
      const data: string[] = []
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith('event:')) name = line.slice(6).trim()
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
      }
      return { name, data: data.join('\n') }
    })
}

/** The parsed `usage` of the first event named `name`. */
export const usageOf = (text: string, name: string): Record<string, unknown> =>
  JSON.parse(parseSse(text).find((event) => event.name === name)!.data).usage

/** Reads from `reader` until `done(text)` holds; returns the text read so far. */
export async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  done: (text: string) => boolean,
  sofar = '',
): Promise<string> {
  const decoder = new TextDecoder()
  let text = sofar
  while (!done(text)) {
    const { value, done: eof } = await reader.read()
    if (eof) throw new Error(`the stream ended before the condition held; got: ${text}`)
    text += decoder.decode(value, { stream: true })
  }
  return text
}

/** Reads `reader` to its end; returns all the text, starting with `sofar`. */
export async function readAll(reader: ReadableStreamDefaultReader<Uint8Array>, sofar = ''): Promise<string> {
  const decoder = new TextDecoder()
  let text = sofar
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return text + decoder.decode()
    text += decoder.decode(value, { stream: true })
  }
}
