/** The types and constants the provider, the translators and their tests share (see index.ts). */

/** Canonical, disjoint buckets: Anthropic's meaning, input excludes cache reads and writes. */
export interface Truth {
  input: number
  cacheRead: number
  cacheWrite: number
  output: number
}

export type UpstreamKind = 'bedrock-converse' | 'openai-responses' | 'openai-chat'
export type GatewayAdapter = 'express' | 'koa' | 'fastify' | 'http-proxy-middleware'

export const UPSTREAMS: readonly UpstreamKind[] = ['bedrock-converse', 'openai-responses', 'openai-chat']
export const GATEWAY_ADAPTERS: readonly GatewayAdapter[] = ['express', 'koa', 'fastify', 'http-proxy-middleware']

/** What the provider answers every call with, and the deltas it streams it in. */
export const TEXT_DELTAS: readonly string[] = ['Hello', ' from', ' the', ' provider.']
export const TEXT = TEXT_DELTAS.join('')

/**
 * Models that make the provider cut its connection (it destroys the socket) part-way: the translators
 * pass the client's model on (in the Bedrock path, in the OpenAI body), so a client picks a fault by
 * naming its model.
 * - `afterFirstDelta`: right after the first text delta;
 * - `beforeUsage`: after the text and the stop, before the usage (Bedrock's `metadata` frame, the Responses
 *   `response.completed` event, the Chat usage chunk).
 */
export const FAULT_MODELS = {
  afterFirstDelta: 'fault-cut-after-first-delta',
  beforeUsage: 'fault-cut-before-usage',
} as const
