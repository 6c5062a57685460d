/**
 * Writes the bedrock-invoke and bedrock-converse conformance bodies (`.eventstream`, binary, and Converse's
 * `.json`) from the readable definitions below: `npx tsx test/bedrock/make-fixtures.ts`. The expect.json
 * files beside them are written by hand.
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { anthropicStream, chunk, converseBody, converseEvent, converseStream, exception } from './bodies.js'

const dir = fileURLToPath(new URL('../../packages/core/src/dialects/bedrock-invoke/fixtures/', import.meta.url))

const bodies: Record<string, Buffer> = {
  // docs/peer-bugs.md rows 1, 2: zeros on message_start, the truth in AWS's metrics only.
  'bedrock-invoke-start-zeros-metrics-truth': anthropicStream({
    start: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 },
    delta: { output_tokens: 42 },
    metrics: {
      inputTokenCount: 2048,
      outputTokenCount: 42,
      invocationLatency: 1630,
      firstByteLatency: 512,
      cacheReadInputTokenCount: 0,
      cacheWriteInputTokenCount: 0,
    },
  }),
  // Row 13: the cache counts ride only in the metrics.
  'bedrock-invoke-metrics-cache-counts': anthropicStream({
    start: { input_tokens: 0, output_tokens: 1 },
    delta: { output_tokens: 30 },
    metrics: {
      inputTokenCount: 24,
      outputTokenCount: 30,
      invocationLatency: 2210,
      firstByteLatency: 640,
      cacheReadInputTokenCount: 6000,
      cacheWriteInputTokenCount: 1200,
    },
  }),
  // Row 13, the other way: metrics without cache counts never erase the ones message_start gave.
  'bedrock-invoke-metrics-without-cache': anthropicStream({
    start: { input_tokens: 24, cache_creation_input_tokens: 1200, cache_read_input_tokens: 6000, output_tokens: 1 },
    delta: { input_tokens: 24, output_tokens: 30 },
    metrics: { inputTokenCount: 24, outputTokenCount: 30, invocationLatency: 2210, firstByteLatency: 640 },
  }),
  // Row 14: a direct stream with full usage everywhere passes byte for byte.
  'bedrock-invoke-direct-full-usage': anthropicStream({
    start: { input_tokens: 24, cache_creation_input_tokens: 0, cache_read_input_tokens: 6000, output_tokens: 1 },
    delta: { input_tokens: 24, cache_creation_input_tokens: 0, cache_read_input_tokens: 6000, output_tokens: 30 },
    metrics: {
      inputTokenCount: 24,
      outputTokenCount: 30,
      invocationLatency: 2210,
      firstByteLatency: 640,
      cacheReadInputTokenCount: 6000,
      cacheWriteInputTokenCount: 0,
    },
  }),
  // Row 56: no Anthropic usage at all; the metrics are the only report.
  'bedrock-invoke-usage-only-in-metrics': anthropicStream({
    start: null,
    delta: null,
    metrics: { inputTokenCount: 310, outputTokenCount: 12, invocationLatency: 900, firstByteLatency: 300 },
  }),
  // An in-stream exception frame (docs/dialects/bedrock-invoke.md#in-stream-exceptions).
  'bedrock-invoke-throttling-exception': Buffer.concat([
    chunk({
      type: 'message_start',
      message: {
        id: 'msg_bdrk_02',
        type: 'message',
        role: 'assistant',
        model: 'claude-sonnet-4-5-20250929',
        content: [],
        usage: { input_tokens: 18, output_tokens: 1 },
      },
    }),
    chunk({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    exception('throttlingException', 'Too many tokens, please wait before trying again.'),
  ]),
}

for (const [name, body] of Object.entries(bodies)) writeFileSync(`${dir}${name}.eventstream`, body)

const converseDir = fileURLToPath(
  new URL('../../packages/core/src/dialects/bedrock-converse/fixtures/', import.meta.url),
)

const converseBodies: Record<string, Buffer> = {
  // docs/peer-bugs.md row 12: the metadata event's usage must reach the client.
  'bedrock-converse-stream-metadata-usage': converseStream({
    usage: { inputTokens: 25, outputTokens: 31, totalTokens: 56, cacheReadInputTokens: 0, cacheWriteInputTokens: 0 },
  }),
  // Row 15: cache reads and writes (with their TTL split) beside a disjoint input.
  'bedrock-converse-stream-cache-read-write': converseStream({
    usage: {
      inputTokens: 24,
      outputTokens: 30,
      totalTokens: 7254,
      cacheReadInputTokens: 6000,
      cacheWriteInputTokens: 1200,
      cacheDetails: [
        { ttl: '1h', inputTokens: 200 },
        { ttl: '5m', inputTokens: 1000 },
      ],
    },
  }),
  // Row 16: an OpenAI-family model on ConverseStream reports inputTokens with the cache write in it.
  'bedrock-converse-stream-openai-inclusive-input': converseStream({
    usage: {
      inputTokens: 4995,
      outputTokens: 19,
      totalTokens: 10007,
      cacheReadInputTokens: 0,
      cacheWriteInputTokens: 4993,
      cacheDetails: [{ ttl: '5m', inputTokens: 4993 }],
    },
  }),
  // Row 56: a non-Anthropic model; the metadata event is the only report, with serverToolUsage beside it.
  'bedrock-converse-stream-usage-only-in-metadata': converseStream({
    usage: { inputTokens: 310, outputTokens: 12, totalTokens: 322, serverToolUsage: {} },
  }),
  // docs/dialects/bedrock-converse.md#conversestream: a stream cut between messageStop and metadata.
  'bedrock-converse-stream-cut-before-metadata': converseStream({ cut: true }),
  // docs/dialects/bedrock-converse.md#in-stream-exceptions
  'bedrock-converse-throttling-exception': Buffer.concat([
    converseEvent('messageStart', { role: 'assistant' }),
    converseEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Hel' } }),
    exception('throttlingException', 'Too many tokens, please wait before trying again.'),
  ]),
}

const converseJson: Record<string, Buffer> = {
  // Row 17: inputTokens is already disjoint; nothing is subtracted from it.
  'bedrock-converse-json-disjoint-input': converseBody({
    inputTokens: 3,
    outputTokens: 210,
    totalTokens: 30646,
    cacheReadInputTokens: 30433,
    cacheWriteInputTokens: 0,
  }),
  // Row 22: cache reads are a part of the prompt; a totalTokens that leaves them out is made whole.
  'bedrock-converse-json-total-omits-cache-read': converseBody({
    inputTokens: 86,
    outputTokens: 40,
    totalTokens: 126,
    cacheReadInputTokens: 1920,
    cacheWriteInputTokens: 0,
  }),
}

for (const [name, body] of Object.entries(converseBodies)) writeFileSync(`${converseDir}${name}.eventstream`, body)
for (const [name, body] of Object.entries(converseJson)) writeFileSync(`${converseDir}${name}.json`, body)
