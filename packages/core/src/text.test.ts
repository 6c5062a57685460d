import { EventStreamCodec } from '@smithy/eventstream-codec'
import { describe, expect, it } from 'vitest'
import { createProcessor } from './processor.js'

/**
 * The generated text a response carries (`collectText`), streamed or whole, in every dialect: what a
 * sidecar compares to join a client's answer to the provider's, and what an aborted stream's output
 * estimate counts.
 */
const text = (path: string, contentType: string, body: string | Uint8Array): string => {
  const processor = createProcessor({ path, contentType, collectText: true, readOnly: true })
  processor.push(typeof body === 'string' ? Buffer.from(body) : body)
  processor.end()
  return processor.streamedText
}
const sse = (events: object[]) => events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('')
const utf8 = { fromUtf8: (s: string) => Buffer.from(s), toUtf8: (b: Uint8Array) => Buffer.from(b).toString() }
const codec = new EventStreamCodec(utf8.toUtf8, utf8.fromUtf8)
const frame = (type: string, body: object) =>
  codec.encode({
    headers: {
      ':message-type': { type: 'string', value: 'event' },
      ':event-type': { type: 'string', value: type },
      ':content-type': { type: 'string', value: 'application/json' },
    },
    body: Buffer.from(JSON.stringify(body)),
  })

describe('collectText', () => {
  it('Anthropic: text, tool input and thinking, streamed and whole', () => {
    const stream = sse([
      { type: 'message_start', message: { usage: { input_tokens: 1 } } },
      { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'hmm ' } },
      { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'Hello' } },
      { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{"a":1}' } },
    ])
    expect(text('/v1/messages', 'text/event-stream', stream)).toBe('hmm Hello{"a":1}')
    const whole = {
      type: 'message',
      content: [
        { type: 'text', text: 'Hello' },
        { type: 'tool_use', input: { a: 1 } },
      ],
      usage: {},
    }
    expect(text('/v1/messages', 'application/json', JSON.stringify(whole))).toBe('Hello{"a":1}')
  })

  it('OpenAI Chat: deltas and a whole message, tool-call arguments included', () => {
    const call = { tool_calls: [{ function: { arguments: '{"x":2}' } }] }
    const stream = sse([
      { object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'Hi' } }] },
      { object: 'chat.completion.chunk', choices: [{ index: 0, delta: call }] },
    ])
    expect(text('/v1/chat/completions', 'text/event-stream', stream)).toBe('Hi{"x":2}')
    const whole = { object: 'chat.completion', choices: [{ message: { content: 'Hi', ...call } }], usage: {} }
    expect(text('/v1/chat/completions', 'application/json', JSON.stringify(whole))).toBe('Hi{"x":2}')
  })

  it('OpenAI Responses: delta events and a whole response', () => {
    const stream = sse([
      { type: 'response.created', response: {} },
      { type: 'response.output_text.delta', delta: 'Hi' },
      { type: 'response.function_call_arguments.delta', delta: '{}' },
    ])
    expect(text('/v1/responses', 'text/event-stream', stream)).toBe('Hi{}')
    const whole = {
      object: 'response',
      output: [
        { type: 'message', content: [{ type: 'output_text', text: 'Hi' }] },
        { type: 'function_call', arguments: '{}' },
      ],
    }
    expect(text('/v1/responses', 'application/json', JSON.stringify(whole))).toBe('Hi{}')
  })

  it('Bedrock Converse and InvokeModel, streamed (AWS event stream) and whole', () => {
    const converse = Buffer.concat([
      frame('messageStart', { role: 'assistant' }),
      frame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Hel' } }),
      frame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'lo' } }),
      frame('metadata', { usage: { inputTokens: 1, outputTokens: 2 } }),
    ])
    expect(text('/model/m/converse-stream', 'application/vnd.amazon.eventstream', converse)).toBe('Hello')
    const whole = { output: { message: { content: [{ text: 'Hello' }] } }, usage: { inputTokens: 1, outputTokens: 2 } }
    expect(text('/model/m/converse', 'application/json', JSON.stringify(whole))).toBe('Hello')
    const chunk = (event: object) => frame('chunk', { bytes: Buffer.from(JSON.stringify(event)).toString('base64') })
    const invoke = Buffer.concat([
      chunk({ type: 'message_start', message: { usage: { input_tokens: 1 } } }),
      chunk({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } }),
    ])
    expect(text('/model/m/invoke-with-response-stream', 'application/vnd.amazon.eventstream', invoke)).toBe('Hello')
    const message = { type: 'message', content: [{ type: 'text', text: 'Hello' }], usage: { input_tokens: 1 } }
    expect(text('/model/m/invoke', 'application/json', JSON.stringify(message))).toBe('Hello')
  })

  it('Gemini and Ollama', () => {
    const gemini = { candidates: [{ content: { parts: [{ text: 'Hi' }] } }], usageMetadata: { promptTokenCount: 1 } }
    expect(text('/v1beta/models/g:generateContent', 'application/json', JSON.stringify(gemini))).toBe('Hi')
    const ollama = `${JSON.stringify({ message: { content: 'Hi' }, done: false })}\n${JSON.stringify({ message: { content: '!' }, done: true, prompt_eval_count: 1, eval_count: 2 })}\n`
    expect(text('/api/chat', 'application/x-ndjson', ollama)).toBe('Hi!')
  })

  it('collects nothing unless asked', () => {
    const processor = createProcessor({ path: '/v1/messages', contentType: 'text/event-stream' })
    processor.push(Buffer.from(sse([{ type: 'content_block_delta', index: 0, delta: { text: 'x' } }])))
    expect(processor.streamedText).toBe('')
  })
})
