/**
 * Gemini API bodies (docs/dialects/gemini.md): `GenerateContentResponse` chunks, each with a
 * `usageMetadata` snapshot of the whole response so far, sent as data-only SSE events with CRLF line
 * ends (`:streamGenerateContent?alt=sse`) or as the elements of one JSON array sent over time (without
 * `alt`); `:generateContent` answers with one response.
 */
import { idFragment, textDeltas } from './sse.js'
import type { RequestContext, TrueUsage } from './types.js'

export const GEMINI_MODEL = 'gemini-2.5-flash'

export type GeminiUsage = Record<string, unknown>

/**
 * A `usageMetadata` as Gemini writes it (docs/dialects/gemini.md#fields-and-inclusion): the prompt count
 * includes the cache, thoughts are outside the candidates, and counts that are 0 are left out.
 */
export function geminiUsage(truth: TrueUsage, candidates = truth.output - truth.reasoning): GeminiUsage {
  const prompt = truth.input + truth.cacheRead
  return {
    promptTokenCount: prompt,
    candidatesTokenCount: candidates,
    totalTokenCount: prompt + candidates + truth.reasoning,
    ...(truth.cacheRead > 0 && { cachedContentTokenCount: truth.cacheRead }),
    promptTokensDetails: [{ modality: 'TEXT', tokenCount: prompt }],
    ...(truth.cacheRead > 0 && { cacheTokensDetails: [{ modality: 'TEXT', tokenCount: truth.cacheRead }] }),
    ...(truth.reasoning > 0 && { thoughtsTokenCount: truth.reasoning }),
  }
}

/**
 * The cumulative snapshots of a stream of `count` chunks: the prompt and the thoughts (all thought
 * before the first text) from the start, the candidates growing to their total on the last.
 */
export function geminiSnapshots(truth: TrueUsage, count: number): GeminiUsage[] {
  const candidates = truth.output - truth.reasoning
  return Array.from({ length: count }, (_, i) => geminiUsage(truth, Math.round((candidates * (i + 1)) / count)))
}

export interface GeminiBody {
  text: string
  /** The `usageMetadata` of each streamed chunk, in order; the last chunk has `finishReason`. */
  snapshots: GeminiUsage[]
  /** The `usageMetadata` of the non-streaming body. */
  usage: GeminiUsage
}

function response(ctx: RequestContext, text: string, usage: GeminiUsage, finish: boolean): Record<string, unknown> {
  return {
    candidates: [{ content: { parts: [{ text }], role: 'model' }, ...(finish && { finishReason: 'STOP' }), index: 0 }],
    usageMetadata: usage,
    modelVersion: GEMINI_MODEL,
    responseId: idFragment(ctx.seq, 23),
  }
}

export function geminiResponse(ctx: RequestContext, body: GeminiBody): unknown {
  return response(ctx, body.text, body.usage, true)
}

/** The text cut into as many parts as there are snapshots, a few words each. */
function parts(text: string, count: number): string[] {
  const words = textDeltas(text)
  const per = Math.ceil(words.length / count)
  return Array.from({ length: count }, (_, i) => words.slice(i * per, (i + 1) * per).join(''))
}

export function geminiStream(ctx: RequestContext, body: GeminiBody): string[] {
  const count = body.snapshots.length
  const chunks = parts(body.text, count).map((text, i) =>
    JSON.stringify(response(ctx, text, body.snapshots[i]!, i === count - 1)),
  )
  if (ctx.jsonArray) return chunks.map((chunk, i) => (i === 0 ? '[' : '\r\n,') + chunk).concat(']')
  return chunks.map((chunk) => `data: ${chunk}\r\n\r\n`)
}
