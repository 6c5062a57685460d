/**
 * The wire dialects the mock speaks, named as in a usagewire record (Bedrock's InvokeModel JSON body is
 * an Anthropic message, recorded as `anthropic-messages`; its stream is `bedrock-invoke`).
 */
export type MockDialect = 'anthropic-messages' | 'openai-chat' | 'openai-responses' | 'bedrock-invoke' | 'gemini'

/**
 * What a response really cost, in usagewire's canonical disjoint buckets
 * (docs/usage-model.md#canonical-buckets): `input` excludes cache reads and writes; `reasoning` is
 * a subset of `output`.
 * Kept local (not imported from @usagewire/core) so the mock stays a neutral upstream.
 */
export interface TrueUsage {
  input: number
  cacheRead: number
  cacheWrite: number
  cacheWrite5m?: number
  cacheWrite1h?: number
  output: number
  reasoning: number
}

/** What a scenario's builders may read from the request. */
export interface RequestContext {
  /** Sequence number of the request on this mock, used for deterministic ids. */
  seq: number
  /** The model the client asked for: the `model` field, or the path's for Bedrock and Gemini (also the scenario selector). */
  requestedModel: string
  /** OpenAI Chat: `stream_options.include_usage` was true. */
  includeUsage: boolean
  /** OpenAI: `stream_options.include_obfuscation` was not false (obfuscation is on by default). */
  includeObfuscation: boolean
  /** Gemini: `:streamGenerateContent` without `alt=sse`, answered as one JSON array sent over time. */
  jsonArray?: boolean
  /** Unix seconds, fixed per request. */
  created: number
}
