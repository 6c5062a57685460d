/**
 * `messageStart: 'hold'`: the translator's zero `message_start` waits for the tap's numbers, so a reader of
 * the start alone (Claude Code, SDKs ≤ 0.49: docs/dialects/anthropic-messages.md#how-sdks-accumulate) gets
 * the provider's input and cache counts, and the text behind it still arrives whole and in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tapUpstream } from '@usagewire/core/node'
import { TEXT, TEXT_DELTAS } from '../translator/index.js'
import { CASES, rawStream, textOf, useStack } from './helpers.js'

let tap: { close(): void }
beforeAll(() => {
  tap = tapUpstream({ maxWaitMs: 1000 })
})
afterAll(() => tap.close())

describe.each(CASES)('$adapter translating to $upstream, message_start held', ({ adapter, upstream }) => {
  const stack = useStack(adapter, upstream, { messageStart: 'hold', maxHoldMs: 3000 })

  it('sends message_start with the provider’s input and cache counts, then the whole text in order', async () => {
    const { truth } = stack
    const record = stack.nextRecord()
    const answer = await rawStream(stack.translator.url, stack.model)
    expect(answer.status).toBe(200)
    const names = answer.events.map((e) => e.event)
    expect(names[0]).toBe('message_start')
    expect.soft(answer.events[0]!.data.message.usage, 'message_start usage').toMatchObject({
      input_tokens: truth.input,
      cache_read_input_tokens: truth.cacheRead,
      cache_creation_input_tokens: truth.cacheWrite,
    })
    expect(names).toEqual([
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
    expect.soft(answer.events.at(-2)!.data.usage, 'message_delta usage').toMatchObject({
      input_tokens: truth.input,
      cache_read_input_tokens: truth.cacheRead,
      cache_creation_input_tokens: truth.cacheWrite,
      output_tokens: truth.output,
    })
    // Held for the truth, not for maxHoldMs: the provider answers at once.
    expect(answer.ms).toBeLessThan(2000)

    const { usage, sources } = await record()
    expect(usage).toMatchObject(truth)
    expect(sources.input).toMatch(/^tap:/)
  })
})
