/**
 * A dialect is one folder and one registry line: each registered dialect has its folder with fixtures,
 * its docs page, and its routes among the defaults.
 */
import { existsSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { DEFAULT_ROUTES, DIALECTS } from '@usagewire/core'
import { describe, expect, it } from 'vitest'
import { DIALECTS_DIR } from './fixtures.js'

const DOCS = fileURLToPath(new URL('../../docs/dialects/', import.meta.url))

describe('the dialect registry', () => {
  it.each(DIALECTS.map((spec) => [spec.id, spec] as const))(
    '%s has its folder, fixtures, docs page and routes',
    (id, spec) => {
      expect(existsSync(`${DIALECTS_DIR}${id}/index.ts`)).toBe(true)
      expect(readdirSync(`${DIALECTS_DIR}${id}/fixtures`).some((f) => f.endsWith('.expect.json'))).toBe(true)
      expect(existsSync(`${DOCS}${id}.md`)).toBe(true)
      for (const path of spec.routes) expect(DEFAULT_ROUTES).toContainEqual({ path, dialect: id })
    },
  )

  it('ids are unique', () => {
    expect(new Set(DIALECTS.map((spec) => spec.id)).size).toBe(DIALECTS.length)
  })
})
