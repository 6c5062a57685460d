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
  /** The model version the answer names; default GEMINI_MODEL. */
  model?: string
  /** A thought summary part before the text (`thought: true`), on the first chunk. */
  thought?: string
  /** A function call part after the text, on the last chunk. */
  functionCall?: { name: string; args: Record<string, unknown> }
}

function response(
  ctx: RequestContext,
  parts: unknown[],
  usage: GeminiUsage,
  finish: boolean,
  model = GEMINI_MODEL,
): Record<string, unknown> {
  return {
    candidates: [{ content: { parts, role: 'model' }, ...(finish && { finishReason: 'STOP' }), index: 0 }],
    usageMetadata: usage,
    modelVersion: model,
    responseId: idFragment(ctx.seq, 23),
  }
}

/** The parts of one chunk: the thought on the first, the function call on the last. */
function partsOf(body: GeminiBody, text: string, first: boolean, last: boolean): unknown[] {
  const parts: unknown[] = []
  if (first && body.thought !== undefined) parts.push({ text: body.thought, thought: true })
  parts.push({ text })
  if (last && body.functionCall) parts.push({ functionCall: body.functionCall })
  return parts
}

export function geminiResponse(ctx: RequestContext, body: GeminiBody): unknown {
  return response(ctx, partsOf(body, body.text, true, true), body.usage, true, body.model)
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
    JSON.stringify(
      response(ctx, partsOf(body, text, i === 0, i === count - 1), body.snapshots[i]!, i === count - 1, body.model),
    ),
  )
  if (ctx.jsonArray) return chunks.map((chunk, i) => (i === 0 ? '[' : '\r\n,') + chunk).concat(']')
  return chunks.map((chunk) => `data: ${chunk}\r\n\r\n`)
}
