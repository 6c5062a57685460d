/**
 * Real clients through each gateway: the official SDKs must see the scenario's true usage, whatever the
 * upstream got wrong.
 */
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { expect } from 'vitest'
import { COMPLETE, type Scenario } from '../rig.js'
import {
  ANTHROPIC_MODEL,
  CHAT_MODEL,
  chatStream,
  RESPONSES_MODEL,
  responsesStream,
  SSE_HEADERS,
  within,
} from '../upstream.js'
import {
  BARE_RESPONSES,
  TRANSLATED_CHAT,
  TRUE_ANTHROPIC,
  TRUE_ANTHROPIC_RECORD,
  TRUE_CHAT,
  TRUE_CHAT_RECORD,
  TRUE_RESPONSES,
  TRUE_RESPONSES_RECORD,
  ZEROING_ANTHROPIC,
} from './shapes.js'

/** An SDK call, failing with a message when a gateway holds its stream back. */
const sdk = <T>(call: Promise<T>): Promise<T> =>
  within(call, 10_000, 'the SDK call did not finish in 10 s (a gateway that holds the stream back?)')

export const CLIENTS: Scenario[] = [
  {
    name: '@anthropic-ai/sdk messages.stream → finalMessage usage is the true usage',
    async run(rig) {
      const url = await rig.gateway()
      rig.upstream.reply = () => ({ headers: SSE_HEADERS, chunks: ZEROING_ANTHROPIC() })
      const id = rig.id()
      const client = new Anthropic({ apiKey: 'x', baseURL: url, maxRetries: 0, defaultHeaders: { 'x-request-id': id } })
      const message = await sdk(
        client.messages
          .stream({ model: ANTHROPIC_MODEL, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] })
          .finalMessage(),
      )
      expect(message.usage).toMatchObject(TRUE_ANTHROPIC)
      expect(message.content.map((b) => (b.type === 'text' ? b.text : ''))).toEqual(['Hello, wörld ✓'])
      const record = await rig.record(id)
      expect(record).toMatchObject({
        ...COMPLETE,
        dialect: 'anthropic-messages',
        model: ANTHROPIC_MODEL,
        streaming: true,
      })
      expect(record.usage).toEqual(TRUE_ANTHROPIC_RECORD)
    },
  },
  {
    name: 'openai chat.completions stream with include_usage → the last chunk carries the true usage',
    async run(rig) {
      const url = await rig.gateway()
      rig.upstream.reply = () => ({ headers: SSE_HEADERS, chunks: chatStream(TRANSLATED_CHAT) })
      const id = rig.id()
      const client = new OpenAI({
        apiKey: 'x',
        baseURL: `${url}/v1`,
        maxRetries: 0,
        defaultHeaders: { 'x-request-id': id },
      })
      const chunks = await sdk(
        (async () => {
          const stream = await client.chat.completions.create({
            model: CHAT_MODEL,
            messages: [{ role: 'user', content: 'hi' }],
            stream: true,
            stream_options: { include_usage: true },
          })
          const all = []
          for await (const chunk of stream) all.push(chunk)
          return all
        })(),
      )
      expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello ✓')
      expect(chunks.at(-1)!.usage).toMatchObject(TRUE_CHAT)
      expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true)
      expect(JSON.parse(rig.upstream.request(id)!.body.toString('utf8')).stream_options).toEqual({
        include_usage: true,
      })
      const record = await rig.record(id)
      expect(record).toMatchObject({ ...COMPLETE, dialect: 'openai-chat', model: CHAT_MODEL, streaming: true })
      expect(record.usage).toEqual(TRUE_CHAT_RECORD)
    },
  },
  {
    name: 'openai responses.create stream → response.completed carries the true usage',
    async run(rig) {
      const url = await rig.gateway()
      rig.upstream.reply = () => ({ headers: SSE_HEADERS, chunks: responsesStream(BARE_RESPONSES) })
      const id = rig.id()
      const client = new OpenAI({
        apiKey: 'x',
        baseURL: `${url}/v1`,
        maxRetries: 0,
        defaultHeaders: { 'x-request-id': id },
      })
      const events = await sdk(
        (async () => {
          const stream = await client.responses.create({ model: RESPONSES_MODEL, input: 'hi', stream: true })
          const all = []
          for await (const event of stream) all.push(event)
          return all
        })(),
      )
      expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i))
      const completed = events.at(-1)!
      if (completed.type !== 'response.completed') throw new Error(`the last event is ${completed.type}`)
      expect(completed.response.usage).toEqual(TRUE_RESPONSES)
      const record = await rig.record(id)
      expect(record).toMatchObject({
        ...COMPLETE,
        dialect: 'openai-responses',
        model: RESPONSES_MODEL,
        streaming: true,
      })
      expect(record.usage).toEqual(TRUE_RESPONSES_RECORD)
    },
  },
]
