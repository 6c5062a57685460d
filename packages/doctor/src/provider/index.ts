/**
 * The doctor's provider and its wire builders: byte-shaped bodies of every dialect usagewire reads
 * (Anthropic Messages, OpenAI Chat and Responses, Bedrock InvokeModel and Converse, Gemini), used by the
 * doctor and by the repository's examples, tests and benchmarks.
 */
export * from './anthropic.js'
export * from './bedrock.js'
export * from './converse.js'
export * from './eventstream.js'
export * from './gemini.js'
export * from './openai-chat.js'
export * from './openai-responses.js'
export * from './sse.js'
export * from './types.js'
export * from './scenarios.js'
export * from './server.js'
