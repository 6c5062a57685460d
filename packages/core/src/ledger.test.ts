import { describe, expect, it } from 'vitest'
import { Ledger } from './ledger.js'

describe('the ledger', () => {
  it('later cumulative snapshots replace earlier ones: set, never add (docs/peer-bugs.md rows 26, 27)', () => {
    const ledger = new Ledger()
    ledger.observe('stream', { output: 50, cacheRead: 100 }, { output: 'first' })
    ledger.observe('stream', { output: 120, cacheRead: 100 }, { output: 'second' })
    expect(ledger.usage()).toEqual({ output: 120, cacheRead: 100 })
    expect(ledger.sources().output).toBe('second')
  })

  it('a 0 after a non-zero value of the same counter is "unknown" and erases nothing', () => {
    const ledger = new Ledger()
    ledger.observe('stream', { input: 1234 }, {})
    ledger.observe('stream', { input: 0 }, {})
    expect(ledger.get('input')).toBe(1234)
  })

  it('a 0 first and a real value later: the later value wins (docs/peer-bugs.md row 28)', () => {
    const ledger = new Ledger()
    ledger.observe('stream', { input: 0 }, {})
    ledger.observe('stream', { input: 1234 }, {})
    expect(ledger.get('input')).toBe(1234)
  })

  it('the upstream tap beats the stream, the stream beats an estimate', () => {
    const ledger = new Ledger()
    ledger.observe('tap', { input: 10 }, { input: 'tap' })
    ledger.observe('stream', { input: 99, output: 5 }, { input: 'stream', output: 'stream' })
    ledger.observe('estimate', { output: 7, reasoning: 1 }, { output: 'estimate', reasoning: 'estimate' })
    expect(ledger.usage()).toEqual({ input: 10, output: 5, reasoning: 1 })
    expect(ledger.sources()).toEqual({ input: 'tap', output: 'stream', reasoning: 'estimate' })
  })
})

describe('the cache-write TTL split', () => {
  it('is kept while it adds up to the cache write', () => {
    const ledger = new Ledger()
    ledger.observe('stream', { cacheWrite: 3068, cacheWrite5m: 3068, cacheWrite1h: 0 }, {})
    expect(ledger.usage()).toEqual({ cacheWrite: 3068, cacheWrite5m: 3068, cacheWrite1h: 0 })
  })

  it('is dropped once a later total makes it stale (docs/usage-model.md#stale-ttl-split: start 3068, delta 3337)', () => {
    const ledger = new Ledger()
    ledger.observe('stream', { cacheWrite: 3068, cacheWrite5m: 3068, cacheWrite1h: 0 }, { cacheWrite5m: 'start' })
    ledger.observe('stream', { cacheWrite: 3337 }, {})
    expect(ledger.usage()).toEqual({ cacheWrite: 3337 })
    expect(ledger.sources().cacheWrite5m).toBeUndefined()
  })
})

describe('a whole usage block is one snapshot (docs/usage-model.md#one-block-one-snapshot)', () => {
  it('a block that restates the prompt total without a breakdown keeps the breakdown known', () => {
    const ledger = new Ledger()
    ledger.observe('stream', { input: 200, cacheRead: 800, output: 1 }, {}, true)
    ledger.observe('stream', { input: 1000, output: 5 }, {}, true)
    expect(ledger.usage()).toEqual({ input: 200, cacheRead: 800, output: 5 })
  })

  it('a block with another prompt total and no breakdown replaces the breakdown', () => {
    const ledger = new Ledger()
    ledger.observe('stream', { input: 100, cacheRead: 800, output: 1 }, {}, true)
    ledger.observe('stream', { input: 1000, output: 5 }, {}, true)
    expect(ledger.usage()).toEqual({ input: 1000, output: 5 })
  })

  it('a block whose cache count falls to 0 restates the prompt total: the cache is not counted twice', () => {
    const ledger = new Ledger()
    // prompt 1000 with 800 cached, then prompt 1000 with cached 0 ("unknown"): read as prompt 1000 − 0.
    ledger.observe('stream', { input: 200, cacheRead: 800, output: 1 }, {}, true)
    ledger.observe('stream', { input: 1000, cacheRead: 0, output: 5 }, {}, true)
    expect(ledger.usage()).toEqual({ input: 200, cacheRead: 800, output: 5 })
  })

  it('a block whose prompt leaves the cache out and whose cache count falls to 0 keeps both', () => {
    const ledger = new Ledger()
    ledger.observe('stream', { input: 200, cacheRead: 800, output: 1 }, {}, true)
    ledger.observe('stream', { input: 200, cacheRead: 0, output: 5 }, {}, true)
    expect(ledger.usage()).toEqual({ input: 200, cacheRead: 800, output: 5 })
  })

  it('a block with another prompt total whose cache count falls to 0 replaces the breakdown', () => {
    const ledger = new Ledger()
    ledger.observe('stream', { input: 200, cacheRead: 800, output: 1 }, {}, true)
    ledger.observe('stream', { input: 1500, cacheRead: 0, output: 5 }, {}, true)
    expect(ledger.usage()).toEqual({ input: 1500, output: 5 })
  })

  it('a stream block never clears what the tap knows', () => {
    const ledger = new Ledger()
    ledger.observe('tap', { input: 100, cacheRead: 800 }, {})
    ledger.observe('stream', { input: 1000, output: 5 }, {}, true)
    expect(ledger.usage()).toEqual({ input: 100, cacheRead: 800, output: 5 })
  })
})
