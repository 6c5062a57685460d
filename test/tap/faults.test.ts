/**
 * The provider's connection is cut (it destroys the socket) before its usage: right after the first text
 * delta, or after the text and the stop but before the usage. Whatever the translator then sends, the
 * client gets it as valid SSE, in order and not repeated, without waiting past the tap's `maxWaitMs` (or
 * `maxHoldMs` with a held start) and a margin; a record arrives, with nothing taken from a tap that never
 * saw usage.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tapUpstream } from '@usagewire/core/node'
import type { UsagewireOptions } from '@usagewire/core'
import { FAULT_MODELS, TEXT, TEXT_DELTAS, type UpstreamKind } from '../translator/index.js'
import { CASES, rawStream, textOf, useStack, within } from './helpers.js'

const MAX_WAIT_MS = 1000
const MAX_HOLD_MS = 1500
/** Time for everything but the waits: servers on 127.0.0.1 answer in a few ms. */
const MARGIN_MS = 1000

let tap: { close(): void }
beforeAll(() => {
  tap = tapUpstream({ maxWaitMs: MAX_WAIT_MS })
})
afterAll(() => tap.close())

const whole = [
  'message_start',
  'content_block_start',
  ...TEXT_DELTAS.map(() => 'content_block_delta'),
  'content_block_stop',
]

/** The events each translator has sent when the provider's connection is cut. */
const SENT: Record<keyof typeof FAULT_MODELS, Record<UpstreamKind, string[]>> = {
  afterFirstDelta: {
    'bedrock-converse': ['message_start', 'content_block_start', 'content_block_delta'],
    'openai-responses': ['message_start', 'content_block_start', 'content_block_delta'],
    'openai-chat': ['message_start', 'content_block_start', 'content_block_delta'],
  },
  beforeUsage: {
    // The stop came: the translator wrote its message_delta and message_stop before the usage it never reads.
    'bedrock-converse': [...whole, 'message_delta', 'message_stop'],
    // The message_delta rides on response.completed, which never came.
    'openai-responses': whole,
    'openai-chat': [...whole, 'message_delta', 'message_stop'],
  },
}

const POLICIES: Array<{ policy: string; options: UsagewireOptions; boundMs: number }> = [
  { policy: 'patch-final', options: {}, boundMs: MAX_WAIT_MS + MARGIN_MS },
  { policy: 'hold', options: { messageStart: 'hold', maxHoldMs: MAX_HOLD_MS }, boundMs: MAX_HOLD_MS + MARGIN_MS },
]

describe.each(CASES)('$adapter translating to $upstream, provider cut', ({ adapter, upstream }) => {
  describe.each(POLICIES)('messageStart $policy', ({ options, boundMs }) => {
    const stack = useStack(adapter, upstream, options)

    it.each(Object.keys(FAULT_MODELS) as Array<keyof typeof FAULT_MODELS>)(
      '%s: the client gets what was translated, valid and in time, and a record',
      async (fault) => {
        const record = stack.nextRecord()
        const answer = await within(
          rawStream(stack.translator.url, FAULT_MODELS[fault]),
          boundMs,
          `no complete answer within ${boundMs} ms`,
        )
        expect(answer.status).toBe(200)
        expect(answer.ms).toBeLessThan(boundMs)
        expect(answer.events.map((e) => e.event)).toEqual(SENT[fault][upstream])
        expect(textOf(answer.events)).toBe(fault === 'afterFirstDelta' ? TEXT_DELTAS[0] : TEXT)

        const { usage, sources } = await within(record(), boundMs, 'no record')
        // The tap never saw usage: the input is what the translator said (0), nothing invented.
        expect(sources.input).not.toMatch(/^tap:/)
        expect(usage.input).toBe(0)
        expect(stack.provider.requests.at(-1)?.path).toMatch(
          upstream === 'bedrock-converse' ? /\/converse-stream$/ : /^\/v1\//,
        )
      },
    )
  })
})

describe('a cut provider, then a whole one, on the same gateway', () => {
  const stack = useStack('express', 'bedrock-converse', {})

  it('leaves no wait behind: the next request gets the provider’s numbers at once', async () => {
    await rawStream(stack.translator.url, FAULT_MODELS.beforeUsage)
    const record = stack.nextRecord()
    const started = Date.now()
    const message = await stack.client.messages
      .stream({ model: stack.model, max_tokens: 64, messages: [{ role: 'user', content: 'Say hello.' }] })
      .finalMessage()
    expect(Date.now() - started).toBeLessThan(MAX_WAIT_MS)
    expect(message.content).toEqual([{ type: 'text', text: TEXT }])
    expect(message.usage).toMatchObject({ input_tokens: stack.truth.input, output_tokens: stack.truth.output })
    expect((await record()).sources.input).toMatch(/^tap:/)
  })
})
