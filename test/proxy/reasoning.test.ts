/**
 * Content correlation when the gateway drops the provider's reasoning (docs/sidecar.md#correlation): the
 * client gets the answer alone, the provider's text is its thinking and its answer. Each dialect's `text`
 * says which part is reasoning, and the sidecar joins a client's text to a provider call whose text
 * without its reasoning is the same, still unique-or-nothing.
 */
import http from 'node:http'
import Anthropic from '@anthropic-ai/sdk'
import { EventStreamCodec } from '@smithy/eventstream-codec'
import { createProcessor } from '@usagewire/core'
import { startProxy, type ProxyOptions } from '@usagewire/proxy'
import { createParser } from 'eventsource-parser'
import { afterEach, describe, expect, it } from 'vitest'
import { listen, shut, waitFor } from '../express/helpers.js'

const open: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close()
})

// ---- the dialects: which text is reasoning ----------------------------------------------------------

const sse = (events: object[], named = false) =>
  events.map((e) => `${named ? `event: ${(e as { type: string }).type}\n` : ''}data: ${JSON.stringify(e)}\n\n`).join('')
const codec = new EventStreamCodec(
  (bytes) => Buffer.from(bytes).toString('utf8'),
  (text) => Buffer.from(text, 'utf8'),
)
const frame = (type: string, body: object) =>
  codec.encode({
    headers: {
      ':message-type': { type: 'string', value: 'event' },
      ':event-type': { type: 'string', value: type },
      ':content-type': { type: 'string', value: 'application/json' },
    },
    body: Buffer.from(JSON.stringify(body)),
  })

/** The text a response carries, all of it and without its reasoning. */
function texts(path: string, contentType: string, body: string | Uint8Array) {
  const processor = createProcessor({ path, contentType, collectText: true, readOnly: true })
  processor.push(typeof body === 'string' ? Buffer.from(body) : body)
  processor.end()
  return { all: processor.streamedText, answer: processor.streamedAnswer }
}

describe('the text of a response, and which part of it is reasoning', () => {
  const thinking = { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Hmm. ' } }
  const signature = { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'c2ln' } }
  const text = { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'Four.' } }
  const whole = {
    type: 'message',
    content: [
      { type: 'thinking', thinking: 'Hmm. ', signature: 'c2ln' },
      { type: 'text', text: 'Four.' },
    ],
    usage: { input_tokens: 1, output_tokens: 2 },
  }
  const split = { all: 'Hmm. Four.', answer: 'Four.' }

  it('Anthropic: thinking deltas and thinking blocks (a signature is no text)', () => {
    expect(texts('/v1/messages', 'text/event-stream', sse([thinking, signature, text], true))).toEqual(split)
    expect(texts('/v1/messages', 'application/json', JSON.stringify(whole))).toEqual(split)
  })

  it('Bedrock InvokeModel: the Anthropic events inside its chunks, and a whole message', () => {
    const chunk = (event: object) => frame('chunk', { bytes: Buffer.from(JSON.stringify(event)).toString('base64') })
    const stream = Buffer.concat([thinking, signature, text].map(chunk))
    expect(texts('/model/m/invoke-with-response-stream', 'application/vnd.amazon.eventstream', stream)).toEqual(split)
    expect(texts('/model/m/invoke', 'application/json', JSON.stringify(whole))).toEqual(split)
  })

  it('Bedrock Converse: reasoningContent, streamed and whole', () => {
    const stream = Buffer.concat([
      frame('contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { text: 'Hmm. ' } } }),
      frame('contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { signature: 'c2ln' } } }),
      frame('contentBlockDelta', { contentBlockIndex: 1, delta: { text: 'Four.' } }),
      frame('metadata', { usage: { inputTokens: 1, outputTokens: 2 } }),
    ])
    expect(texts('/model/m/converse-stream', 'application/vnd.amazon.eventstream', stream)).toEqual(split)
    const body = {
      output: {
        message: {
          content: [{ reasoningContent: { reasoningText: { text: 'Hmm. ', signature: 'c2ln' } } }, { text: 'Four.' }],
        },
      },
      usage: { inputTokens: 1, outputTokens: 2 },
    }
    expect(texts('/model/m/converse', 'application/json', JSON.stringify(body))).toEqual(split)
  })

  it('OpenAI Chat: reasoning_content and reasoning', () => {
    const chunk = (delta: object) => ({ object: 'chat.completion.chunk', choices: [{ index: 0, delta }] })
    const stream = sse([chunk({ reasoning_content: 'Hmm. ' }), chunk({ content: 'Four.' })])
    expect(texts('/v1/chat/completions', 'text/event-stream', stream)).toEqual(split)
    const other = sse([chunk({ reasoning: 'Hmm. ' }), chunk({ content: 'Four.' })])
    expect(texts('/v1/chat/completions', 'text/event-stream', other)).toEqual(split)
    const body = {
      object: 'chat.completion',
      choices: [{ message: { content: 'Four.', reasoning_content: 'Hmm. ' } }],
      usage: {},
    }
    // A whole message names its parts, not their order: the answer first.
    expect(texts('/v1/chat/completions', 'application/json', JSON.stringify(body))).toEqual({
      all: 'Four.Hmm. ',
      answer: 'Four.',
    })
  })

  it('OpenAI Responses: reasoning summary and reasoning text deltas, and a reasoning item', () => {
    const stream = sse(
      [
        { type: 'response.created', response: {} },
        { type: 'response.reasoning_summary_text.delta', delta: 'Hmm. ' },
        { type: 'response.reasoning_text.delta', delta: 'Hm. ' },
        { type: 'response.output_text.delta', delta: 'Four.' },
      ],
      true,
    )
    expect(texts('/v1/responses', 'text/event-stream', stream)).toEqual({ all: 'Hmm. Hm. Four.', answer: 'Four.' })
    const body = {
      object: 'response',
      output: [
        { type: 'reasoning', summary: [{ type: 'summary_text', text: 'Hmm. ' }] },
        { type: 'message', content: [{ type: 'output_text', text: 'Four.' }] },
      ],
    }
    expect(texts('/v1/responses', 'application/json', JSON.stringify(body))).toEqual(split)
  })

  it('Gemini: parts marked thought', () => {
    const chunk = (part: object) => ({ candidates: [{ content: { parts: [part] } }] })
    const stream = sse([chunk({ text: 'Hmm. ', thought: true }), chunk({ text: 'Four.' })])
    expect(texts('/v1beta/models/g:streamGenerateContent?alt=sse', 'text/event-stream', stream)).toEqual(split)
  })

  it('Ollama: thinking', () => {
    const line = (message: object, done = false) => JSON.stringify({ model: 'q', created_at: 'x', message, done })
    const stream = `${line({ thinking: 'Hmm. ' })}\n${line({ content: 'Four.' }, true)}\n`
    expect(texts('/api/chat', 'application/x-ndjson', stream)).toEqual(split)
  })
})

// ---- the sidecar beside a gateway that drops reasoning ----------------------------------------------

/** What the provider states for every answer: input / output (Anthropic's convention, no cache). */
const TRUTH = { input: 640, output: 512 }

/** The prompt names the answer: `thinking|answer`, each streamed in two pieces. */
const parts = (prompt: string) => {
  const [thinking = '', answer = ''] = prompt.split('|')
  const half = (s: string) => [s.slice(0, Math.ceil(s.length / 2)), s.slice(Math.ceil(s.length / 2))]
  return { thinking, answer, thinkingPieces: half(thinking), answerPieces: half(answer) }
}

type Upstream = 'anthropic-messages' | 'openai-chat'

/** A provider that thinks before it answers: Anthropic Messages (thinking blocks) or OpenAI Chat (reasoning_content). */
async function thinkingProvider() {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      const last = body.messages.at(-1).content as string
      const { thinking, answer, thinkingPieces, answerPieces } = parts(last)
      const pause = () => new Promise((r) => setTimeout(r, 5))
      if (req.url === '/v1/chat/completions') {
        const chunk = (choices: object[], usage?: object) =>
          `data: ${JSON.stringify({ object: 'chat.completion.chunk', model: 'deepseek-reasoner', choices, ...(usage && { usage }) })}\n\n`
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        for (const piece of thinkingPieces) res.write(chunk([{ index: 0, delta: { reasoning_content: piece } }]))
        for (const piece of answerPieces) {
          await pause()
          res.write(chunk([{ index: 0, delta: { content: piece } }]))
        }
        res.write(chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]))
        const usage = {
          prompt_tokens: TRUTH.input,
          completion_tokens: TRUTH.output,
          total_tokens: TRUTH.input + TRUTH.output,
          completion_tokens_details: { reasoning_tokens: 300 },
        }
        if (body.stream_options?.include_usage) res.write(chunk([], usage))
        return res.end('data: [DONE]\n\n')
      }
      const message = { id: 'msg_p', type: 'message', role: 'assistant', model: 'claude-sonnet-4-6' }
      if (!body.stream) {
        res.writeHead(200, { 'content-type': 'application/json' })
        return res.end(
          JSON.stringify({
            ...message,
            content: [
              { type: 'thinking', thinking, signature: 'c2ln' },
              { type: 'text', text: answer },
            ],
            stop_reason: 'end_turn',
            stop_sequence: null,
            usage: { input_tokens: TRUTH.input, output_tokens: TRUTH.output },
          }),
        )
      }
      const event = (data: Record<string, unknown>) => `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(
        event({
          type: 'message_start',
          message: { ...message, content: [], usage: { input_tokens: TRUTH.input, output_tokens: 1 } },
        }),
      )
      res.write(event({ type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } }))
      for (const piece of thinkingPieces)
        res.write(event({ type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: piece } }))
      res.write(event({ type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'c2ln' } }))
      res.write(event({ type: 'content_block_stop', index: 0 }))
      res.write(event({ type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } }))
      for (const piece of answerPieces) {
        await pause()
        res.write(event({ type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: piece } }))
      }
      res.write(event({ type: 'content_block_stop', index: 1 }))
      res.write(
        event({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: TRUTH.output } }),
      )
      res.end(event({ type: 'message_stop' }))
    })
  })
  return { url: await listen(server), close: () => shut(server) }
}

/**
 * A broken translator: Anthropic Messages to its clients, the provider's thinking left out of its answer
 * (as Headroom 0.27 does), zeros in message_start and the number of text chunks as output_tokens. It
 * forwards no client header, and ignores the usage it asks for. With `keep`, it passes the thinking on. With `together`, it calls the
 * provider only once that many client requests have arrived.
 */
async function droppingGateway(
  upstream: Upstream,
  providerUrl: () => string,
  { keep = false, together = 1 }: { keep?: boolean; together?: number } = {},
) {
  const waiting: Array<() => void> = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      const request = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      if (together > 1) {
        const arrived = new Promise<void>((resolve) => waiting.push(resolve))
        if (waiting.length >= together) for (const go of waiting.splice(0)) go()
        await arrived
      }
      const chat = upstream === 'openai-chat'
      const response = await fetch(`${providerUrl()}${chat ? '/v1/chat/completions' : '/v1/messages'}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(
          chat
            ? {
                model: 'deepseek-reasoner',
                messages: request.messages,
                stream: true,
                stream_options: { include_usage: true },
              }
            : { ...request, thinking: { type: 'enabled', budget_tokens: 1024 } },
        ),
      })
      if (!request.stream) {
        const message = (await response.json()) as { content: Array<{ type: string }>; usage: object }
        message.content = message.content.filter((block) => keep || block.type !== 'thinking')
        message.usage = { input_tokens: 0, output_tokens: 0 }
        res.writeHead(200, { 'content-type': 'application/json' })
        return res.end(JSON.stringify(message))
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      const write = (data: Record<string, unknown>) =>
        res.write(`event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`)
      let texts = 0
      write({
        type: 'message_start',
        message: {
          id: 'msg_g',
          type: 'message',
          role: 'assistant',
          model: request.model,
          content: [],
          usage: { input_tokens: 0, output_tokens: 0 },
        },
      })
      const text = (content: string, index: number) => {
        texts++
        write({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: content } })
      }
      // Anthropic blocks keep their order; without the thinking, the text block is the first.
      const thinking = new Set<number>()
      const indexOf = (index: number) => (keep ? index : index - [...thinking].filter((i) => i < index).length)
      const parser = createParser({
        onEvent: (e) => {
          if (e.data === '[DONE]') return
          const data = JSON.parse(e.data)
          if (chat) {
            const content = data.choices?.[0]?.delta?.content
            if (typeof content === 'string' && content !== '') text(content, 0)
            return
          }
          if (!String(data.type).startsWith('content_block_')) return
          if (data.type === 'content_block_start' && data.content_block.type === 'thinking') thinking.add(data.index)
          if (thinking.has(data.index) && !keep) return
          if (data.delta?.type === 'text_delta') text(data.delta.text, indexOf(data.index))
          else write({ ...data, index: indexOf(data.index) })
        },
      })
      if (chat) write({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })
      const decoder = new TextDecoder()
      for await (const chunk of response.body!) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }))
      if (chat) write({ type: 'content_block_stop', index: 0 })
      write({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: texts } })
      write({ type: 'message_stop' })
      res.end()
    })
  })
  return { url: await listen(server), close: () => shut(server) }
}

async function sidecarFor(upstream: Upstream, gateway: { keep?: boolean; together?: number } = {}) {
  const provider = await thinkingProvider()
  open.push(provider)
  let providerUrl = ''
  const translator = await droppingGateway(upstream, () => providerUrl, gateway)
  open.push(translator)
  const options: ProxyOptions = {
    listen: '127.0.0.1:0',
    target: translator.url,
    providerListen: '127.0.0.1:0',
    provider: provider.url,
    correlation: ['header', 'content'],
  }
  const sidecar = await startProxy(options)
  open.push(sidecar)
  providerUrl = sidecar.providerUrl!
  return sidecar
}

const anthropic = (url: string) => new Anthropic({ apiKey: 'x', baseURL: url, maxRetries: 0 })
const ask = (prompt: string) => ({
  model: 'claude-sonnet-4-6',
  max_tokens: 2048,
  messages: [{ role: 'user' as const, content: prompt }],
})

describe.each(['anthropic-messages', 'openai-chat'] as const)('a gateway that drops the %s thinking', (upstream) => {
  it("joins the client's answer to the provider's call by content: the client reads the provider's numbers", async () => {
    const sidecar = await sidecarFor(upstream)
    const message = await anthropic(sidecar.url).messages.stream(ask('Two and two?|The answer is 4.')).finalMessage()
    expect(message.content).toEqual([expect.objectContaining({ type: 'text', text: 'The answer is 4.' })])
    expect(message.usage).toMatchObject({ input_tokens: TRUTH.input, output_tokens: TRUTH.output })
    const record = await waitFor(() => sidecar.records[0], 'the record')
    expect(record.correlation).toEqual({ by: 'content' })
    expect(record.usage).toMatchObject(TRUTH)
    expect(record.sources.input).toMatch(/^tap:/)
  })

  it('12 requests at once, each its own thinking and answer: each is joined to its own call', async () => {
    const sidecar = await sidecarFor(upstream, { together: 12 })
    const client = anthropic(sidecar.url)
    const messages = await Promise.all(
      Array.from({ length: 12 }, (_, n) =>
        client.messages.stream(ask(`Thinking of ${n}.|The answer is ${n}.`)).finalMessage(),
      ),
    )
    for (const [n, message] of messages.entries()) {
      expect(message.content).toEqual([expect.objectContaining({ text: `The answer is ${n}.` })])
      expect(message.usage).toMatchObject({ input_tokens: TRUTH.input, output_tokens: TRUTH.output })
    }
    await waitFor(() => sidecar.records.length === 12 || undefined, '12 records')
    expect(sidecar.records.map((r) => r.correlation?.by)).toEqual(Array(12).fill('content'))
  })
})

describe('content correlation with reasoning', () => {
  it('a gateway that passes the thinking on is joined by the whole text, as before', async () => {
    const sidecar = await sidecarFor('anthropic-messages', { keep: true })
    const message = await anthropic(sidecar.url).messages.stream(ask('Two and two?|The answer is 4.')).finalMessage()
    expect(message.content.map((block) => block.type)).toEqual(['thinking', 'text'])
    expect(message.usage).toMatchObject({ input_tokens: TRUTH.input, output_tokens: TRUTH.output })
    expect((await waitFor(() => sidecar.records[0], 'the record')).correlation).toEqual({ by: 'content' })
  })

  it('a JSON answer without its thinking block is joined too', async () => {
    const sidecar = await sidecarFor('anthropic-messages')
    const message = await anthropic(sidecar.url).messages.create(ask('Two and two?|The answer is 4.'))
    expect(message.content.map((block) => block.type)).toEqual(['text'])
    expect(message.usage).toMatchObject({ input_tokens: TRUTH.input, output_tokens: TRUTH.output })
    expect((await waitFor(() => sidecar.records[0], 'the record')).correlation).toEqual({ by: 'content' })
  })

  it('two requests in flight whose answers are the same, their thinking not: nothing is joined', async () => {
    const sidecar = await sidecarFor('anthropic-messages', { together: 2 })
    const client = anthropic(sidecar.url)
    const messages = await Promise.all([
      client.messages.stream(ask('One way.|The answer is 4.')).finalMessage(),
      client.messages.stream(ask('Another way.|The answer is 4.')).finalMessage(),
    ])
    // The gateway's own (wrong) numbers reach both clients: never another request's.
    for (const message of messages) expect(message.usage.input_tokens).toBe(0)
    await waitFor(() => sidecar.records.length === 2 || undefined, 'two records')
    for (const record of sidecar.records) {
      expect(record.correlation).toEqual({
        by: 'none',
        reason: 'ambiguous: 2 requests in flight with the same generated text',
      })
      expect(record.sources.input).not.toMatch(/^tap:/)
    }
  })
})
