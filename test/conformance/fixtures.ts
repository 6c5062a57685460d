/**
 * The conformance fixtures live with their dialect (packages/core/src/dialects/<id>/fixtures/): a raw
 * upstream body (`.sse`, `.json`, `.eventstream` or `.ndjson`) and its `<name>.expect.json`. Both corpus runs load them here.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Json, WireChecks } from './wire.js'

export interface Expectation {
  row: number[]
  /** For contract fixtures that no docs/peer-bugs.md row names (e.g. a docs/ page anchor). */
  ref?: string
  behaviour: string
  path: string
  contentType: string
  httpStatus?: number
  abortAfterBytes?: number
  maxEventBytes?: number
  record: { [key: string]: Json }
  wire?: WireChecks
}

export interface Fixture {
  name: string
  dialect: string
  /** The body's file name, and its full path. */
  file: string
  path: string
  body: Buffer
  expect: Expectation
}

export const DIALECTS_DIR = fileURLToPath(new URL('../../packages/core/src/dialects/', import.meta.url))

/** Every fixture folder: one per dialect that has fixtures. */
export function fixtureDirs(): Array<{ dialect: string; dir: string }> {
  return readdirSync(DIALECTS_DIR, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(`${DIALECTS_DIR}${entry.name}/fixtures`))
    .map((entry) => ({ dialect: entry.name, dir: `${DIALECTS_DIR}${entry.name}/fixtures/` }))
}

export function loadFixtures(): Fixture[] {
  return fixtureDirs()
    .flatMap(({ dialect, dir }) =>
      readdirSync(dir)
        .filter((f) => f.endsWith('.expect.json'))
        .map((f) => {
          const name = f.slice(0, -'.expect.json'.length)
          // An AWS event stream body is binary: `<name>.eventstream`, the bytes exactly as sent. Newline-delimited
          // JSON (Ollama's streams) is `<name>.ndjson`.
          const file = ['sse', 'json', 'eventstream', 'ndjson'].map((ext) => `${name}.${ext}`).find((b) => existsSync(dir + b))
          if (!file) throw new Error(`fixture ${name}: no ${name}.sse, .json, .eventstream or .ndjson next to its expect.json`)
          return {
            name,
            dialect,
            file,
            path: dir + file,
            body: readFileSync(dir + file),
            expect: JSON.parse(readFileSync(dir + f, 'utf8')) as Expectation,
          }
        }),
    )
    .sort((a, b) => a.name.localeCompare(b.name))
}

/** Body files that have no expect.json beside them. */
export function orphanBodies(fixtures: readonly Fixture[]): string[] {
  return fixtureDirs().flatMap(({ dir }) =>
    readdirSync(dir)
      .filter((f) => !f.endsWith('.expect.json'))
      .filter((b) => !fixtures.some((fx) => fx.path === dir + b))
      .map((b) => dir + b),
  )
}
