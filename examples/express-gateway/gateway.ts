/**
 * The smallest useful LLM gateway: Express + usagewire + http-proxy-middleware.
 *
 * usagewire is mounted before the proxy so it sees the proxied response on its way out; it
 * rewrites the usage blocks the client reads and hands one record per request to `onUsage`.
 * Credentials are not the gateway's business: the client's own `x-api-key` / `authorization`
 * headers pass through to the provider unchanged.
 */
import express, { type Express } from 'express'
import { createProxyMiddleware, fixRequestBody } from 'http-proxy-middleware'
import type { IncomingMessage } from 'node:http'
import type { UsageRecord } from '@usagewire/core'
import { usagewire } from '@usagewire/express'

export type GatewayLogger = Pick<Console, 'info' | 'warn' | 'error'>

export interface GatewayOptions {
  /** Where every route goes unless overridden below, e.g. the embedded mock's URL. */
  upstream: string
  /** Base URL for `POST /v1/messages` (Anthropic), e.g. https://api.anthropic.com. */
  anthropicUpstream?: string | undefined
  /** Base URL for `/v1/chat/completions` and `/v1/responses`, e.g. https://api.openai.com/v1. */
  openaiUpstream?: string | undefined
  onUsage: (record: UsageRecord) => void
  log?: GatewayLogger
}

/** Reads ANTHROPIC_UPSTREAM / OPENAI_UPSTREAM (base URLs; a trailing /v1 is fine). */
export function upstreamsFromEnv(env: NodeJS.ProcessEnv = process.env) {
  return { anthropicUpstream: env.ANTHROPIC_UPSTREAM || undefined, openaiUpstream: env.OPENAI_UPSTREAM || undefined }
}

/**
 * Client paths always start with /v1 and are forwarded as they are, so an upstream is an
 * origin: `https://api.openai.com/v1` (how OpenAI base URLs are usually written) becomes
 * `https://api.openai.com`, or every path would start with /v1/v1.
 */
export function originOf(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '')
}

export function createGateway(opts: GatewayOptions): Express {
  const fallback = originOf(opts.upstream)
  const anthropic = opts.anthropicUpstream ? originOf(opts.anthropicUpstream) : fallback
  const openai = opts.openaiUpstream ? originOf(opts.openaiUpstream) : fallback
  const targetFor = (req: IncomingMessage): string => {
    const path = (req.url ?? '').split('?')[0] ?? ''
    if (path === '/v1/messages') return anthropic
    if (path === '/v1/chat/completions' || path === '/v1/responses') return openai
    return fallback
  }

  const app = express()
  app.disable('x-powered-by')
  app.use('/v1', usagewire({ onUsage: opts.onUsage, ...(opts.log ? { logger: opts.log } : {}) }))
  // Mounted at the root with a pathFilter, not at '/v1': Express strips a mount path from
  // req.url, and the upstream must see the full /v1/... path.
  app.use(
    createProxyMiddleware({
      pathFilter: '/v1/',
      target: fallback,
      router: targetFor,
      changeOrigin: true,
      ...(opts.log ? { logger: opts.log } : {}),
      // Re-sends a body that something before the proxy has already read and parsed.
      on: { proxyReq: fixRequestBody },
    }),
  )
  return app
}
