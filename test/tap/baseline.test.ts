/**
 * Without usagewire: what the official Anthropic SDK reads from each broken translator, so the tests with
 * the tap (sdk.test.ts, hold.test.ts) start from a bug that is really there. The numbers are the
 * translators' bugs exactly (test/translator/translate.ts), never the provider's truth.
 */
import { describe, expect, it } from 'vitest'
import { TEXT, TEXT_DELTAS, type UpstreamKind } from '../translator/index.js'
import { CASES, messagesRequest, rawStream, textOf, useStack } from './helpers.js'

/** What the SDK reports per translator, streaming and not, for the truths in helpers.ts. */
const BUGS: Record<UpstreamKind, { stream: object; body: object }> = {
  // Zeros on message_start; output is the number of text chunks (4 streamed, 1 content block whole).
  'bedrock-converse': { stream: { input_tokens: 0, output_tokens: 4 }, body: { input_tokens: 0, output_tokens: 1 } },
  // input_tokens as OpenAI counts it (210 + 1024 cached), the cache read dropped.
  'openai-responses': {
    stream: { input_tokens: 1234, output_tokens: 56 },
    body: { input_tokens: 1234, output_tokens: 56 },
  },
  // Explicit zeros.
  'openai-chat': {
    stream: { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0 },
    body: { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0 },
  },
}

/** The first call the provider saw, as the translator wrote it in the upstream wire. */
const UPSTREAM_CALLS: Record<UpstreamKind, (model: string, stream: boolean) => { path: string; body: object }> = {
  'bedrock-converse': (model, stream) => ({
    path: `/model/${encodeURIComponent(model)}/${stream ? 'converse-stream' : 'converse'}`,
    body: { messages: [{ role: 'user', content: [{ text: 'Say hello.' }] }], inferenceConfig: { maxTokens: 64 } },
  }),
  'openai-responses': (model, stream) => ({
    path: '/v1/responses',
    body: { model, input: [{ role: 'user', content: 'Say hello.' }], max_output_tokens: 64, stream },
  }),
  'openai-chat': (model, stream) => ({
    path: '/v1/chat/completions',
    body: {
      model,
      messages: [{ role: 'user', content: 'Say hello.' }],
      stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}),
    },
  }),
}

describe.each(CASES)('$adapter translating to $upstream, without usagewire', ({ adapter, upstream }) => {
  const stack = useStack(adapter, upstream)

  it('streams the text with the translator’s usage bug, which the SDK reports', async () => {
    const message = await stack.client.messages.stream(messagesRequest(stack.model)).finalMessage()
    expect(message.content).toEqual([{ type: 'text', text: TEXT }])
    expect(message.stop_reason).toBe('end_turn')
    expect(message.usage).toEqual(BUGS[upstream].stream)
    expect(stack.provider.requests.at(-1)).toMatchObject(UPSTREAM_CALLS[upstream](stack.model, true))
  })

  it('answers a whole body with the translator’s usage bug', async () => {
    const message = await stack.client.messages.create(messagesRequest(stack.model))
    expect(message.content).toEqual([{ type: 'text', text: TEXT }])
    expect(message.usage).toEqual(BUGS[upstream].body)
    expect(stack.provider.requests.at(-1)).toMatchObject(UPSTREAM_CALLS[upstream](stack.model, false))
  })

  it('writes message_start with zeros, one delta per provider delta, and ends with message_stop', async () => {
    const answer = await rawStream(stack.translator.url, stack.model)
    expect(answer.status).toBe(200)
    expect(answer.contentType).toMatch(/^text\/event-stream/)
    expect(answer.events[0]).toMatchObject({
      event: 'message_start',
      data: { message: { usage: { input_tokens: 0, output_tokens: 0 } } },
    })
    expect(answer.events[0]!.data.message.usage).not.toHaveProperty('cache_read_input_tokens')
    expect(answer.events.map((e) => e.event)).toEqual([
      'message_start',
      'content_block_start',
      ...TEXT_DELTAS.map(() => 'content_block_delta'),
      'content_block_stop',
      'message_delta',
      'message_stop',
    ])
    expect(answer.events.filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.text)).toEqual(
      TEXT_DELTAS,
    )
    expect(textOf(answer.events)).toBe(TEXT)
  })

  it('takes the Messages path with a query string, as the SDK’s beta resource sends it', async () => {
    const response = await fetch(`${stack.translator.url}/v1/messages?beta=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(messagesRequest(stack.model)),
    })
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ content: [{ type: 'text', text: TEXT }], usage: BUGS[upstream].body })
  })
})
