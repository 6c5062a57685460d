import { EventStreamCodec, type MessageHeaders } from '@smithy/eventstream-codec'
import { fromUtf8, toUtf8 } from '@smithy/util-utf8'
import { describe, expect, it } from 'vitest'
import { createProcessor } from '../../processor.js'
import { familyOf, fromConverseUsage, modelIdOf, streamInputIncludesCache, toConverseUsage } from './usage.js'

const codec = new EventStreamCodec(toUtf8, fromUtf8)
const event = (type: string, payload: object) => {
  const headers: MessageHeaders = {
    ':event-type': { type: 'string', value: type },
    ':content-type': { type: 'string', value: 'application/json' },
    ':message-type': { type: 'string', value: 'event' },
  }
  return Buffer.from(codec.encode({ headers, body: fromUtf8(JSON.stringify(payload)) }))
}

describe('Converse TokenUsage', () => {
  it('maps to disjoint buckets: inputTokens excludes the cache, cacheDetails is the TTL split', () => {
    const { usage, sources } = fromConverseUsage(
      {
        inputTokens: 24,
        outputTokens: 30,
        totalTokens: 7254,
        cacheReadInputTokens: 6000,
        cacheWriteInputTokens: 1200,
        cacheDetails: [
          { ttl: '1h', inputTokens: 200 },
          { ttl: '5m', inputTokens: 1000 },
        ],
      },
      'metadata.usage',
    )
    expect(usage).toEqual({
      input: 24,
      cacheRead: 6000,
      cacheWrite: 1200,
      cacheWrite5m: 1000,
      cacheWrite1h: 200,
      output: 30,
    })
    expect(sources.cacheWrite1h).toBe('metadata.usage.cacheDetails')
  })

  it('reads the older spellings cacheRead/WriteInputTokenCount', () => {
    const { usage, sources } = fromConverseUsage(
      { inputTokens: 5, outputTokens: 1, cacheReadInputTokenCount: 700, cacheWriteInputTokenCount: 0 },
      'm',
    )
    expect(usage).toEqual({ input: 5, cacheRead: 700, cacheWrite: 0, output: 1 })
    expect(sources.cacheRead).toBe('m.cacheReadInputTokenCount')
  })

  it('reports nothing for counts it lacks, and no split from a TTL it does not know', () => {
    expect(fromConverseUsage({ inputTokens: 9, outputTokens: null }, 'm').usage).toEqual({ input: 9 })
    const odd = fromConverseUsage(
      { inputTokens: 9, cacheWriteInputTokens: 10, cacheDetails: [{ ttl: '2h', inputTokens: 10 }] },
      'm',
    )
    expect(odd.usage).toEqual({ input: 9, cacheWrite: 10 })
  })

  it('subtracts the cache only under the inclusive override, and never below zero', () => {
    const native = { inputTokens: 4995, outputTokens: 19, cacheWriteInputTokens: 4993 }
    expect(fromConverseUsage(native, 'm').usage.input).toBe(4995)
    expect(fromConverseUsage(native, 'm', true).usage.input).toBe(2)
    // An input smaller than the cache cannot include it.
    expect(fromConverseUsage({ inputTokens: 3, cacheReadInputTokens: 30433 }, 'm', true).usage.input).toBe(3)
  })

  it('writes known counts and a total of every prompt bucket and output, never an unknown one', () => {
    const native = { inputTokens: 86, outputTokens: 40, totalTokens: 126, cacheReadInputTokens: 1920 }
    expect(toConverseUsage(native, { input: 86, cacheRead: 1920, output: 40 })).toEqual({
      ...native,
      totalTokens: 2046,
    })
    // No output known: the total is not known either, and nothing is written as 0.
    expect(toConverseUsage({ inputTokens: 0 }, { input: 12 })).toEqual({ inputTokens: 12 })
    // A cache count the block lacked is added only when it is not 0; the older spelling only where it was.
    expect(
      toConverseUsage({ inputTokens: 1, outputTokens: 1 }, { input: 1, cacheRead: 0, cacheWrite: 5, output: 1 }),
    ).toEqual({
      inputTokens: 1,
      outputTokens: 1,
      cacheWriteInputTokens: 5,
      totalTokens: 7,
    })
    expect(toConverseUsage({ cacheReadInputTokenCount: 0 }, { cacheRead: 700 })).toEqual({
      cacheReadInputTokenCount: 700,
      cacheReadInputTokens: 700,
    })
  })
})

describe('the model in the path', () => {
  it('is decoded from /model/{modelId}/converse(-stream)', () => {
    expect(modelIdOf('/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream')).toBe(
      'anthropic.claude-3-5-haiku-20241022-v1:0',
    )
    expect(modelIdOf('/model/x/invoke')).toBeUndefined()
    expect(modelIdOf(undefined)).toBeUndefined()
  })

  it('names the family, inference profiles and ARNs included', () => {
    expect(familyOf('us.anthropic.claude-sonnet-4-20250514-v1:0')).toBe('anthropic')
    expect(familyOf('openai.gpt-oss-120b-1:0')).toBe('openai')
    expect(familyOf('arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.openai.gpt-oss-20b-1:0')).toBe(
      'openai',
    )
    expect(streamInputIncludesCache('openai.gpt-oss-120b-1:0')).toBe(true)
    expect(streamInputIncludesCache('anthropic.claude-3-5-haiku-20241022-v1:0')).toBe(false)
  })
})

describe('ConverseStream through the processor', () => {
  const options = { dialect: 'bedrock-converse', contentType: 'application/vnd.amazon.eventstream' }
  const start = event('messageStart', { role: 'assistant' })
  const delta = event('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Hi' }, p: 'abc' })
  const stop = event('messageStop', { stopReason: 'end_turn' })

  it('leaves frames other than metadata as the same Buffer, unparsed', () => {
    const processor = createProcessor(options)
    const chunk = Buffer.concat([start, delta, stop])
    const out = processor.push(chunk)
    expect(out).toHaveLength(1)
    expect(out[0]).toBe(chunk)
  })

  it('rewrites a metadata block that disagrees with itself, with valid CRCs', () => {
    const processor = createProcessor(options)
    const metadata = event('metadata', {
      usage: { inputTokens: 86, outputTokens: 40, totalTokens: 126, cacheReadInputTokens: 1920 },
      metrics: { latencyMs: 10 },
    })
    const out = Buffer.concat([...processor.push(Buffer.concat([start, metadata])), ...processor.end()])
    const frame = codec.decode(out.subarray(start.length))
    expect(JSON.parse(toUtf8(frame.body))).toEqual({
      usage: { inputTokens: 86, outputTokens: 40, totalTokens: 2046, cacheReadInputTokens: 1920 },
      metrics: { latencyMs: 10 },
    })
    expect(processor.result()).toMatchObject({ final: true, ended: true, dialect: 'bedrock-converse' })
  })

  it('passes frames with the headers of one passed unasked, yet reads metadata and hears exceptions', () => {
    const deltas = Array.from({ length: 30 }, (_, i) =>
      event('contentBlockDelta', { contentBlockIndex: 0, delta: { text: `w${i} ` } }),
    )
    const metadata = event('metadata', { usage: { inputTokens: 5, outputTokens: 30, totalTokens: 35 } })
    // An exception frame: other headers, read by the framer before any event is asked.
    const exception = Buffer.from(
      codec.encode({
        headers: {
          ':exception-type': { type: 'string', value: 'modelStreamErrorException' },
          ':content-type': { type: 'string', value: 'application/json' },
          ':message-type': { type: 'string', value: 'exception' },
        },
        body: fromUtf8('{"message":"boom"}'),
      }),
    )
    const body = Buffer.concat([start, ...deltas, stop, metadata, ...deltas, exception])
    for (const size of [body.length, 301, 40]) {
      const processor = createProcessor({ ...options, collectText: size === 40 })
      const out: Uint8Array[] = []
      for (let at = 0; at < body.length; at += size) out.push(...processor.push(body.subarray(at, at + size)))
      out.push(...processor.end())
      expect(Buffer.concat(out).equals(body)).toBe(true)
      expect(processor.ledger.usage()).toEqual({ input: 5, output: 30 })
      expect(processor.result().error).toMatch(/modelStreamErrorException/)
      if (size === 40)
        expect(processor.streamedText).toBe(
          deltas
            .map((_, i) => `w${i} `)
            .join('')
            .repeat(2),
        )
    }
  })

  it('is recognised from its first frame when the path does not say', () => {
    const processor = createProcessor({ contentType: 'application/vnd.amazon.eventstream', path: '/gateway/any' })
    processor.push(
      Buffer.concat([start, event('metadata', { usage: { inputTokens: 1, outputTokens: 2, totalTokens: 3 } })]),
    )
    processor.end()
    expect(processor.result().dialect).toBe('bedrock-converse')
    expect(processor.ledger.usage()).toEqual({ input: 1, output: 2 })
  })
})
