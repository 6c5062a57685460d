/**
 * The AWS SDK's own client through an Express gateway (usagewire + http-proxy-middleware) in front of a
 * mock Bedrock that answers InvokeModelWithResponseStream the way a translating gateway does: 0 input
 * on `message_start`, output only on `message_delta`, the truth in `amazon-bedrock-invocationMetrics`
 * (docs/dialects/bedrock-invoke.md#the-last-message_delta-waits-for-the-metrics). SigV4 signs the
 * request only, so the rewritten response is one the SDK accepts (it checks every frame's CRCs).
 */
import { InvokeModelCommand, InvokeModelWithResponseStreamCommand } from '@aws-sdk/client-bedrock-runtime'
import { describe, expect, it } from 'vitest'
import { anthropicStream, exception, chunk } from './bodies.js'
import { client, useRig } from './mock.js'

const MODEL_ID = 'anthropic.claude-sonnet-4-5-20250929-v1:0'

const request = {
  modelId: MODEL_ID,
  contentType: 'application/json',
  accept: 'application/json',
  body: JSON.stringify({
    anthropic_version: 'bedrock-2023-05-31',
    max_tokens: 64,
    messages: [{ role: 'user', content: 'hi' }],
  }),
}

const rig = useRig()

/** What an application does with the stream: decode each chunk, keep usage as the Anthropic SDK does. */
async function consume(stream: AsyncIterable<{ chunk?: { bytes?: Uint8Array } }>) {
  const events: Array<Record<string, any>> = []
  for await (const part of stream) {
    if (part.chunk?.bytes) events.push(JSON.parse(Buffer.from(part.chunk.bytes).toString('utf8')))
  }
  const usage: Record<string, number> = {}
  for (const event of events) {
    const block =
      event.type === 'message_start' ? event.message.usage : event.type === 'message_delta' ? event.usage : undefined
    if (block) for (const [key, value] of Object.entries(block)) if (typeof value === 'number') usage[key] = value
  }
  return { events, usage }
}

describe('the AWS SDK through an Express gateway with usagewire', () => {
  it('InvokeModelWithResponseStream: the last message_delta carries the metrics, and the record has them', async () => {
    const { mock, gateway } = await rig(() => ({
      type: 'application/vnd.amazon.eventstream',
      body: anthropicStream({
        start: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 },
        delta: { output_tokens: 42 },
        metrics: {
          inputTokenCount: 1834,
          outputTokenCount: 42,
          cacheReadInputTokenCount: 9120,
          cacheWriteInputTokenCount: 0,
          invocationLatency: 1200,
          firstByteLatency: 400,
        },
      }),
    }))
    const response = await client(gateway.url).send(new InvokeModelWithResponseStreamCommand(request))
    const { events, usage } = await consume(response.body!)

    expect(mock.paths).toEqual([`/model/${encodeURIComponent(MODEL_ID)}/invoke-with-response-stream`])
    expect(events.map((e) => e.type)).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ])
    expect(events[2]!.delta.text + events[3]!.delta.text).toBe('Hello from Bedrock.')
    // message_start opens the stream and is left as it came; the last message_delta is what clients keep.
    expect(events[0]!.message.usage.input_tokens).toBe(0)
    expect(events[5]!.usage).toEqual({
      output_tokens: 42,
      input_tokens: 1834,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 9120,
    })
    expect(usage).toMatchObject({ input_tokens: 1834, cache_read_input_tokens: 9120, output_tokens: 42 })
    expect(events[6]!['amazon-bedrock-invocationMetrics']).toMatchObject({
      inputTokenCount: 1834,
      outputTokenCount: 42,
    })

    const record = await gateway.record()
    expect(record).toMatchObject({
      dialect: 'bedrock-invoke',
      status: 'complete',
      streaming: true,
      final: true,
      model: 'claude-sonnet-4-5-20250929',
      usage: { input: 1834, cacheRead: 9120, cacheWrite: 0, output: 42, reasoning: 0 },
      sources: { input: 'message_stop.amazon-bedrock-invocationMetrics.inputTokenCount' },
    })
    expect(record.corrections).toEqual([
      { where: 'message_delta', field: 'usage.input_tokens', from: null, to: 1834 },
      { where: 'message_delta', field: 'usage.cache_creation_input_tokens', from: null, to: 0 },
      { where: 'message_delta', field: 'usage.cache_read_input_tokens', from: null, to: 9120 },
    ])
  })

  it('an in-stream exception reaches the SDK as its error, and the record says upstream_error', async () => {
    const { gateway } = await rig(() => ({
      type: 'application/vnd.amazon.eventstream',
      body: Buffer.concat([
        chunk({
          type: 'message_start',
          message: { model: 'claude-sonnet-4-5-20250929', usage: { input_tokens: 18, output_tokens: 1 } },
        }),
        exception('throttlingException', 'Too many tokens, please wait before trying again.'),
      ]),
    }))
    const response = await client(gateway.url).send(new InvokeModelWithResponseStreamCommand(request))
    await expect(consume(response.body!)).rejects.toMatchObject({ name: 'ThrottlingException' })
    const record = await gateway.record()
    expect(record).toMatchObject({ dialect: 'bedrock-invoke', status: 'upstream_error', error: 'throttlingException' })
    expect(record.usage.input).toBe(18)
  })

  it('InvokeModel: the JSON body is read by the Anthropic rules and reaches the SDK unchanged', async () => {
    const message = {
      id: 'msg_bdrk_03',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5-20250929',
      content: [{ type: 'text', text: 'Hello.' }],
      stop_reason: 'end_turn',
      usage: { input_tokens: 24, cache_creation_input_tokens: 0, cache_read_input_tokens: 600, output_tokens: 3 },
    }
    const { gateway } = await rig(() => ({ type: 'application/json', body: Buffer.from(JSON.stringify(message)) }))
    const response = await client(gateway.url).send(new InvokeModelCommand(request))
    expect(JSON.parse(Buffer.from(response.body).toString('utf8'))).toEqual(message)
    const record = await gateway.record()
    expect(record).toMatchObject({ status: 'complete', usage: { input: 24, cacheRead: 600, output: 3 } })
  })

  it('InvokeModel: a body without usage is metered from the x-amzn-bedrock-*-token-count headers', async () => {
    // A model whose body carries no usage block (row 56): AWS's headers still have the counts.
    const message = { id: 'msg_bdrk_04', type: 'message', role: 'assistant', content: [{ type: 'text', text: 'Hi.' }] }
    const headers = {
      'x-amzn-bedrock-input-token-count': '31',
      'x-amzn-bedrock-output-token-count': '7',
      'x-amzn-bedrock-cache-read-input-token-count': '1024',
    }
    const { gateway } = await rig(() => ({
      type: 'application/json',
      body: Buffer.from(JSON.stringify(message)),
      headers,
    }))
    const response = await client(gateway.url).send(new InvokeModelCommand(request))
    expect(JSON.parse(Buffer.from(response.body).toString('utf8'))).toEqual(message)
    const record = await gateway.record()
    expect(record.usage).toMatchObject({ input: 31, cacheRead: 1024, output: 7 })
    expect(record.sources).toMatchObject({
      input: 'x-amzn-bedrock-input-token-count',
      output: 'x-amzn-bedrock-output-token-count',
    })
  })

  it('InvokeModel: counts in the body win over the headers', async () => {
    const message = {
      id: 'msg_bdrk_05',
      type: 'message',
      role: 'assistant',
      content: [{ type: 'text', text: 'Hi.' }],
      usage: { input_tokens: 40, output_tokens: 9 },
    }
    const headers = { 'x-amzn-bedrock-input-token-count': '31', 'x-amzn-bedrock-output-token-count': '7' }
    const { gateway } = await rig(() => ({
      type: 'application/json',
      body: Buffer.from(JSON.stringify(message)),
      headers,
    }))
    await client(gateway.url).send(new InvokeModelCommand(request))
    expect((await gateway.record()).usage).toMatchObject({ input: 40, output: 9 })
  })
})
