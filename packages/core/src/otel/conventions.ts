/**
 * What a usage record means in the OpenTelemetry GenAI semantic conventions: instrument and attribute
 * names, the provider a dialect speaks for, and the class of error a record ended with
 * (docs/metrics.md#opentelemetry).
 */
import type { UsageRecord } from '../record.js'

export const METRIC_TOKEN_USAGE = 'gen_ai.client.token.usage'
export const METRIC_OPERATION_DURATION = 'gen_ai.client.operation.duration'
export const METRIC_TIME_TO_FIRST_CHUNK = 'gen_ai.client.operation.time_to_first_chunk'

export const ATTR_OPERATION_NAME = 'gen_ai.operation.name'
export const ATTR_PROVIDER_NAME = 'gen_ai.provider.name'
export const ATTR_REQUEST_MODEL = 'gen_ai.request.model'
export const ATTR_RESPONSE_MODEL = 'gen_ai.response.model'
export const ATTR_TOKEN_TYPE = 'gen_ai.token.type'
export const ATTR_ERROR_TYPE = 'error.type'

export const ATTR_USAGE_INPUT = 'gen_ai.usage.input_tokens'
export const ATTR_USAGE_OUTPUT = 'gen_ai.usage.output_tokens'
export const ATTR_USAGE_CACHE_READ = 'gen_ai.usage.cache_read.input_tokens'
export const ATTR_USAGE_CACHE_WRITE = 'gen_ai.usage.cache_write.input_tokens'
/** The name `cache_write` had before the conventions renamed it; still read by some backends. */
export const ATTR_USAGE_CACHE_CREATION = 'gen_ai.usage.cache_creation.input_tokens'
export const ATTR_USAGE_REASONING = 'gen_ai.usage.reasoning.output_tokens'

/** The bucket boundaries the conventions advise for each histogram. */
export const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
export const SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]

/** Every request usagewire meters is a chat-style generation. */
export const OPERATION_CHAT = 'chat'

/**
 * The conventions' well-known `gen_ai.provider.name` for the provider a dialect speaks for. Ollama has no
 * well-known value, so it gets its own name; OpenAI-compatible servers (DeepSeek, Groq, vLLM…) speak the
 * OpenAI dialects and are named `openai` unless the `provider` option says otherwise.
 */
export function providerOf(record: UsageRecord): string {
  switch (record.dialect) {
    case 'anthropic-messages':
      return 'anthropic'
    case 'openai-chat':
    case 'openai-responses':
      return 'openai'
    case 'bedrock-invoke':
    case 'bedrock-converse':
      return 'aws.bedrock'
    case 'gemini':
      // Vertex AI paths name a project and a location; the Gemini API's (generativelanguage) do not.
      return /\/projects\/[^/]+\/locations\//.test(record.route) ? 'gcp.vertex_ai' : 'gcp.gemini'
    case 'ollama':
      return 'ollama'
    default:
      return 'unknown'
  }
}

/** An upstream error type that is already a low-cardinality name (`overloaded_error`, `rate_limit_exceeded`). */
const ERROR_NAME = /^[A-Za-z][\w.-]{0,63}$/

/**
 * `error.type` for a record that ended in an error, else undefined. An upstream HTTP error is its status
 * code; an in-stream error its type when it is a name, else `_OTHER` (a message would explode
 * cardinality); a cut stream `incomplete`; a client that went away `aborted`.
 */
export function errorTypeOf(record: UsageRecord): string | undefined {
  switch (record.status) {
    case 'upstream_error':
      if (record.httpStatus >= 400) return String(record.httpStatus)
      return record.error !== undefined && ERROR_NAME.test(record.error) ? record.error : '_OTHER'
    case 'incomplete':
      return 'incomplete'
    case 'aborted':
      return 'aborted'
    default:
      return undefined
  }
}
