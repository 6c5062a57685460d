/**
 * What every example gateway shares: its options, where each route goes, and reading real upstreams
 * from the environment. Each `<framework>-gateway/gateway.ts` holds only its framework's own lines.
 */
import type { SinkLike, UsageRecord } from '@usagewire/core'

export type GatewayLogger = Pick<Console, 'info' | 'warn' | 'error'>

export interface GatewayOptions {
  /** Where every route goes unless overridden below (Bedrock's and Gemini's too), e.g. the embedded mock's URL. */
  upstream: string
  /** Base URL for `POST /v1/messages` (Anthropic), e.g. https://api.anthropic.com. */
  anthropicUpstream?: string | undefined
  /** Base URL for `/v1/chat/completions` and `/v1/responses`, e.g. https://api.openai.com/v1. */
  openaiUpstream?: string | undefined
  onUsage: (record: UsageRecord) => void
  /** More sinks beside the gateway's own Prometheus one (e.g. the Postgres ledger start.ts adds). */
  sinks?: SinkLike[]
  log?: GatewayLogger
}

/** Reads ANTHROPIC_UPSTREAM / OPENAI_UPSTREAM (base URLs; a trailing /v1 is fine). */
export function upstreamsFromEnv(env: NodeJS.ProcessEnv = process.env) {
  return { anthropicUpstream: env.ANTHROPIC_UPSTREAM || undefined, openaiUpstream: env.OPENAI_UPSTREAM || undefined }
}

/**
 * The path prefixes the gateways forward: /v1 (Anthropic, OpenAI), /v1beta (the Gemini API) and /model
 * (Bedrock InvokeModel). Anything else is answered by the gateway itself (404).
 */
export const FORWARDED_PREFIXES = ['/v1', '/v1beta', '/model'] as const

/**
 * Client paths are forwarded as they are, so an upstream is an origin: `https://api.openai.com/v1` (how OpenAI base URLs are usually written) becomes
 * `https://api.openai.com`, or every path would start with /v1/v1.
 */
export function originOf(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '')
}

/** The upstream origins, and which one a request path (query string allowed) goes to. */
export function upstreamRouter(opts: GatewayOptions): { fallback: string; targetFor(url: string): string } {
  const fallback = originOf(opts.upstream)
  const anthropic = opts.anthropicUpstream ? originOf(opts.anthropicUpstream) : fallback
  const openai = opts.openaiUpstream ? originOf(opts.openaiUpstream) : fallback
  return {
    fallback,
    targetFor(url) {
      const path = url.split('?')[0] ?? ''
      if (path === '/v1/messages') return anthropic
      if (path === '/v1/chat/completions' || path === '/v1/responses') return openai
      return fallback
    },
  }
}
