/**
 * The conformance corpus: one fixture per bug in docs/peer-bugs.md (and a few contract cases from
 * other docs/ pages), each a raw upstream body plus `<name>.expect.json`. See COVERAGE.md for the map.
 *
 * For every fixture:
 *  - `row N: <behaviour>`: inspect() the body in one chunk; the record must match the expected
 *    partial record and the record invariants, and the output must pass the fixture's wire
 *    checks (wire.ts);
 *  - the chunking property: random chunkings (1..64 bytes) give byte-identical output and the
 *    same record (minus id and timing) as the one-chunk run.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { UsageRecord } from '@usagewire/core'
import { inspect } from '@usagewire/core/testing'
import { loadFixtures, orphanBodies, type Fixture } from './fixtures.js'
import { checkWire, matchPartial } from './wire.js'

/** docs/peer-bugs.md rows this corpus must cover. */
const REQUIRED_ROWS = [5, 6, 8, 9, 10, 11, 20, 21, 26, 27, 28, 29, 31, 36, 37, 38, 42, 43, 52, 53, 58]

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url))

const fixtures = loadFixtures()

function title(fx: Fixture): string {
  const label = fx.expect.row.length > 0 ? `row ${fx.expect.row.join(', ')}` : (fx.expect.ref ?? 'contract')
  return `${label}: ${fx.expect.behaviour} [${fx.name}]`
}

function run(fx: Fixture, chunks?: number[]) {
  const { path, contentType, httpStatus, abortAfterBytes, maxEventBytes } = fx.expect
  const { record, output } = inspect(fx.body, {
    path,
    contentType,
    ...(httpStatus !== undefined && { httpStatus }),
    ...(abortAfterBytes !== undefined && { abortAfterBytes }),
    ...(maxEventBytes !== undefined && { maxEventBytes }),
    ...(chunks && { chunks }),
  })
  return { record, output: Buffer.from(output) }
}

/**
 * What every record must satisfy, whatever the fixture: counts are non-negative integers, the TTL
 * split (when present) adds up to cacheWrite, reasoning is a part of output, an unknown count is 0,
 * and a correction changes something.
 */
function invariants(record: UsageRecord): string[] {
  const problems: string[] = []
  const u = record.usage
  for (const [field, value] of Object.entries(u)) {
    if (!Number.isInteger(value) || (value as number) < 0)
      problems.push(`invariant: usage.${field} = ${value} is not a count`)
  }
  if (u.cacheWrite5m !== undefined || u.cacheWrite1h !== undefined) {
    const split = (u.cacheWrite5m ?? 0) + (u.cacheWrite1h ?? 0)
    if (split !== u.cacheWrite)
      problems.push(`invariant: cacheWrite5m + cacheWrite1h = ${split} != cacheWrite ${u.cacheWrite}`)
  }
  if (u.reasoning > u.output) problems.push(`invariant: reasoning ${u.reasoning} > output ${u.output}`)
  for (const [field, source] of Object.entries(record.sources)) {
    const value = (u as unknown as Record<string, number | undefined>)[field]
    if (source === 'unknown' && value !== undefined && value !== 0)
      problems.push(`invariant: usage.${field} = ${value} but its source is unknown`)
  }
  for (const c of record.corrections)
    if (c.from === c.to) problems.push(`invariant: correction ${c.where} ${c.field} changes nothing`)
  return problems
}

/** The record without what legitimately differs between two runs. */
function comparable(record: object): unknown {
  const { id: _id, timing: _timing, ...rest } = record as Record<string, unknown>
  return JSON.parse(JSON.stringify(rest))
}

describe('conformance corpus', () => {
  it('has a body for every expectation and covers the required docs/peer-bugs.md rows', () => {
    expect(orphanBodies(fixtures), 'bodies without an expect.json').toEqual([])
    const covered = new Set(fixtures.flatMap((fx) => fx.expect.row))
    expect(
      REQUIRED_ROWS.filter((r) => !covered.has(r)),
      'required rows without a fixture',
    ).toEqual([])
  })

  it('COVERAGE.md names every fixture', () => {
    const coverage = readFileSync(here('./COVERAGE.md'), 'utf8')
    expect(fixtures.map((fx) => fx.name).filter((n) => !coverage.includes(`\`${n}\``))).toEqual([])
  })

  for (const fx of fixtures) {
    it(title(fx), () => {
      const { record, output } = run(fx)
      const problems = [
        ...matchPartial(record, fx.expect.record, 'record'),
        ...invariants(record),
        ...checkWire({
          input: fx.body,
          output,
          path: fx.expect.path,
          contentType: fx.expect.contentType,
          aborted: fx.expect.abortAfterBytes !== undefined,
          checks: fx.expect.wire ?? {},
        }),
      ]
      const context = `\nrecord: ${JSON.stringify(comparable(record))}\noutput:\n${output.toString('utf8').slice(-1500)}`
      expect(problems, context).toEqual([])
    })
  }
})

describe('chunking property: any chunking gives the same output and record', () => {
  for (const fx of fixtures) {
    it(title(fx), () => {
      const whole = run(fx)
      const chunkings = fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 })
      fc.assert(
        fc.property(chunkings, (chunks) => {
          const { record, output } = run(fx, chunks)
          expect(output.toString('utf8')).toBe(whole.output.toString('utf8'))
          expect(output.equals(whole.output)).toBe(true)
          expect(comparable(record)).toEqual(comparable(whole.record))
        }),
        { numRuns: 30, examples: [[[1]], [[64]], [[3, 1, 7]]] },
      )
    })
  }
})
