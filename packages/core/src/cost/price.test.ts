import { describe, expect, it } from 'vitest'
import type { RecordUsage } from '../record.js'
import { createPricer, matchModel, memo, validatePrices } from './price.js'
import { DEFAULT_PRICES, PRICES_AS_OF } from './table.js'

const usage = (parts: Partial<RecordUsage>): RecordUsage => ({
  input: 0,
  cacheRead: 0,
  cacheWrite: 0,
  output: 0,
  reasoning: 0,
  ...parts,
})
const price = createPricer(undefined)!
const keys = new Set(Object.keys(DEFAULT_PRICES))

describe('model matching', () => {
  it.each([
    ['claude-sonnet-4-5', 'claude-sonnet-4-5'],
    ['claude-sonnet-4-5-20250929', 'claude-sonnet-4-5'],
    ['anthropic.claude-sonnet-4-5-20250929-v1:0', 'claude-sonnet-4-5'],
    ['us.anthropic.claude-sonnet-4-5-20250929-v1:0', 'claude-sonnet-4-5'],
    ['global.anthropic.claude-haiku-4-5-20251001-v1:0', 'claude-haiku-4-5'],
    ['anthropic.claude-3-haiku-20240307-v1:0:200k', 'claude-3-haiku'],
    ['arn:aws:bedrock:us-east-1:1234:inference-profile/eu.anthropic.claude-sonnet-4-20250514-v1:0', 'claude-sonnet-4'],
    ['claude-sonnet-4-5@20250929', 'claude-sonnet-4-5'],
    ['claude-3-7-sonnet-latest', 'claude-3-7-sonnet'],
    ['Claude-Opus-4-1-20250805', 'claude-opus-4-1'],
    ['gpt-4o-2024-08-06', 'gpt-4o'],
    ['gpt-4o-2024-05-13', 'gpt-4o-2024-05-13'],
    ['gpt-4o-mini-2024-07-18', 'gpt-4o-mini'],
    ['openai/gpt-4.1-mini', 'gpt-4.1-mini'],
    ['o4-mini-2025-04-16', 'o4-mini'],
    ['gpt-5-2025-08-07', 'gpt-5'],
    ['models/gemini-2.5-pro', 'gemini-2.5-pro'],
  ])('%s prices as %s', (model, key) => {
    expect(matchModel(model, keys)).toBe(key)
  })

  it.each([
    'claude-sonnet-4-6',
    'gpt-4o-audio-preview',
    'gpt-5-chat-latest',
    'o3-mini',
    'gemini-2.5-flash-preview-09-2025',
    'gpt-5.6-2026-07-15',
    'my-azure-deployment',
  ])('%s has no entry, so it is not priced as a neighbour', (model) => {
    expect(matchModel(model, keys)).toBeUndefined()
    expect(price(model, usage({ input: 10, output: 10 }))).toBeUndefined()
  })
})

describe('pricing', () => {
  it('prices each bucket at its rate and adds the parts exactly', () => {
    const cost = price(
      'claude-sonnet-4-5-20250929',
      usage({ input: 1, cacheRead: 30433, cacheWrite: 287, output: 412 }),
    )
    expect(cost).toEqual({
      currency: 'USD',
      total: 0.01638915,
      input: 0.000003,
      cacheRead: 0.0091299,
      cacheWrite: 0.00107625,
      output: 0.00618,
      asOf: PRICES_AS_OF,
      model: 'claude-sonnet-4-5',
    })
  })

  it('prices reasoning as the part of output it is, never a second time', () => {
    const plain = price('o3', usage({ input: 100, output: 1000 }))!
    const thinking = price('o3', usage({ input: 100, output: 1000, reasoning: 900 }))!
    expect(thinking).toEqual(plain)
    expect(thinking.output).toBe(0.008)
  })

  it('prices 5-minute and 1-hour cache writes at their own rates', () => {
    const fiveMinutes = price('claude-sonnet-4-5', usage({ cacheWrite: 4000, cacheWrite5m: 4000, cacheWrite1h: 0 }))!
    const oneHour = price('claude-sonnet-4-5', usage({ cacheWrite: 4000, cacheWrite5m: 0, cacheWrite1h: 4000 }))!
    const split = price('claude-sonnet-4-5', usage({ cacheWrite: 4000, cacheWrite5m: 1000, cacheWrite1h: 3000 }))!
    expect(fiveMinutes.cacheWrite).toBe(0.015)
    expect(oneHour.cacheWrite).toBe(0.024)
    expect(split.cacheWrite).toBe(0.02175)
  })

  it('prices a cache write with no TTL split at the 5-minute rate, the default TTL', () => {
    const unsplit = price('claude-haiku-4-5', usage({ cacheWrite: 2000 }))!
    expect(unsplit.cacheWrite).toBe(0.0025)
    // A split that covers only part of the write: the rest at the default rate.
    const partial = price('claude-haiku-4-5', usage({ cacheWrite: 2000, cacheWrite1h: 1000 }))!
    expect(partial.cacheWrite).toBe(0.00325)
  })

  it('prices OpenAI cache writes at the entry cacheWrite rate', () => {
    const pricer = createPricer({
      extend: { 'gpt-x': { input: 2, output: 8, cacheRead: 0.2, cacheWrite: 2.5, asOf: '2026-07-15' } },
    })!
    const cost = pricer('gpt-x-2026-07-15', usage({ input: 192, cacheRead: 8192, cacheWrite: 4096, output: 910 }))!
    expect(cost.cacheWrite).toBe(0.01024)
    expect(cost.model).toBe('gpt-x')
    expect(cost.asOf).toBe('2026-07-15')
  })

  it('leaves a request unpriced when a bucket with tokens has no rate, never priced at 0', () => {
    expect(price('gpt-4o', usage({ input: 10, cacheWrite: 100 }))).toBeUndefined()
    expect(price('gpt-5-pro', usage({ input: 10, cacheRead: 100 }))).toBeUndefined()
    expect(price('gpt-5-pro', usage({ input: 10, output: 1 }))?.total).toBe(0.00027)
  })

  it('prices the whole request at the long-prompt tier above its threshold', () => {
    const at = (input: number, cacheRead = 0) => price('gemini-2.5-pro', usage({ input, cacheRead, output: 1000 }))!
    expect(at(200_000)).toMatchObject({ input: 0.25, output: 0.01 })
    expect(at(200_001)).toMatchObject({ input: 0.5000025, output: 0.015 })
    // Cached tokens count toward the prompt size and are priced at the tier's cache rate.
    expect(at(1, 200_000)).toMatchObject({ input: 0.0000025, cacheRead: 0.05, output: 0.015 })
  })

  it('prices Claude Sonnet long context with its cache multipliers above 200k prompt tokens', () => {
    const cost = price(
      'anthropic.claude-sonnet-4-5-20250929-v1:0',
      usage({ input: 100_000, cacheRead: 100_000, cacheWrite: 1000, cacheWrite1h: 1000, output: 1000 }),
    )!
    expect(cost).toMatchObject({ input: 0.6, cacheRead: 0.06, cacheWrite: 0.012, output: 0.0225 })
    expect(price('claude-haiku-4-5', usage({ input: 300_000 }))!.input).toBe(0.3)
  })

  it('rounds to the nano-dollar so that sums are stable', () => {
    const cost = price('gpt-4.1-nano', usage({ input: 1, cacheRead: 1, output: 1 }))!
    expect(cost).toMatchObject({ input: 1e-7, cacheRead: 2.5e-8, output: 4e-7 })
    expect(cost.total).toBe(5.25e-7)
    const many = price('gpt-4o-mini', usage({ input: 3, cacheRead: 7, output: 11 }))!
    expect(Math.round(many.total * 1e9)).toBe(
      Math.round(many.input * 1e9) + Math.round(many.cacheRead * 1e9) + Math.round(many.output * 1e9),
    )
  })

  it('has no cost without a model', () => {
    expect(price(null, usage({ input: 5 }))).toBeUndefined()
  })
})

describe('the prices option', () => {
  it('a table replaces the default one', () => {
    const pricer = createPricer({ table: { 'my-model': { input: 1, output: 2, asOf: '2026-01-01' } } })!
    expect(pricer('my-model', usage({ input: 1_000_000 }))?.total).toBe(1)
    expect(pricer('gpt-4o', usage({ input: 1 }))).toBeUndefined()
  })

  it('extend adds entries and wins over the default entry of the same id', () => {
    const pricer = createPricer({
      extend: {
        'gpt-4o': { input: 1, output: 1, cacheRead: 1, asOf: '2026-02-02' },
        'us.anthropic.claude-sonnet-4-5-20250929-v1:0': { ...DEFAULT_PRICES['claude-sonnet-4-5']!, input: 3.3 },
      },
    })!
    expect(pricer('gpt-4o-2024-11-20', usage({ input: 1_000_000 }))).toMatchObject({ total: 1, asOf: '2026-02-02' })
    expect(pricer('gpt-4.1', usage({ input: 1_000_000 }))?.total).toBe(2)
    expect(pricer('us.anthropic.claude-sonnet-4-5-20250929-v1:0', usage({ input: 100_000 }))?.total).toBe(0.33)
    expect(pricer('eu.anthropic.claude-sonnet-4-5-20250929-v1:0', usage({ input: 100_000 }))?.total).toBe(0.3)
  })

  it('false turns cost off', () => {
    expect(createPricer(false)).toBeUndefined()
  })

  it.each([
    [[]],
    ['default'],
    [{ table: [] }],
    [{ extend: { m: { input: 1, asOf: '2026-01-01' } } }],
    [{ extend: { m: { input: -1, output: 1, asOf: '2026-01-01' } } }],
    [{ extend: { m: { input: 1, output: 1 } } }],
    [{ extend: { m: { input: 1, output: 1, cacheRead: '0.1', asOf: '2026-01-01' } } }],
    [{ extend: { m: { input: 1, output: 1, asOf: '2026-01-01', tiers: [{ input: 2, output: 2 }] } } }],
  ])('a mistake in it is thrown when the middleware is created: %j', (option) => {
    expect(() => validatePrices(option)).toThrow(TypeError)
  })

  it('the default table is valid and every entry has its as-of date', () => {
    expect(() => validatePrices({ table: DEFAULT_PRICES })).not.toThrow()
    for (const entry of Object.values(DEFAULT_PRICES)) expect(entry.asOf).toMatch(/^\d{4}-\d{2}-\d{2}$/)
  })
})

describe('the model memo', () => {
  it('holds at most its size, and answers the same after starting over', () => {
    let calls = 0
    const keyOf = memo(4, (model: string) => (calls++, matchModel(model, keys)))
    expect(keyOf('gpt-4o-2024-08-06')).toBe('gpt-4o')
    expect(keyOf('gpt-4o-2024-08-06')).toBe('gpt-4o')
    expect(calls).toBe(1)
    for (let i = 0; i < 50; i++) keyOf(`ft:gpt-4o:org:custom:${i}`)
    expect(keyOf.size()).toBeLessThanOrEqual(4)
    expect(keyOf('gpt-4o-2024-08-06')).toBe('gpt-4o')
  })

  it('a pricer fed ever new model names still prices a known one', () => {
    const pricer = createPricer(undefined)!
    for (let i = 0; i < 3000; i++) pricer(`made-up-model-${i}`, usage({ input: 1 }))
    expect(pricer('claude-sonnet-4-5', usage({ input: 1_000_000 }))?.total).toBeGreaterThan(0)
  })
})
