import { describe, expect, it } from 'vitest'
import { Ledger } from '../../ledger.js'
import { createProcessor } from '../../processor.js'
import { ollama } from './index.js'
import { fromOllamaUsage, toOllamaUsage } from './usage.js'

const line = (extra: string) =>
  `{"model":"llama3.2","created_at":"2026-09-17T15:42:59Z","message":{"role":"assistant","content":"\\u003c"},"done":true,"done_reason":"stop","total_duration":30258609300${extra}}`

describe('fromOllamaUsage', () => {
  it('prompt_eval_count includes the cached part; eval_count is the output', () => {
    expect(fromOllamaUsage({ prompt_eval_count: 40, prompt_eval_cached_count: 32, eval_count: 5 }, 'done')).toEqual({
      usage: { input: 8, cacheRead: 32, output: 5 },
      sources: {
        input: 'done.prompt_eval_count',
        cacheRead: 'done.prompt_eval_cached_count',
        output: 'done.eval_count',
      },
    })
  })

  it('a missing prompt_eval_count (a cached prompt on an older server) is unknown, not 0', () => {
    expect(fromOllamaUsage({ eval_count: 12 }, 'done').usage).toEqual({ output: 12 })
  })

  it('a cached count above the prompt count subtracts nothing', () => {
    expect(fromOllamaUsage({ prompt_eval_count: 8, prompt_eval_cached_count: 32 }, 'done').usage).toEqual({
      input: 8,
      cacheRead: 32,
    })
  })
})

describe('toOllamaUsage', () => {
  it('writes the whole prompt and the output, and never an unknown value', () => {
    expect(toOllamaUsage({ eval_count: 12 }, { output: 12 })).toEqual({ eval_count: 12 })
    expect(toOllamaUsage({ eval_count: 12 }, { input: 100, cacheRead: 20, output: 12 })).toEqual({
      eval_count: 12,
      prompt_eval_count: 120,
      prompt_eval_cached_count: 20,
    })
    expect(toOllamaUsage({ prompt_eval_count: 9 }, { input: 9, cacheRead: 0 })).toEqual({ prompt_eval_count: 9 })
  })
})

describe('the ollama reader through the processor', () => {
  const run = (body: string, ledger = new Ledger()) => {
    const processor = createProcessor({ dialect: ollama, contentType: 'application/x-ndjson', ledger })
    const out = Buffer.concat([...processor.push(Buffer.from(body)), ...processor.end()].map((c) => Buffer.from(c)))
    return { out: out.toString('utf8'), result: processor.result(), ledger }
  }

  it('lines that say "done":false are never parsed; the done line is final', () => {
    const body = `{"done":false,"message":{"content":"\\"done\\":true {"}}\n${line(',"prompt_eval_count":26,"eval_count":3')}\n`
    const { out, result, ledger } = run(body)
    expect(out).toBe(body)
    expect(result).toMatchObject({ dialect: 'ollama', model: 'llama3.2', final: true, ended: true, corrections: [] })
    expect(result.passthrough).toBeUndefined()
    expect(ledger.usage()).toEqual({ input: 26, output: 3 })
  })

  it('a truer source rewrites the counts in place, adds a missing one, and keeps every other byte', () => {
    const ledger = new Ledger()
    ledger.observe('tap', { input: 120, output: 12 }, { input: 'tap.prompt_eval_count', output: 'tap.eval_count' })
    const before = line(',"prompt_eval_duration":1000,"eval_count":11,"eval_duration":173639000')
    const { out, result } = run(`${before}\n`, ledger)
    expect(out).toBe(
      `${line(',"prompt_eval_duration":1000,"eval_count":12,"eval_duration":173639000,"prompt_eval_count":120')}\n`,
    )
    expect(result.corrections).toEqual([
      { where: 'done@0', field: 'eval_count', from: 11, to: 12 },
      { where: 'done@0', field: 'prompt_eval_count', from: null, to: 120 },
    ])
  })

  it('an error line names the error', () => {
    const { result } = run('{"error":"model \\"x\\" not found"}\n')
    expect(result.error).toBe('model "x" not found')
  })
})
