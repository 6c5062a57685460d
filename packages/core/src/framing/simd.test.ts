import { readFileSync } from 'node:fs'
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
})
