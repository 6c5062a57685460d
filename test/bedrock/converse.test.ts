/**
 * The AWS SDK's ConverseStreamCommand and ConverseCommand through an Express gateway (usagewire +
 * http-proxy-middleware) in front of a mock Bedrock: what the SDK hands the application as
 * `metadata.usage` / `usage`, and the record (docs/dialects/bedrock-converse.md). The SDK checks every
 * frame's CRCs, so a rewritten `metadata` frame it accepts is a valid one.
 */
import { ConverseCommand, ConverseStreamCommand } from '@aws-sdk/client-bedrock-runtime'
import { describe, expect, it } from 'vitest'
import { converseBody, converseStream, exception, converseEvent } from './bodies.js'
import { client, useRig } from './mock.js'

const input = (modelId: string) => ({ modelId, messages: [{ role: 'user' as const, content: [{ text: 'hi' }] }] })

const rigOf = useRig()
const rig = (reply: { type: string; body: Buffer }) => rigOf(() => reply)

const EVENTSTREAM = 'application/vnd.amazon.eventstream'

describe('the AWS SDK Converse commands through an Express gateway with usagewire', () => {
  it('ConverseStream: the metadata usage reaches the application, and the record has it', async () => {
    const modelId = 'us.anthropic.claude-sonnet-4-20250514-v1:0'
    const usage = {
      inputTokens: 24,
      outputTokens: 30,
      totalTokens: 7254,
      cacheReadInputTokens: 6000,
      cacheWriteInputTokens: 1200,
      cacheDetails: [
        { ttl: '1h', inputTokens: 200 },
        { ttl: '5m', inputTokens: 1000 },
      ],
    }
    const { mock, gateway } = await rig({ type: EVENTSTREAM, body: converseStream({ usage }) })
    const response = await client(gateway.url).send(new ConverseStreamCommand(input(modelId)))
    const events: Array<Record<string, any>> = []
    for await (const event of response.stream!) events.push(event)

    expect(mock.paths).toEqual([`/model/${encodeURIComponent(modelId)}/converse-stream`])
    expect(events.map((e) => Object.keys(e)[0])).toEqual([
      'messageStart',
      'contentBlockDelta',
      'contentBlockDelta',
      'contentBlockStop',
      'messageStop',
      'metadata',
    ])
    expect(events[5]!.metadata.usage).toEqual(usage)
    const record = await gateway.record()
    expect(record).toMatchObject({
      dialect: 'bedrock-converse',
      model: modelId,
      status: 'complete',
      streaming: true,
      final: true,
      usage: { input: 24, cacheRead: 6000, cacheWrite: 1200, cacheWrite5m: 1000, cacheWrite1h: 200, output: 30 },
      sources: { input: 'metadata.usage.inputTokens' },
      corrections: [],
    })
  })

  it('ConverseStream from an OpenAI-family model: the application reads the documented disjoint input', async () => {
    const modelId = 'openai.gpt-oss-120b-1:0'
    const { gateway } = await rig({
      type: EVENTSTREAM,
      body: converseStream({
        usage: {
          inputTokens: 4995,
          outputTokens: 19,
          totalTokens: 10007,
          cacheReadInputTokens: 0,
          cacheWriteInputTokens: 4993,
        },
      }),
    })
    const response = await client(gateway.url).send(new ConverseStreamCommand(input(modelId)))
    let usage: Record<string, unknown> | undefined
    let text = ''
    for await (const event of response.stream!) {
      if (event.contentBlockDelta?.delta?.text) text += event.contentBlockDelta.delta.text
      if (event.metadata) usage = { ...event.metadata.usage }
    }
    expect(text).toBe('Hello from Converse.')
    expect(usage).toEqual({
      inputTokens: 2,
      outputTokens: 19,
      totalTokens: 5014,
      cacheReadInputTokens: 0,
      cacheWriteInputTokens: 4993,
    })
    const record = await gateway.record()
    expect(record).toMatchObject({ dialect: 'bedrock-converse', usage: { input: 2, cacheWrite: 4993, output: 19 } })
    expect(record.corrections).toEqual([
      { where: 'metadata', field: 'usage.inputTokens', from: 4995, to: 2 },
      { where: 'metadata', field: 'usage.totalTokens', from: 10007, to: 5014 },
    ])
  })

  it('ConverseStream: an in-stream exception reaches the SDK as its error; the record says upstream_error', async () => {
    const { gateway } = await rig({
      type: EVENTSTREAM,
      body: Buffer.concat([
        converseEvent('messageStart', { role: 'assistant' }),
        exception('throttlingException', 'Too many tokens, please wait before trying again.'),
      ]),
    })
    const response = await client(gateway.url).send(
      new ConverseStreamCommand(input('anthropic.claude-3-5-haiku-20241022-v1:0')),
    )
    await expect(
      (async () => {
        for await (const _event of response.stream!) void _event
      })(),
    ).rejects.toMatchObject({ name: 'ThrottlingException' })
    const record = await gateway.record()
    expect(record).toMatchObject({
      dialect: 'bedrock-converse',
      status: 'upstream_error',
      error: 'throttlingException',
    })
  })

  it('Converse: a totalTokens that leaves the cache read out reaches the application whole', async () => {
    const modelId = 'anthropic.claude-3-5-haiku-20241022-v1:0'
    const { gateway } = await rig({
      type: 'application/json',
      body: converseBody({
        inputTokens: 86,
        outputTokens: 40,
        totalTokens: 126,
        cacheReadInputTokens: 1920,
        cacheWriteInputTokens: 0,
      }),
    })
    const response = await client(gateway.url).send(new ConverseCommand(input(modelId)))
    expect(response.output?.message?.content?.[0]?.text).toBe('Hello from Converse.')
    expect(response.usage).toEqual({
      inputTokens: 86,
      outputTokens: 40,
      totalTokens: 2046,
      cacheReadInputTokens: 1920,
      cacheWriteInputTokens: 0,
    })
    const record = await gateway.record()
    expect(record).toMatchObject({
      dialect: 'bedrock-converse',
      model: modelId,
      streaming: false,
      status: 'complete',
      usage: { input: 86, cacheRead: 1920, cacheWrite: 0, output: 40 },
      corrections: [{ where: 'body', field: 'usage.totalTokens', from: 126, to: 2046 }],
    })
  })
})
