/**
 * With usagewire and the upstream tap: whatever the translator writes, the official Anthropic SDK ends with
 * the provider's own numbers, the record says they came from the tap, and the text is the translator's,
 * unchanged. The same translators without usagewire report their bugs (baseline.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tapUpstream } from '@usagewire/core/node'
import { TEXT } from '../translator/index.js'
import { CASES, messagesRequest, useStack } from './helpers.js'

let tap: { close(): void }
beforeAll(() => {
  tap = tapUpstream({ maxWaitMs: 1000 })
})
afterAll(() => tap.close())

describe.each(CASES)('$adapter translating to $upstream, with usagewire and the tap', ({ adapter, upstream }) => {
  const stack = useStack(adapter, upstream, {})

  it('streams: the SDK’s final usage is the provider’s, the text unchanged', async () => {
    const { truth } = stack
    const record = stack.nextRecord()
    const message = await stack.client.messages.stream(messagesRequest(stack.model)).finalMessage()
    expect(message.content).toEqual([{ type: 'text', text: TEXT }])
    expect(message.stop_reason).toBe('end_turn')
    expect(message.usage).toMatchObject({
      input_tokens: truth.input,
      cache_read_input_tokens: truth.cacheRead,
      cache_creation_input_tokens: truth.cacheWrite,
      output_tokens: truth.output,
    })

    const { usage, sources, status, dialect, streaming } = await record()
    expect({ status, dialect, streaming }).toEqual({
      status: 'complete',
      dialect: 'anthropic-messages',
      streaming: true,
    })
    expect(usage).toMatchObject(truth)
    expect(sources.input).toMatch(/^tap:/)
    expect(sources.cacheRead).toMatch(/^tap:/)
    expect(sources.output).toMatch(/^tap:/)
    if (truth.cacheWrite > 0) expect(sources.cacheWrite).toMatch(/^tap:/)
  })

  it('answers whole: the body’s usage is the provider’s', async () => {
    const { truth } = stack
    const record = stack.nextRecord()
    const message = await stack.client.messages.create(messagesRequest(stack.model))
    expect(message.content).toEqual([{ type: 'text', text: TEXT }])
    expect(message.usage).toMatchObject({
      input_tokens: truth.input,
      cache_read_input_tokens: truth.cacheRead,
      cache_creation_input_tokens: truth.cacheWrite,
      output_tokens: truth.output,
    })

    const { usage, sources, status, streaming } = await record()
    expect({ status, streaming }).toEqual({ status: 'complete', streaming: false })
    expect(usage).toMatchObject(truth)
    expect(sources.input).toMatch(/^tap:/)
    expect(sources.output).toMatch(/^tap:/)
  })

  it('gives overlapping requests the provider’s numbers each, never added up', async () => {
    const { truth } = stack
    const before = stack.translator.records.length
    const messages = await Promise.all(
      [1, 2, 3].map(() => stack.client.messages.stream(messagesRequest(stack.model)).finalMessage()),
    )
    for (const message of messages) {
      expect(message.content).toEqual([{ type: 'text', text: TEXT }])
      expect(message.usage).toMatchObject({ input_tokens: truth.input, output_tokens: truth.output })
    }
    await expect.poll(() => stack.translator.records.length - before).toBe(3)
    for (const r of stack.translator.records.slice(before)) {
      expect(r.usage).toMatchObject(truth)
      expect(r.sources.input).toMatch(/^tap:/)
    }
  })
})
