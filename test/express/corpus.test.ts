/**
 * The conformance corpus once more, end to end: every fixture body served by a real upstream in
 * uneven writes, through Express + usagewire + http-proxy-middleware, must reach the client exactly as
 * `inspect()` rewrites it, with the same usage record. This pins the interceptor (heads, chunk order,
 * corked writes, lengths) to the processor the corpus already checks.
 */
import { matchRoute, routeOf } from '@usagewire/core'
import { inspect } from '@usagewire/core/testing'
import { describe, expect, it } from 'vitest'
import { loadFixtures } from '../conformance/fixtures.js'
import { rawRequest, startGateway, startUpstream } from './helpers.js'

const fixtures = loadFixtures()
  // A client abort is a transport event the corpus simulates; it has its own tests in lifecycle.test.ts.
  .filter((f) => f.expect.abortAfterBytes === undefined)

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

describe('the corpus through the Express gateway', () => {
  it.each(fixtures)(
    '$name: the client gets what inspect() says, and the same record',
    async ({ name, expect: e, body }) => {
      const upstream = await startUpstream()
      // A path no default route names (Vertex's `:streamRawPredict`) is declared, its dialect left to the body.
      const route = routeOf(e.path)
      const gateway = await startGateway(upstream.url, {
        ...(e.maxEventBytes ? { maxEventBytes: e.maxEventBytes } : {}),
        ...(matchRoute(route) ? {} : { routes: [{ path: route }] }),
      })
      try {
        const streaming = e.contentType.startsWith('text/event-stream')
        upstream.reply = () => ({
          status: e.httpStatus ?? 200,
          headers: { 'content-type': e.contentType },
          ...(streaming ? { chunks: cut(body, name) } : { body }),
        })
        const res = await rawRequest(`${gateway.url}${e.path}`, { method: 'POST', body: '{}' })
        const expected = inspect(body, {
          path: e.path,
          contentType: e.contentType,
          httpStatus: e.httpStatus,
          maxEventBytes: e.maxEventBytes,
        })
        expect(res.body.equals(expected.output)).toBe(true)
        if (res.headers['content-length'] !== undefined)
          expect(Number(res.headers['content-length'])).toBe(res.body.length)
        const record = await gateway.record()
        const { id: _id, timing: _timing, route: _route, ...rest } = record
        const { id: _i, timing: _t, route: _r, ...want } = expected.record
        expect(rest).toEqual(want)
      } finally {
        await gateway.close()
        await upstream.close()
      }
    },
  )
})
