/**
 * Every fixture of the conformance corpus (test/conformance), end to end: the upstream serves the raw
 * body (SSE in uneven chunked writes, JSON with its Content-Length); the client must receive exactly what
 * inspect() says and the record must be inspect()'s, which matches the fixture's expectation. A fixture
 * that simulates a client abort is played as one: the upstream sends the bytes before the cut and holds,
 * the client reads what inspect() says it gets and leaves; the upstream must be let go.
 */
import { matchRoute, routeOf, type UsageRecord } from '@usagewire/core'
import { expect } from 'vitest'
import { loadFixtures, type Fixture } from '../../conformance/fixtures.js'
import { matchPartial } from '../../conformance/wire.js'
import { openStream, rawRequest } from '../client.js'
import {
  comparable,
  expectBytes,
  expectHonestLength,
  expectRecordAsOracle,
  oracle,
  post,
  type Config,
  type Rig,
  type Scenario,
} from '../rig.js'
import { waitFor } from '../upstream.js'

/** Uneven writes, the same for every run of a fixture. */
function cut(body: Buffer, seed: string): Buffer[] {
  let state = [...seed].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7)
  const chunks: Buffer[] = []
  for (let at = 0; at < body.length;) {
    state = (state * 1103515245 + 12345) >>> 0
    const size = 1 + (state % 300)
    chunks.push(body.subarray(at, at + size))
    at += size
  }
  return chunks
}

/** The options a fixture needs: its maxEventBytes; its path declared when no default route names it. */
function fixtureConfig({ expect: e }: Fixture): Config {
  const route = routeOf(e.path)
  const options: Config['options'] = {
    ...(e.maxEventBytes ? { maxEventBytes: e.maxEventBytes } : {}),
    ...(matchRoute(route) ? {} : { routes: [{ path: route }] }),
  }
  return Object.keys(options).length > 0 ? { options } : {}
}

function expectFixtureRecord(record: UsageRecord, fx: Fixture, expected: UsageRecord): void {
  expect(matchPartial(record, fx.expect.record, 'record'), JSON.stringify(comparable(record))).toEqual([])
  expectRecordAsOracle(record, expected)
}

/** A whole fixture body, SSE in uneven chunked writes or JSON with its Content-Length: exactly what inspect() says. */
async function corpusWhole(rig: Rig, fx: Fixture): Promise<void> {
  const e = fx.expect
  const url = await rig.gateway(fixtureConfig(fx))
  const streaming = e.contentType.startsWith('text/event-stream')
  rig.upstream.reply = () => ({
    status: e.httpStatus ?? 200,
    headers: { 'content-type': e.contentType },
    ...(streaming ? { chunks: cut(fx.body, fx.name) } : { body: fx.body }),
  })
  const id = rig.id()
  const res = await rawRequest(`${url}${e.path}`, post(id))
  const expected = oracle(fx.body, e.path, e.contentType, { httpStatus: e.httpStatus, maxEventBytes: e.maxEventBytes })
  expect(res.status).toBe(e.httpStatus ?? 200)
  expectBytes(res.body, expected.output)
  expectHonestLength(res)
  expectFixtureRecord(await rig.record(id), fx, expected.record)
}

/**
 * A fixture that simulates a client abort: the upstream sends the bytes before the cut and holds the
 * rest; the client reads what inspect() says it gets, then goes away. The record is the aborted one, and
 * the upstream's response is let go.
 */
async function corpusAbort(rig: Rig, fx: Fixture): Promise<void> {
  const e = fx.expect
  const url = await rig.gateway(fixtureConfig(fx))
  const chunks = cut(fx.body.subarray(0, e.abortAfterBytes), fx.name)
  rig.upstream.reply = () => ({
    status: e.httpStatus ?? 200,
    headers: { 'content-type': e.contentType },
    chunks,
    keepOpen: true,
  })
  const id = rig.id()
  const expected = oracle(fx.body, e.path, e.contentType, {
    httpStatus: e.httpStatus,
    maxEventBytes: e.maxEventBytes,
    abortAfterBytes: e.abortAfterBytes,
  })
  const stream = await openStream(`${url}${e.path}`, post(id))
  await stream.until(() => stream.raw().length >= expected.output.length, 'the bytes before the cut')
  await waitFor(
    () => rig.upstream.progress(id)?.sent === chunks.length,
    'the upstream to send every byte before the cut',
  )
  expectBytes(stream.raw(), expected.output)
  stream.abort()
  expectFixtureRecord(await rig.record(id), fx, expected.record)
  await waitFor(
    () => rig.upstream.progress(id)?.closedEarly,
    "the upstream's response to be closed after the client left",
  )
}

export const CORPUS: Scenario[] = loadFixtures().map((fx) => ({
  name: `corpus ${fx.name}`,
  run: (rig) => (fx.expect.abortAfterBytes === undefined ? corpusWhole(rig, fx) : corpusAbort(rig, fx)),
}))
