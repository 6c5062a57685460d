/**
 * Fastify gateways as their users write them: `fastify.register(usagewire, options)` in front of
 * @fastify/http-proxy or of a catch-all route answered by @fastify/reply-from, on Fastify 5 and 4 (each
 * with the plugin majors that support it), optionally with @fastify/compress. The Fastify tests
 * (test/fastify) start the same gateways.
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import zlib from 'node:zlib'
import Fastify5 from 'fastify'
import Fastify4 from 'fastify4'
import compress5 from '@fastify/compress'
import proxy5 from '@fastify/http-proxy'
import replyFrom5 from '@fastify/reply-from'
import compress4 from 'fastify4-compress'
import proxy4 from 'fastify4-http-proxy'
import replyFrom4 from 'fastify4-reply-from'
import { usagewire } from '@usagewire/fastify'
import type { Driver, Gateway, GatewayOptions } from '../driver.js'

export type FastifyMajor = 4 | 5
export type FastifyProxy = 'http-proxy' | 'reply-from'

/**
 * The part of a Fastify instance these gateways use, the same for both majors (each major's own types
 * name its own instance, so one signature serves both here).
 */
export interface LooseFastify {
  register(plugin: unknown, options?: unknown): unknown
  addContentTypeParser(type: string, parser: (req: unknown, payload: unknown, done: Done) => void): void
  all(path: string, handler: (request: LooseRequest, reply: LooseReply) => unknown): unknown
  listen(options: { port: number; host: string }): Promise<string>
  close(): Promise<unknown>
  readonly server: Server
}
type Done = (error: Error | null, body?: unknown) => void
interface LooseRequest {
  url: string
}
interface LooseReply {
  from(url: string): unknown
}

const MAJORS = {
  5: { fastify: Fastify5, compress: compress5, proxy: proxy5, replyFrom: replyFrom5 },
  4: { fastify: Fastify4, compress: compress4, proxy: proxy4, replyFrom: replyFrom4 },
} as const

/**
 * @fastify/compress leaves text/event-stream alone unless told otherwise; a gateway that wants its SSE
 * compressed adds it to `customTypes` (other types still go by mime-db) and makes zlib flush after each
 * write, or every event would wait in the compression window (docs/transport.md#event-by-event-delivery).
 */
export const COMPRESS_SSE = {
  customTypes: /^text\/event-stream(?:;|$)/,
  zlibOptions: { flush: zlib.constants.Z_SYNC_FLUSH },
  brotliOptions: { flush: zlib.constants.BROTLI_OPERATION_FLUSH },
}

export interface FastifyGatewayOptions extends GatewayOptions {
  major: FastifyMajor
  proxy: FastifyProxy
  /** The options of @fastify/compress when `compress` is set; default {@link COMPRESS_SSE}. */
  compressOptions?: Record<string, unknown>
}

/** Starts a Fastify gateway on 127.0.0.1 and an ephemeral port. */
export async function startFastifyGateway(options: FastifyGatewayOptions): Promise<Gateway> {
  const peers = MAJORS[options.major]
  // Streams still open when a test ends (a held upstream) must not keep close() waiting.
  const app = (peers.fastify as unknown as (options: object) => LooseFastify)({ forceCloseConnections: true })
  // @fastify/compress adds its onSend hook to each route, so it runs after usagewire's whatever the order
  // of registration; it is registered first here as a user who wants compression "in front" would.
  // Awaited, as Fastify's docs write it: a route declared at the top level meets the onRoute hooks of
  // the plugins loaded before it (@fastify/compress attaches itself to routes there).
  if (options.compress) await app.register(peers.compress, options.compressOptions ?? COMPRESS_SSE)
  await app.register(usagewire, options.usagewire)
  if (options.proxy === 'http-proxy') {
    await app.register(peers.proxy, { upstream: options.upstream })
  } else {
    await app.register(peers.replyFrom, { base: options.upstream })
    // JSON is parsed (so the record learns the requested model); any other body is forwarded as it came.
    app.addContentTypeParser('*', (_req, payload, done) => done(null, payload))
    app.all('/*', (request, reply) => reply.from(request.url))
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    close: async () => {
      await app.close()
    },
  }
}

const driver = (name: string, major: FastifyMajor, proxy: FastifyProxy): Driver => ({
  name,
  adapter: 'fastify',
  start: (options) => startFastifyGateway({ ...options, major, proxy }),
})

/** Matrix rows for @usagewire/fastify. */
export const drivers: Driver[] = [
  driver('fastify 5 (@fastify/http-proxy)', 5, 'http-proxy'),
  driver('fastify 5 (@fastify/reply-from)', 5, 'reply-from'),
  driver('fastify 4 (@fastify/http-proxy)', 4, 'http-proxy'),
]
