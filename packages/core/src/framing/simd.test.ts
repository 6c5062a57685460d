import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { assemble } from '../../scripts/assemble.mjs'
import { SIMD_BASE64 } from './simd.bytes.js'
import { simdKernel } from './simd.js'

describe('the SIMD kernel', () => {
  it('is the assembly of simd.wat (run `pnpm --filter @usagewire/core kernel` after changing it)', async () => {
    const wat = readFileSync(new URL('./simd.wat', import.meta.url), 'utf8')
    expect(Buffer.from(await assemble(wat)).toString('base64')).toBe(SIMD_BASE64)
  })

  it('is made on Node, once', () => {
    const kernel = simdKernel()
    expect(kernel).not.toBeNull()
    expect(simdKernel()).toBe(kernel)
  })

  it('leaves the compares to JavaScript where WebAssembly cannot be compiled (node --jitless)', () => {
    const simd = JSON.stringify(fileURLToPath(new URL('./simd.ts', import.meta.url)))
    const template = JSON.stringify(fileURLToPath(new URL('../dialects/template.ts', import.meta.url)))
    const script = `
      import { simdKernel } from ${simd}
      import { EventTemplate } from ${template}
      const e = Buffer.from('data: {"content":"a","n":1}\\n\\n')
      const t = EventTemplate.learn(e, 0, e.length, new Set(['content']))
      const many = Buffer.concat(Array.from({ length: 500 }, () => e))
      console.log(typeof WebAssembly, simdKernel(), t.run(many, 0, many.length) === many.length, t.ran)`
    const child = spawnSync(process.execPath, ['--jitless', '--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    })
    expect(child.stderr).not.toMatch(/Error/)
    expect(child.stdout.trim()).toBe('undefined null true 500')
  })
})
