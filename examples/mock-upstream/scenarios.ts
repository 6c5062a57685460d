/**
 * The mock upstream's scenarios: for each, the usage it really represents (`truth`, in canonical
 * disjoint buckets) and the bytes an upstream sends for it. A client picks one with the model it asks
 * for (the request's `model` field; for Bedrock and Gemini the model in the path) or an
 * `x-mock-scenario` header; an unknown model gets the dialect's `healthy`.
 *
 * The non-healthy scenarios reproduce what translating gateways put on the wire; each names the
 * bug it comes from (its row in docs/peer-bugs.md).
 */
import {
  anthropicMessage,
  anthropicStream,
  deltaUsage,
  fullUsage,
  startUsage,
  type AnthropicBody,
} from './anthropic.js'
import { bedrockStream, invocationMetrics, type BedrockBody } from './bedrock.js'
import { geminiResponse, geminiSnapshots, geminiStream, geminiUsage, type GeminiBody } from './gemini.js'
import { chatCompletion, chatStream, chatUsage, type ChatBody } from './openai-chat.js'
import { responsesBody, responsesStream, responsesUsage, type ResponsesBody } from './openai-responses.js'
import type { MockDialect, RequestContext, TrueUsage } from './types.js'

export interface Scenario {
  name: string
  dialect: MockDialect
  /** One line: what the upstream gets wrong (or right), and where that was seen. */
  about: string
  truth: TrueUsage
  /**
   * The streamed body in pieces, each written on its own: SSE events ending in a blank line, AWS
   * event stream messages (Bedrock), or the pieces of a JSON array (Gemini without `alt=sse`).
   */
  stream(ctx: RequestContext): Array<string | Uint8Array>
  /** The non-streaming body. */
  json(ctx: RequestContext): unknown
}

const TEXT = 'Token usage belongs on the wire: complete, consistent, and exactly once.'

function anthropic(
  name: string,
  about: string,
  truth: TrueUsage,
  body: (t: TrueUsage) => Omit<AnthropicBody, 'text'>,
): Scenario {
  const full = { text: TEXT, ...body(truth) }
  return {
    name,
    dialect: 'anthropic-messages',
    about,
    truth,
    stream: (ctx) => anthropicStream(ctx, full),
    // Translators break the stream; their non-streaming path passes the provider's body through
    // (the Headroom → Bedrock report, docs/peer-bugs.md row 1: "The non-streaming path does not have
    // this issue").
    json: (ctx) => anthropicMessage(ctx, { text: TEXT, usage: fullUsage(truth) }),
  }
}

function chat(name: string, about: string, truth: TrueUsage, body: (t: TrueUsage) => Omit<ChatBody, 'text'>): Scenario {
  const full = { text: TEXT, ...body(truth) }
  return {
    name,
    dialect: 'openai-chat',
    about,
    truth,
    stream: (ctx) => chatStream(ctx, full),
    json: (ctx) => chatCompletion(ctx, full),
  }
}

function responses(
  name: string,
  about: string,
  truth: TrueUsage,
  body: (t: TrueUsage) => Omit<ResponsesBody, 'text'>,
): Scenario {
  const full = { text: TEXT, ...body(truth) }
  return {
    name,
    dialect: 'openai-responses',
    about,
    truth,
    stream: (ctx) => responsesStream(ctx, full),
    json: (ctx) => responsesBody(ctx, full),
  }
}

function bedrock(
  name: string,
  about: string,
  truth: TrueUsage,
  body: (t: TrueUsage) => Omit<BedrockBody, 'text'>,
): Scenario {
  const full = { text: TEXT, ...body(truth) }
  return {
    name,
    dialect: 'bedrock-invoke',
    about,
    truth,
    stream: (ctx) => bedrockStream(ctx, full),
    json: (ctx) => anthropicMessage(ctx, { text: TEXT, usage: fullUsage(truth) }),
  }
}

function gemini(
  name: string,
  about: string,
  truth: TrueUsage,
  body: (t: TrueUsage) => Omit<GeminiBody, 'text'>,
): Scenario {
  const full = { text: TEXT, ...body(truth) }
  return {
    name,
    dialect: 'gemini',
    about,
    truth,
    stream: (ctx) => geminiStream(ctx, full),
    json: (ctx) => geminiResponse(ctx, full),
  }
}

/** The Anthropic-named cache counters a translator copies onto an OpenAI-shaped usage object. */
function anthropicCacheFields(t: TrueUsage) {
  return { cache_read_input_tokens: t.cacheRead, cache_creation_input_tokens: t.cacheWrite }
}

export const scenarios: readonly Scenario[] = [
  // ── Anthropic Messages ────────────────────────────────────────────────────────────────────
  anthropic(
    'healthy',
    'First-party Anthropic: full usage on message_start (output 1 so far), cumulative totals on message_delta.',
    { input: 1234, cacheRead: 61711, cacheWrite: 407, cacheWrite5m: 407, cacheWrite1h: 0, output: 291, reasoning: 0 },
    (t) => ({ usage: startUsage(t), deltaUsages: [deltaUsage(t)] }),
  ),
  anthropic(
    'anthropic-zero-start',
    'Translating gateway: message_start usage is a template of zeros, totals only on message_delta ' +
      '(Headroom → Bedrock, Portkey/LiteLLM templates; docs/peer-bugs.md rows 1, 28, 30). ' +
      'Clients that read input from message_start (Claude Code) report 0.',
    // The "direct to Bedrock" numbers of the Headroom → Bedrock report (docs/peer-bugs.md row 1).
    { input: 1, cacheRead: 61711, cacheWrite: 407, cacheWrite5m: 407, cacheWrite1h: 0, output: 291, reasoning: 0 },
    (t) => ({
      usage: {
        input_tokens: 0,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
        output_tokens: 0,
        service_tier: 'standard',
      },
      deltaUsages: [deltaUsage(t)],
    }),
  ),
  anthropic(
    'anthropic-delta-zeros',
    'message_start is right, but message_delta writes input and cache as 0 (a translator filling ' +
      '"unknown" with 0); the SDK overwrites on presence, so the client ends with 0 (docs/peer-bugs.md row 31).',
    { input: 2048, cacheRead: 30433, cacheWrite: 287, cacheWrite5m: 287, cacheWrite1h: 0, output: 512, reasoning: 0 },
    (t) => ({
      usage: startUsage(t),
      deltaUsages: [
        { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: t.output },
      ],
    }),
  ),
  anthropic(
    'anthropic-delta-output-only',
    'message_start carries input and cache, message_delta only output_tokens (allowed by the API; ' +
      'docs/peer-bugs.md rows 14, 29). @anthropic-ai/sdk 0.50.0–0.50.3 then erase the cache counters ' +
      '(docs/dialects/anthropic-messages.md#how-sdks-accumulate).',
    { input: 3, cacheRead: 18250, cacheWrite: 1502, cacheWrite5m: 0, cacheWrite1h: 1502, output: 87, reasoning: 0 },
    (t) => ({ usage: startUsage(t), deltaUsages: [{ output_tokens: t.output }] }),
  ),

  // ── OpenAI Chat Completions ───────────────────────────────────────────────────────────────
  chat(
    'healthy',
    'OpenAI: "usage": null on every chunk, one choices:[] usage chunk before [DONE] when ' +
      'stream_options.include_usage is set; prompt_tokens includes cached_tokens.',
    { input: 86, cacheRead: 1920, cacheWrite: 0, output: 300, reasoning: 0 },
    (t) => ({ usage: chatUsage(t) }),
  ),
  chat(
    'chat-anthropic-fields',
    'Anthropic upstream translated to Chat: cache only in cache_read_input_tokens / ' +
      'cache_creation_input_tokens, prompt_tokens excludes cache while total_tokens includes it ' +
      '(docs/peer-bugs.md rows 5, 21: LiteLLM #27763, Portkey PR #1754).',
    { input: 1234, cacheRead: 61711, cacheWrite: 407, output: 291, reasoning: 0 },
    (t) => ({
      usage: {
        prompt_tokens: t.input,
        completion_tokens: t.output,
        total_tokens: t.input + t.cacheRead + t.cacheWrite + t.output,
        ...anthropicCacheFields(t),
      },
    }),
  ),
  chat(
    'chat-usage-on-finish-chunk',
    'Usage rides on the finish chunk (choices:[{index:0,delta:{},finish_reason:"stop"}]), no ' +
      'choices:[] chunk; readers waiting for choices:[] drop it (docs/peer-bugs.md rows 10, 11).',
    { input: 3136, cacheRead: 6752, cacheWrite: 0, output: 415, reasoning: 0 },
    (t) => ({ usage: chatUsage(t), usageOn: 'finish-chunk' }),
  ),

  // ── OpenAI Responses ──────────────────────────────────────────────────────────────────────
  responses(
    'healthy',
    'OpenAI Responses from a reasoning model: usage null until response.completed; ' +
      'output_tokens includes reasoning_tokens.',
    { input: 1840, cacheRead: 0, cacheWrite: 0, output: 620, reasoning: 384 },
    (t) => ({ usage: responsesUsage(t), reasoningItem: true }),
  ),
  responses(
    'responses-cached',
    'Cache reads in input_tokens_details.cached_tokens (included in input_tokens), which a ' +
      'Responses→Messages bridge looking for cache_read_input_tokens reads as 0 (LiteLLM; docs/peer-bugs.md row 6).',
    // OpenAI caches prompt prefixes in 128-token steps past the first 1024.
    { input: 38, cacheRead: 1280, cacheWrite: 0, output: 96, reasoning: 64 },
    (t) => ({ usage: responsesUsage(t), reasoningItem: true }),
  ),
  responses(
    'responses-anthropic-fields',
    "A bridge that serves Responses from an Anthropic upstream: input_tokens is Anthropic's " +
      '(excludes cache), cache in cache_read_input_tokens / cache_creation_input_tokens, ' +
      'cached_tokens 0; the mirror image of docs/peer-bugs.md row 6.',
    { input: 512, cacheRead: 24576, cacheWrite: 1024, output: 733, reasoning: 0 },
    (t) => ({
      usage: {
        input_tokens: t.input,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: t.output,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: t.input + t.cacheRead + t.cacheWrite + t.output,
        ...anthropicCacheFields(t),
      },
    }),
  ),

  // ── Bedrock InvokeModelWithResponseStream (Anthropic model) ──────────────────────────────────
  bedrock(
    'healthy',
    'Bedrock direct: Anthropic events in chunk messages, full usage on message_start and message_delta, ' +
      'the same counts in amazon-bedrock-invocationMetrics on the last chunk.',
    { input: 1912, cacheRead: 20480, cacheWrite: 2048, cacheWrite5m: 2048, cacheWrite1h: 0, output: 357, reasoning: 0 },
    (t) => ({ usage: startUsage(t), deltaUsages: [deltaUsage(t)], metrics: invocationMetrics(t) }),
  ),
  bedrock(
    'bedrock-zero-start',
    'Translating gateway in front of Bedrock: message_start says 0 input and cache, message_delta only ' +
      'output_tokens, while the invocation metrics one chunk later carry the truth (docs/peer-bugs.md rows 1, 14; ' +
      'docs/dialects/bedrock-invoke.md#the-last-message_delta-waits-for-the-metrics). Anthropic clients report 0 input.',
    { input: 3, cacheRead: 48211, cacheWrite: 1536, output: 622, reasoning: 0 },
    (t) => ({
      usage: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 },
      deltaUsages: [{ output_tokens: t.output }],
      metrics: invocationMetrics(t),
    }),
  ),

  // ── Gemini API ────────────────────────────────────────────────────────────────────────────
  gemini(
    'healthy',
    'Gemini 2.5 Flash with thinking and an implicit cache hit: a cumulative usageMetadata snapshot on every ' +
      'chunk; promptTokenCount includes cachedContentTokenCount, thoughtsTokenCount is outside candidatesTokenCount.',
    { input: 2084, cacheRead: 12288, cacheWrite: 0, output: 1453, reasoning: 1167 },
    (t) => ({ snapshots: geminiSnapshots(t, 4), usage: geminiUsage(t) }),
  ),
  gemini(
    'gemini-last-drops-cache',
    'The last snapshot leaves cachedContentTokenCount out while the prompt count still includes the cache; ' +
      'clients keep the last snapshot, so the cache reads turn into input ' +
      '(docs/dialects/gemini.md#omitted-counts).',
    { input: 1167, cacheRead: 8704, cacheWrite: 0, output: 412, reasoning: 0 },
    (t) => {
      const snapshots = geminiSnapshots(t, 3)
      const { cachedContentTokenCount: _dropped, cacheTokensDetails: _details, ...last } = snapshots.at(-1)!
      return { snapshots: [...snapshots.slice(0, -1), last], usage: geminiUsage(t) }
    },
  ),
]

/** The scenario a request selects: by name within its dialect, else that dialect's `healthy`. */
export function findScenario(dialect: MockDialect, name: string | undefined): Scenario {
  const ofDialect = scenarios.filter((s) => s.dialect === dialect)
  const found = ofDialect.find((s) => s.name === name) ?? ofDialect.find((s) => s.name === 'healthy')
  if (!found) throw new Error(`no healthy scenario for ${dialect}`)
  return found
}
