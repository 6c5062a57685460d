/**
 * The one seam between the conformance matrix and an adapter: a driver starts a gateway exactly as a
 * user of that framework would write it (usagewire mounted in the framework's own idiom, in front of a
 * proxy to `upstream`), on 127.0.0.1 and an ephemeral port. The matrix (./matrix.test.ts) runs every
 * scenario unchanged against every driver in ./drivers/index.ts.
 */
import type { UsagewireOptions } from '@usagewire/core'

export interface GatewayOptions {
  /** Base URL of the upstream, e.g. http://127.0.0.1:40123 ; the gateway forwards every path under it. */
  upstream: string
  /** Passed to the adapter's usagewire(...) unchanged. */
  usagewire: UsagewireOptions
  /** Mount the framework's own compression middleware in front of usagewire (`compression`, `koa-compress`, `@fastify/compress`). */
  compress?: boolean
}

export interface Gateway {
  /** http://127.0.0.1:<port> */
  url: string
  close(): Promise<void>
}

export interface Driver {
  /** Row label in the matrix, e.g. 'express 5', 'koa 3 (ctx.body)', 'fastify 5 (@fastify/http-proxy)'. */
  name: string
  /** Which adapter package this row exercises. */
  adapter: 'express' | 'koa' | 'fastify' | 'http-proxy-middleware'
  start(options: GatewayOptions): Promise<Gateway>
  /**
   * false when the framework's compression cannot reach this gateway's responses (koa-compress compresses
   * `ctx.body`; koa-proxies writes `ctx.res` itself): the compression scenarios then check that events
   * still leave one by one and that the body is not encoded. Default true.
   */
  compresses?: boolean
}
