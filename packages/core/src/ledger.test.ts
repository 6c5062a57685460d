import { describe, expect, it } from 'vitest'
import { Ledger } from './ledger.js'

describe('the ledger', () => {
  it('later cumulative snapshots replace earlier ones: set, never add (PEERS rows 26, 27)', () => {
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

  it('a 0 first and a real value later: the later value wins (PEERS row 28)', () => {
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

  it('is dropped once a later total makes it stale (WIRE §1.3: start 3068, delta 3337)', () => {
    const ledger = new Ledger()
    ledger.observe('stream', { cacheWrite: 3068, cacheWrite5m: 3068, cacheWrite1h: 0 }, { cacheWrite5m: 'start' })
    ledger.observe('stream', { cacheWrite: 3337 }, {})
    expect(ledger.usage()).toEqual({ cacheWrite: 3337 })
    expect(ledger.sources().cacheWrite5m).toBeUndefined()
  })
})
