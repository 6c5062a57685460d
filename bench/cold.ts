/**
 * Diagnostic, not part of `pnpm bench`: usagewire's CPU per response in this process, hot (responses
 * back to back, as row 4f measures it) and cold (before each response, a sweep over `MiB` of memory
 * evicts the caches, as the other requests a gateway serves between two of one response's writes do;
 * the response's own bytes are read once more after it, as bytes fresh from a socket are).
 *
 *   node --import tsx bench/cold.ts [MiB=4] [rounds=7]
 *
 * Each figure is the median over rounds of the mean over 1500 responses; hot and cold rounds alternate.
 * The bytes each allocates per response are read from V8's new space before and after 100 responses
 * (median of 9 batches; a batch a scavenge fell in reads low and is dropped).
 * Rows: the interceptor path (createInterceptor on a response that discards its bytes, less the same
 * response without it), the processor alone (the same 8 writes), and JSON.parse of the stream's two
 * usage events. See bench/README.md, "Where the misses stand".
 */
import type http from 'node:http'
import v8 from 'node:v8'
import { createProcessor } from '@usagewire/core'
import { createInterceptor } from '@usagewire/core/node'
import { NullResponse } from './gateway.bench.js'
import { anthropicBenchStream, E2E_DELTAS, E2E_WRITES, eventGroups } from './streams.js'
import { fmt, median } from './table.js'

const mib = Number(process.argv[2] ?? 4)
const rounds = Number(process.argv[3] ?? 7)
const PER_ROUND = 1500

const stream = anthropicBenchStream(E2E_DELTAS, 0)
const chunks = eventGroups(stream, E2E_WRITES)
const payloadOf = (name: string) => {
  const event = stream.events.map(String).find((e) => e.includes(`event: ${name}`))!
  return event.slice(event.indexOf('data: ') + 6).trimEnd()
}
const usageEvents = [payloadOf('message_start'), payloadOf('message_delta')]

const intercept = createInterceptor({ onUsage: () => {} })
const req = { url: '/v1/messages', method: 'POST', headers: {} } as http.IncomingMessage
const respond = (wrapped: boolean) => () => {
  const res = new NullResponse()
  if (wrapped) intercept(req, res as unknown as http.ServerResponse, '/v1/messages')
  res.setHeader('content-type', 'text/event-stream; charset=utf-8')
  res.setHeader('request-id', 'req_bench')
  res.writeHead(200)
  for (const c of chunks) res.write(c)
  res.end()
}
const cases: Record<string, () => void> = {
  bare: respond(false),
  intercepted: respond(true),
  processor: () => {
    const p = createProcessor({ path: '/v1/messages', contentType: 'text/event-stream' })
    for (const c of chunks) p.push(c)
    p.end()
  },
  'JSON.parse': () => {
    for (const data of usageEvents) JSON.parse(data)
  },
}

const sweep = new Float64Array((mib * 1024 * 1024) / 8)
let sink = 0
function evict(): void {
  for (let i = 0; i < sweep.length; i += 8) sink += sweep[i]!
  for (const c of chunks) for (let i = 0; i < c.length; i += 64) sink += c[i]!
}

function round(f: () => void, cold: boolean): number {
  let ns = 0n
  for (let i = 0; i < PER_ROUND; i++) {
    if (cold) evict()
    const t = process.hrtime.bigint()
    f()
    ns += process.hrtime.bigint() - t
  }
  return Number(ns) / PER_ROUND / 1000
}

const newSpace = () => v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')!.space_used_size

/** Bytes of V8 heap one call of `f` allocates (the new space grows by them until a scavenge empties it). */
function allocated(f: () => void): number {
  const batches: number[] = []
  for (let tries = 0; tries < 30 && batches.length < 9; tries++) {
    const before = newSpace()
    for (let i = 0; i < 100; i++) f()
    const after = newSpace()
    if (after > before) batches.push((after - before) / 100)
  }
  return median(batches)
}

for (let i = 0; i < 10_000; i++) for (const f of Object.values(cases)) f()
const runs: Record<string, { hot: number[]; cold: number[] }> = {}
for (const name of Object.keys(cases)) runs[name] = { hot: [], cold: [] }
for (let r = 0; r < rounds; r++) {
  for (const [name, f] of Object.entries(cases)) {
    const order = r % 2 === 0 ? [false, true] : [true, false]
    for (const cold of order) runs[name]![cold ? 'cold' : 'hot'].push(round(f, cold))
  }
}
const hot = (name: string) => median(runs[name]!.hot)
const cold = (name: string) => median(runs[name]!.cold)
console.log(`µs per response, median of ${rounds} rounds of ${PER_ROUND}; cold: a ${mib} MiB sweep before each`)
const bytes: Record<string, number> = {}
for (const [name, f] of Object.entries(cases)) bytes[name] = allocated(f)
const line = (what: string, h: number, c: number, b: number) =>
  console.log(
    `  ${what.padEnd(34)} hot ${fmt(h, 1).padStart(6)}  cold ${fmt(c, 1).padStart(6)}  ${fmt(c / h)}×  ` +
      `${fmt(b / 1024, 1)} KiB allocated`,
  )
line(
  'usagewire (intercepted − bare)',
  hot('intercepted') - hot('bare'),
  cold('intercepted') - cold('bare'),
  bytes.intercepted! - bytes.bare!,
)
line('processor alone', hot('processor'), cold('processor'), bytes.processor!)
line('JSON.parse of the 2 usage events', hot('JSON.parse'), cold('JSON.parse'), bytes['JSON.parse']!)
if (sink === -1) console.log(sink)
