/**
 * Writes the bedrock-invoke conformance bodies (`.eventstream`, binary) from the readable definitions
 * below: `npx tsx test/bedrock/make-fixtures.ts`. The expect.json files beside them are written by hand.
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { anthropicStream, chunk, exception } from './bodies.js'

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
