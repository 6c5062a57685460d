/**
 * End-to-end benchmarks (docs/architecture.md#performance-budget). Three child processes (bench/child.ts): the
 * upstream, a bare gateway (express + http-proxy-middleware) and the same gateway with usagewire; the
 * load client runs in this process. Both gateways are up all the time and only the one being measured
 * gets traffic, so bare and usagewire runs alternate under the same conditions.
 *
 *  4. throughput at 64 concurrent streaming requests (keep-alive agent, maxSockets 64), alternating
 *     bare/usagewire runs, medians: req/s, MB/s, gateway CPU per GB of response body, time to first
 *     event (and again one request at a time, where no queue adds to it);
 *  5. heap per open stream: N streams held open mid-generation, gateway heapUsed after gc, usagewire
 *     minus bare, divided by N;
 *  6. slow client: one client that stops reading; what the gateway holds while the upstream keeps writing.
 */
import { EventEmitter } from 'node:events'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { createProcessor } from '@usagewire/core'
import { createInterceptor } from '@usagewire/core/node'
import { FRAMEWORKS } from './frameworks.js'
import { ALL_CPUS, GATEWAY_CPUS, OTHER_CPUS, PIN, pin, request, spawn, BODY, type Proc } from './procs.js'
import { anthropicBenchStream, E2E_DELTAS, E2E_WRITES, eventGroups, PACED_EVERY_MS } from './streams.js'
import { fmt, kib, median, mib, type Row } from './table.js'

interface Load {
  requests: number
  bytes: number
  seconds: number
  bad: number
  /** Time from sending each request to the first bytes of its body, ms. */
  firstEvent: number[]
  /** CPU time (user + system) over the run, µs: gateway, upstream, load client. */
  cpu?: { gateway: number; upstream: number; client: number }
}

type Cpu = NodeJS.CpuUsage
const cpuDelta = (a: Cpu, b: Cpu) => b.user - a.user + (b.system - a.system)

/** A load run with the CPU each process spent on it. */
async function measured(
  gw: Proc,
  up: Proc,
  seconds: number,
  expectBytes: number,
  headers: Record<string, string> = {},
): Promise<Load> {
  const [g0, u0] = await Promise.all([gw.ask<Cpu>('cpu'), up.ask<Cpu>('cpu')])
  const c0 = process.cpuUsage()
  const r = await load(gw.port, seconds, 64, expectBytes, Infinity, headers)
  const c1 = process.cpuUsage()
  const [g1, u1] = await Promise.all([gw.ask<Cpu>('cpu'), up.ask<Cpu>('cpu')])
  r.cpu = { gateway: cpuDelta(g0, g1), upstream: cpuDelta(u0, u1), client: cpuDelta(c0, c1) }
  return r
}

/** `concurrency` loops, each sending one streaming request after the other, for `seconds` (or `count` requests). */
async function load(
  port: number,
  seconds: number,
  concurrency: number,
  expectBytes: number,
  count = Infinity,
  headers: Record<string, string> = {},
): Promise<Load> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  let requests = 0
  let launched = 0
  let bytes = 0
  let bad = 0
  const firstEvent: number[] = []
  const started = performance.now()
  const deadline = started + seconds * 1000
  const one = () =>
    new Promise<void>((resolve) => {
      const sent = performance.now()
      const req = request(port, agent, headers)
      req.on('response', (res) => {
        let got = 0
        res.on('data', (c: Buffer) => {
          if (got === 0) firstEvent.push(performance.now() - sent)
          got += c.length
        })
        res.on('end', () => {
          requests++
          bytes += got
          if (res.statusCode !== 200 || got !== expectBytes) bad++
          resolve()
        })
        res.on('error', () => (bad++, resolve()))
      })
      req.on('error', () => (bad++, resolve()))
      req.end(BODY)
    })
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline && launched < count) {
        launched++
        await one()
      }
    }),
  )
  const elapsed = (performance.now() - started) / 1000
  agent.destroy()
  return { requests, bytes, seconds: elapsed, bad, firstEvent }
}

/** Opens `n` streams the upstream holds mid-generation; resolves once each has its first events. */
async function openHeld(
  port: number,
  n: number,
  holdBytes: number,
): Promise<{ reqs: http.ClientRequest[]; agent: http.Agent }> {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
  const reqs: http.ClientRequest[] = []
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve, reject) => {
          const req = request(port, agent, { 'x-bench-mode': 'hold' })
          reqs.push(req)
          req.on('response', (res) => {
            let got = 0
            res.on('data', (c: Buffer) => {
              got += c.length
              if (got >= holdBytes) resolve()
            })
          })
          req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)))
          req.end(BODY)
        }),
    ),
  )
  return { reqs, agent }
}

async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const stop = Date.now() + ms
  while (Date.now() < stop) {
    if (await check()) return true
    await sleep(25)
  }
  return false
}

type Mem = NodeJS.MemoryUsage & { sockets: number }

async function heapPerStream(gw: Proc, up: Proc, n: number): Promise<{ perStream: number; external: number }> {
  const idle = await gw.ask<Mem>('heap')
  const { reqs, agent } = await openHeld(gw.port, n, up.ready.holdBytes as number)
  const loaded = await gw.ask<Mem>('heap')
  for (const r of reqs) r.destroy()
  agent.destroy()
  await until(async () => (await up.ask<number>('holds')) === 0 && (await gw.ask<Mem>('heap')).sockets === 0, 5000)
  return {
    perStream: (loaded.heapUsed - idle.heapUsed) / n,
    external: (loaded.external + loaded.arrayBuffers - idle.external - idle.arrayBuffers) / n,
  }
}

interface SlowSample {
  upstreamSent: number
  gatewayIn: number
  resWritable: number
  proxyResReadable: number
  falses: number
  liedTrue: number
}

interface Slow {
  clientRead: number
  samples: SlowSample[]
  heapDelta: number
  externalDelta: number
  upstreamWaits: number
}

async function slowClient(gw: Proc, up: Proc, seconds: number): Promise<Slow> {
  const idle = await gw.ask<Mem>('heap')
  const agent = new http.Agent({ keepAlive: false })
  const req = request(gw.port, agent, { 'x-bench-mode': 'flood' })
  let clientRead = 0
  await new Promise<void>((resolve, reject) => {
    req.on('response', (res) => {
      res.once('data', (c: Buffer) => {
        clientRead += c.length
        res.pause() // the client stops reading; its socket buffers fill, then the gateway's
        resolve()
      })
    })
    req.on('error', reject)
    req.end(BODY)
  })
  const samples: SlowSample[] = []
  const steps = Math.round(seconds / 0.5)
  for (let i = 0; i < steps; i++) {
    await sleep(500)
    const f = await up.ask<{ sent: number; waits: number }>('flood')
    const s = await gw.ask<{
      responses: {
        resWritableLength: number
        proxyResReadableLength: number
        falses: number
        liedTrue: number
        bytesIn: number
      }[]
    }>('sample')
    const r = s.responses[0]
    samples.push({
      upstreamSent: f.sent,
      gatewayIn: r?.bytesIn ?? 0,
      resWritable: r?.resWritableLength ?? 0,
      proxyResReadable: r?.proxyResReadableLength ?? 0,
      falses: r?.falses ?? 0,
      liedTrue: r?.liedTrue ?? 0,
    })
  }
  const loaded = await gw.ask<Mem>('heap')
  const { waits } = await up.ask<{ waits: number }>('flood')
  req.destroy()
  agent.destroy()
  await until(async () => (await gw.ask<Mem>('heap')).sockets === 0, 3000)
  return {
    clientRead,
    samples,
    heapDelta: loaded.heapUsed - idle.heapUsed,
    externalDelta: loaded.external + loaded.arrayBuffers - idle.external - idle.arrayBuffers,
    upstreamWaits: waits,
  }
}

/** Just enough of a ServerResponse for the interceptor: headers, writeHead/write/end, finish and close. */
export class NullResponse extends EventEmitter {
  statusCode = 200
  headersSent = false
  writableNeedDrain = false
  writableFinished = false
  bytes = 0
  private readonly headers = new Map<string, unknown>()
  getHeader(name: string) {
    return this.headers.get(name.toLowerCase())
  }
  setHeader(name: string, value: unknown) {
    this.headers.set(name.toLowerCase(), value)
    return this
  }
  removeHeader(name: string) {
    this.headers.delete(name.toLowerCase())
  }
  hasHeader(name: string) {
    return this.headers.has(name.toLowerCase())
  }
  writeHead(status: number) {
    this.statusCode = status
    this.headersSent = true
    return this
  }
  flushHeaders() {}
  write(chunk: Uint8Array) {
    this.bytes += chunk.length
    return true
  }
  end() {
    this.writableFinished = true
    this.emit('finish')
    this.emit('close')
    return this
  }
}

/**
 * usagewire's own CPU per response, without a network: the e2e response (same bytes, same 8 writes)
 * through createInterceptor on a response that discards bytes, and through a bare processor.
 */
function inProcessCost(scale: number): {
  intercept: number
  processor: number
  nothing: number
  records: number
  responses: number
} {
  const chunks = eventGroups(anthropicBenchStream(E2E_DELTAS, 0), E2E_WRITES)
  let records = 0
  let responses = 0
  const intercept = createInterceptor({ onUsage: () => records++ })
  const req = { url: '/v1/messages', method: 'POST', headers: {} } as http.IncomingMessage
  const through = (wrap: boolean) => () => {
    const res = new NullResponse()
    if (wrap) {
      intercept(req, res as unknown as http.ServerResponse, '/v1/messages')
      responses++
    }
    res.setHeader('content-type', 'text/event-stream; charset=utf-8')
    res.setHeader('request-id', 'req_bench')
    res.writeHead(200)
    for (const c of chunks) res.write(c)
    res.end()
  }
  const processor = () => {
    const p = createProcessor({ path: '/v1/messages', contentType: 'text/event-stream' })
    for (const c of chunks) p.push(c)
    p.end()
  }
  // Long enough for TurboFan to settle: with 1000 responses of warm-up and 600 per run the same code
  // measured 29 µs per response instead of 10.5.
  const warm = Math.ceil(10_000 * scale)
  const per = Math.ceil(3000 * scale)
  const time = (f: () => void) => {
    for (let i = 0; i < warm; i++) f()
    const runs: number[] = []
    for (let r = 0; r < 5; r++) {
      const t = process.hrtime.bigint()
      for (let i = 0; i < per; i++) f()
      runs.push(Number(process.hrtime.bigint() - t) / per / 1000)
    }
    return median(runs)
  }
  return {
    intercept: time(through(true)),
    processor: time(processor),
    nothing: time(through(false)),
    records,
    responses,
  }
}

export interface GatewayBenchOptions {
  /** Length of each measured load run. */
  seconds: number
  /** Measured rounds, each one bare and one usagewire run. */
  rounds: number
  /** Length of each of the 4 warm-up runs. */
  warmupSeconds: number
  /** Requests sent one at a time to each gateway for the unloaded time to first event. */
  serialRequests: number
  heapStreams: number
  slowSeconds: number
  /** Scales the in-process iterations (1: 10,000 warm-up + 5 × 3000 per variant). */
  inProcessScale: number
}

export const GATEWAY_FULL: GatewayBenchOptions = {
  seconds: 1,
  rounds: 6,
  warmupSeconds: 1.25,
  serialRequests: 300,
  heapStreams: 512,
  slowSeconds: 1.5,
  inProcessScale: 1,
}

export const GATEWAY_SMOKE: GatewayBenchOptions = {
  seconds: 0.3,
  rounds: 1,
  warmupSeconds: 0.2,
  serialRequests: 20,
  heapStreams: 16,
  slowSeconds: 1,
  inProcessScale: 0.05,
}

type Mode = 'bare' | 'usagewire'

/** Row 4h: the CPU, in µs per request, that the calibration gateway spends in a busy loop. */
const CALIBRATION_US = 20
const ms = (v: number) => `${fmt(v, v < 10 ? 2 : 1)} ms`

/**
 * Time to first event is "unchanged" when usagewire's median is within 10 % of bare's, or within 1 ms:
 * a sub-millisecond median on loopback moves by more than 10 % between two runs of the same gateway.
 */
const firstEventOk = (uw: number, bare: number) => uw <= Math.max(bare * 1.1, bare + 1)

export async function gatewayBench(log: (line: string) => void, opts: GatewayBenchOptions): Promise<Row[]> {
  const rows: Row[] = []
  log(
    PIN
      ? `  pinned: gateways on CPU ${GATEWAY_CPUS}, upstream and load client on CPU ${OTHER_CPUS}`
      : '  not pinned to CPUs',
  )
  pin(process.pid, OTHER_CPUS)
  const up = await spawn(['upstream'])
  const target = `http://127.0.0.1:${up.port}`
  const [bare, uw, burn] = await Promise.all([
    spawn(['gateway', 'bare', target]),
    spawn(['gateway', 'usagewire', target]),
    spawn(['gateway', `burn:${CALIBRATION_US}`, target]),
  ])
  const gateways = { bare, usagewire: uw, burn }
  const streamBytes = up.ready.streamBytes as number
  try {
    // ── 4. throughput ────────────────────────────────────────────────────────────────────────────
    // Warm-up: JIT, heap sizing, socket pools. The per-request CPU of a fresh gateway keeps falling for
    // several seconds; shorter warm-ups made the first measured run slow.
    let warmupBad = 0
    for (const gw of [bare, uw, burn, bare, uw, burn])
      warmupBad += (await load(gw.port, opts.warmupSeconds, 64, streamBytes)).bad
    const recordsBefore = (await uw.ask<{ records: number }>('stats')).records
    const runs: Record<Mode | 'burn', Load[]> = { bare: [], usagewire: [], burn: [] }
    for (let round = 0; round < opts.rounds; round++) {
      const order =
        round % 2 === 0 ? (['bare', 'usagewire', 'burn'] as const) : (['burn', 'usagewire', 'bare'] as const)
      for (const mode of order) {
        const r = await measured(gateways[mode], up, opts.seconds, streamBytes)
        runs[mode].push(r)
        const per = (us: number) => fmt(us / Math.max(1, r.requests), 0)
        log(
          `  e2e round ${round + 1} ${mode.padEnd(9)} ${fmt(r.requests / r.seconds, 0)} req/s, ` +
            `${fmt(r.bytes / r.seconds / 1e6, 1)} MB/s, ${r.bad} bad; gateway CPU ${fmt(cpuPerGB(r), 2)} s/GB; ` +
            `CPU µs/request: gateway ${per(r.cpu!.gateway)}, upstream ${per(r.cpu!.upstream)}, client ${per(r.cpu!.client)}; ` +
            `first event ${ms(median(r.firstEvent))}`,
        )
      }
    }
    const rps = (m: Mode) => median(runs[m].map((r) => r.requests / r.seconds))
    const mbps = (m: Mode) => median(runs[m].map((r) => r.bytes / r.seconds / 1e6))
    const bad = [...runs.bare, ...runs.usagewire, ...runs.burn].reduce((n, r) => n + r.bad, 0)
    const stats = await uw.ask<{ records: number; statuses: Record<string, number> }>('stats')
    const served = runs.usagewire.reduce((n, r) => n + r.requests, 0)
    const records = stats.records - recordsBefore
    log(
      `  usagewire records: ${records} in the measured runs (all: ${JSON.stringify(stats.statuses)}); ` +
        `bad responses: ${bad} (warm-up: ${warmupBad})`,
    )
    const pairs = runs.bare.map(
      (b, i) => runs.usagewire[i]!.requests / runs.usagewire[i]!.seconds / (b.requests / b.seconds),
    )
    log(`  per-round req/s ratios usagewire/bare: ${pairs.map((p) => fmt(p, 3)).join(', ')}`)
    const gwPerGB = (m: Mode | 'burn') => median(runs[m].map(cpuPerGB))
    const gwPerReq = (m: Mode | 'burn') => median(runs[m].map((r) => r.cpu!.gateway / Math.max(1, r.requests)))
    const loadedFirst = (m: Mode) => median(runs[m].flatMap((r) => r.firstEvent))
    const raw = (m: Mode) =>
      runs[m].map((r) => ({
        requests: r.requests,
        bytes: r.bytes,
        seconds: r.seconds,
        bad: r.bad,
        cpuUs: r.cpu,
        firstEventMsMedian: median(r.firstEvent),
      }))
    // Each ratio is the median of the rounds' own ratios: the two runs of a round share the machine's
    // moment, and on a shared machine the load from others moves more between rounds than within one.
    const ratio = median(pairs)
    rows.push({
      id: '4a',
      what: `e2e req/s, 64 streams × ${streamBytes} B, median of ${opts.rounds} paired rounds`,
      value: `${fmt(rps('usagewire'), 0)} req/s`,
      baseline: `bare ${fmt(rps('bare'), 0)} req/s`,
      ratio: `${fmt(ratio, 3)}×`,
      target: '≥ 0.97×',
      result: ratio >= 0.97 && bad === 0 ? 'PASS' : 'MISS',
      raw: { ratio, perRound: pairs, bare: raw('bare'), usagewire: raw('usagewire') },
    })
    const mbRatio = median(
      runs.bare.map((b, i) => runs.usagewire[i]!.bytes / runs.usagewire[i]!.seconds / (b.bytes / b.seconds)),
    )
    rows.push({
      id: '4b',
      what: '  same, MB/s of response body',
      value: `${fmt(mbps('usagewire'), 1)} MB/s`,
      baseline: `bare ${fmt(mbps('bare'), 1)} MB/s`,
      ratio: `${fmt(mbRatio, 3)}×`,
      target: '≥ 0.97×',
      result: mbRatio >= 0.97 && bad === 0 ? 'PASS' : 'MISS',
      raw: { ratio: mbRatio, bare: mbps('bare'), usagewire: mbps('usagewire') },
    })
    const cpuRatio = median(runs.bare.map((b, i) => cpuPerGB(runs.usagewire[i]!) / cpuPerGB(b)))
    rows.push({
      id: '4c',
      what: '  gateway CPU per GB of response body',
      value: `${fmt(gwPerGB('usagewire'), 2)} s/GB`,
      baseline: `bare ${fmt(gwPerGB('bare'), 2)} s/GB; µs/req ${fmt(gwPerReq('bare'), 0)} → ${fmt(gwPerReq('usagewire'), 0)}`,
      ratio: `${fmt(cpuRatio, 3)}×`,
      target: '≤ 1.10×',
      result: cpuRatio <= 1.1 ? 'PASS' : 'MISS',
      raw: {
        ratio: cpuRatio,
        bareSecondsPerGB: gwPerGB('bare'),
        usagewireSecondsPerGB: gwPerGB('usagewire'),
        bareUsPerRequest: gwPerReq('bare'),
        usagewireUsPerRequest: gwPerReq('usagewire'),
      },
    })

    // Time to first event without queueing: one request at a time, alternating gateways, so what is
    // measured is the delay usagewire adds to a response's first bytes, not the gateway's backlog.
    const serial: Record<Mode, number[]> = { bare: [], usagewire: [] }
    let serialBad = 0
    const batch = Math.max(1, Math.ceil(opts.serialRequests / 10))
    for (let sent = 0; sent < opts.serialRequests; sent += batch) {
      for (const mode of sent % (2 * batch) === 0
        ? (['bare', 'usagewire'] as const)
        : (['usagewire', 'bare'] as const)) {
        const r = await load(gateways[mode].port, Infinity, 1, streamBytes, batch)
        serial[mode].push(...r.firstEvent)
        serialBad += r.bad
      }
    }
    const first = (m: Mode) => median(serial[m])
    const firstRatio = first('usagewire') / first('bare')
    log(
      `  time to first event, one request at a time (${serial.bare.length} each): bare ${ms(first('bare'))}, ` +
        `usagewire ${ms(first('usagewire'))}; at 64 streams: bare ${ms(loadedFirst('bare'))}, usagewire ${ms(loadedFirst('usagewire'))}`,
    )
    rows.push({
      id: '4d',
      what: '  time to first event, 1 request at a time, median',
      value: ms(first('usagewire')),
      baseline: `bare ${ms(first('bare'))}`,
      ratio: `${fmt(firstRatio, 3)}×`,
      target: '≤ 1.1× or +1 ms',
      result: firstEventOk(first('usagewire'), first('bare')) && serialBad === 0 ? 'PASS' : 'MISS',
      raw: { ratio: firstRatio, bareMs: first('bare'), usagewireMs: first('usagewire'), requests: serial.bare.length },
    })
    const loadedRatio = loadedFirst('usagewire') / loadedFirst('bare')
    rows.push({
      id: '',
      what: '  same, at 64 streams (includes queueing)',
      value: ms(loadedFirst('usagewire')),
      baseline: `bare ${ms(loadedFirst('bare'))}`,
      ratio: `${fmt(loadedRatio, 3)}×`,
      result: 'info',
      raw: { ratio: loadedRatio, bareMs: loadedFirst('bare'), usagewireMs: loadedFirst('usagewire') },
    })
    const allBad = bad + warmupBad + serialBad
    rows.push({
      id: '4e',
      what: '  usagewire records / responses served',
      value: `${records} / ${served}`,
      baseline: `${allBad} bad responses`,
      target: 'equal, 0 bad',
      result: records === served && allBad === 0 ? 'PASS' : 'MISS',
      check:
        records !== served || allBad !== 0
          ? `e2e: ${records} usagewire records for ${served} responses, ${allBad} bad responses`
          : undefined,
      raw: { records, served, bad, warmupBad, serialBad },
    })
    const cost = inProcessCost(opts.inProcessScale)
    log(
      `  in-process, per e2e response: interceptor + processor ${fmt(cost.intercept, 1)} µs, processor alone ` +
        `${fmt(cost.processor, 1)} µs, the null response alone ${fmt(cost.nothing, 1)} µs ` +
        `(${cost.records} records, ${cost.responses} responses)`,
    )
    rows.push({
      id: '4f',
      what: '  usagewire CPU per response, in-process',
      value: `${fmt(cost.intercept - cost.nothing, 0)} µs`,
      baseline: `processor alone ${fmt(cost.processor, 0)} µs`,
      ratio: `e2e Δ ${fmt(gwPerReq('usagewire') - gwPerReq('bare'), 0)} µs`,
      result: 'info',
      check:
        cost.records !== cost.responses
          ? `in-process: ${cost.records} usagewire records for ${cost.responses} responses`
          : undefined,
      raw: { ...cost, e2eDeltaUs: gwPerReq('usagewire') - gwPerReq('bare') },
    })

    // ── 4g. the other adapters, each against the same framework without usagewire ────────────────
    rows.push(...(await adapterRows(log, up, target, streamBytes, opts)))

    // ── 4h. what a µs of CPU per response costs this gateway ──────────────────────────────────────
    // The bare gateway plus a busy loop of CALIBRATION_US per request. On loopback, a gateway that
    // spends longer per response also leaves its client asleep more often, and each write that wakes it
    // costs the gateway kernel time: the same loop costs more than itself (bench/README.md, row 4h).
    const burnDelta = gwPerReq('burn') - gwPerReq('bare')
    const perUs = burnDelta / CALIBRATION_US
    const e2eDelta = gwPerReq('usagewire') - gwPerReq('bare')
    log(
      `  calibration: ${CALIBRATION_US} µs of busy loop per request costs the gateway ${fmt(burnDelta, 1)} µs ` +
        `(${fmt(perUs, 2)} µs per µs)` +
        (perUs >= 0.9
          ? `; usagewire's Δ ${fmt(e2eDelta, 1)} µs is what ${fmt(e2eDelta / perUs, 1)} µs of work per response costs`
          : ': less than the loop itself, so this run was too noisy to scale by'),
    )
    rows.push({
      id: '4h',
      what: `calibration: Express bare + ${CALIBRATION_US} µs busy loop per request`,
      value: `${fmt(gwPerGB('burn'), 2)} s/GB`,
      baseline: `bare ${fmt(gwPerGB('bare'), 2)} s/GB; +${fmt(burnDelta, 0)} µs/req`,
      // A loop costs at least itself: a smaller difference is a run too noisy to scale anything by.
      ratio:
        perUs >= 0.9
          ? `${fmt(gwPerGB('burn') / gwPerGB('bare'), 3)}×; uw Δ ≙ ${fmt(e2eDelta / perUs, 0)} µs`
          : `${fmt(gwPerGB('burn') / gwPerGB('bare'), 3)}×; too noisy to scale`,
      result: 'info',
      raw: {
        calibrationUs: CALIBRATION_US,
        burnUsPerRequest: gwPerReq('burn'),
        bareUsPerRequest: gwPerReq('bare'),
        gatewayUsPerBurnUs: perUs,
        usagewireEquivalentUs: e2eDelta / perUs,
        perRound: runs.burn.map((r) => ({ requests: r.requests, cpuUs: r.cpu })),
      },
    })

    // ── 4i. the same response as a provider streams it ───────────────────────────────────────────
    // One event per write, a write every PACED_EVERY_MS per stream: each event reaches the gateway as a
    // chunk of its own, and the gateway is not saturated, so its CPU per response is what is compared.
    const pacedRuns: Record<Mode, Load[]> = { bare: [], usagewire: [] }
    const paced = { 'x-bench-mode': 'paced' }
    // Each paced response takes at least 200 × PACED_EVERY_MS: rounds twice as long as 4a's.
    const pacedSeconds = Math.max(opts.seconds * 2, 1)
    let pacedBad = 0
    for (const gw of [bare, uw]) pacedBad += (await load(gw.port, pacedSeconds, 64, streamBytes, Infinity, paced)).bad
    const pacedRecordsBefore = (await uw.ask<{ records: number }>('stats')).records
    for (let round = 0; round < opts.rounds; round++) {
      for (const mode of round % 2 === 0 ? (['bare', 'usagewire'] as const) : (['usagewire', 'bare'] as const)) {
        const r = await measured(gateways[mode], up, pacedSeconds, streamBytes, paced)
        pacedRuns[mode].push(r)
        log(
          `  paced round ${round + 1} ${mode.padEnd(9)} ${r.requests} responses, ${r.bad} bad; ` +
            `gateway CPU µs/request ${fmt(r.cpu!.gateway / Math.max(1, r.requests), 0)}`,
        )
      }
    }
    const pacedPerReq = (m: Mode) => median(pacedRuns[m].map((r) => r.cpu!.gateway / Math.max(1, r.requests)))
    pacedBad += [...pacedRuns.bare, ...pacedRuns.usagewire].reduce((n, r) => n + r.bad, 0)
    const pacedServed = pacedRuns.usagewire.reduce((n, r) => n + r.requests, 0)
    const pacedRecords = (await uw.ask<{ records: number }>('stats')).records - pacedRecordsBefore
    const pacedRatio = pacedPerReq('usagewire') / pacedPerReq('bare')
    rows.push({
      id: '4i',
      what: `paced: 64 streams, 1 event per write every ${PACED_EVERY_MS} ms, CPU per response`,
      value: `${fmt(pacedPerReq('usagewire'), 0)} µs`,
      baseline: `bare ${fmt(pacedPerReq('bare'), 0)} µs; records ${pacedRecords}/${pacedServed}`,
      ratio: `${fmt(pacedRatio, 3)}×`,
      result: 'info',
      check:
        pacedRecords !== pacedServed || pacedBad !== 0
          ? `paced: ${pacedRecords} usagewire records for ${pacedServed} responses, ${pacedBad} bad responses`
          : undefined,
      raw: {
        ratio: pacedRatio,
        bareUsPerRequest: pacedPerReq('bare'),
        usagewireUsPerRequest: pacedPerReq('usagewire'),
        bare: pacedRuns.bare.map((r) => ({ requests: r.requests, seconds: r.seconds, bad: r.bad, cpuUs: r.cpu })),
        usagewire: pacedRuns.usagewire.map((r) => ({
          requests: r.requests,
          seconds: r.seconds,
          bad: r.bad,
          cpuUs: r.cpu,
        })),
      },
    })

    // ── 5. heap per open stream ──────────────────────────────────────────────────────────────────
    const heap = {} as Record<Mode, { perStream: number; external: number }>
    for (const mode of ['bare', 'usagewire'] as const) {
      const h = await heapPerStream(gateways[mode], up, opts.heapStreams)
      heap[mode] = h
      log(
        `  heap ${mode.padEnd(9)} ${kib(h.perStream)}/stream heapUsed, ${kib(h.external)}/stream external+arrayBuffers`,
      )
    }
    const extra = heap.usagewire.perStream - heap.bare.perStream
    rows.push({
      id: '5',
      what: `extra heap per open stream, N=${opts.heapStreams}`,
      value: kib(extra),
      baseline: `bare ${kib(heap.bare.perStream)}, uw ${kib(heap.usagewire.perStream)}`,
      target: '< 4 KiB',
      result: extra < 4096 ? 'PASS' : 'MISS',
      raw: { bytes: extra, streams: opts.heapStreams, bare: heap.bare, usagewire: heap.usagewire },
    })
    rows.push({
      id: '',
      what: '  same, external + arrayBuffers',
      value: kib(heap.usagewire.external - heap.bare.external),
      baseline: `bare ${kib(heap.bare.external)}, uw ${kib(heap.usagewire.external)}`,
      result: 'info',
    })

    // ── 6. slow client ──────────────────────────────────────────────────────────────────────────
    for (const mode of ['bare', 'usagewire'] as const) {
      const s = await slowClient(gateways[mode], up, opts.slowSeconds)
      const first = s.samples[0]!
      const last = s.samples.at(-1)!
      const held = last.resWritable + last.proxyResReadable
      log(
        `  slow client ${mode.padEnd(9)} upstream sent ${mib(first.upstreamSent)} → ${mib(last.upstreamSent)} ` +
          `(${s.upstreamWaits} drain waits), gateway got ${mib(last.gatewayIn)}, ` +
          `holds res ${kib(last.resWritable)} + proxyRes ${kib(last.proxyResReadable)}, heap Δ ${kib(s.heapDelta)}, ` +
          `external Δ ${kib(s.externalDelta)}, write() false ${last.falses}×, true-while-full ${last.liedTrue}×`,
      )
      const stalled = s.samples.length >= 2 && last.upstreamSent === s.samples.at(-2)!.upstreamSent
      const ok = stalled && last.liedTrue === 0 && held < 1024 * 1024
      rows.push({
        id: mode === 'bare' ? '6a' : '6b',
        what: `slow client, ${mode}: bytes held in gateway`,
        value: kib(held),
        baseline: `upstream stalled at ${mib(last.upstreamSent)}, heap Δ ${kib(s.heapDelta)}`,
        ratio: `true-while-full ${last.liedTrue}×`,
        target: mode === 'usagewire' ? '< 1 MiB, stalls' : undefined,
        result: mode === 'usagewire' ? (ok ? 'PASS' : 'MISS') : 'info',
        raw: { held, stalled, samples: s.samples, heapDelta: s.heapDelta, externalDelta: s.externalDelta },
      })
    }
  } finally {
    // A clean exit, so a child run with --cpu-prof writes its profile.
    await Promise.all([bare, uw, burn, up].map((p) => p.exit()))
    pin(process.pid, ALL_CPUS)
  }
  return rows
}

/**
 * Row 4g: each other adapter's gateway (bench/frameworks.ts) against the same framework's gateway
 * without usagewire, in alternating rounds as for Express: CPU per GB, req/s and records per response.
 */
async function adapterRows(
  log: (line: string) => void,
  up: Proc,
  target: string,
  streamBytes: number,
  opts: GatewayBenchOptions,
): Promise<Row[]> {
  const rows: Row[] = []
  for (const framework of FRAMEWORKS) {
    const [bare, uw] = await Promise.all([
      spawn(['framework', framework, 'bare', target], { cpus: GATEWAY_CPUS }),
      spawn(['framework', framework, 'usagewire', target], { cpus: GATEWAY_CPUS }),
    ])
    const gateways = { bare, usagewire: uw }
    try {
      let bad = 0
      for (const gw of [bare, uw, bare, uw]) bad += (await load(gw.port, opts.warmupSeconds, 64, streamBytes)).bad
      const before = (await uw.ask<{ records: number }>('stats')).records
      const runs: Record<Mode, Load[]> = { bare: [], usagewire: [] }
      for (let round = 0; round < opts.rounds; round++) {
        const order = round % 2 === 0 ? (['bare', 'usagewire'] as const) : (['usagewire', 'bare'] as const)
        for (const mode of order) {
          const r = await measured(gateways[mode], up, opts.seconds, streamBytes)
          runs[mode].push(r)
          bad += r.bad
        }
      }
      const served = runs.usagewire.reduce((n, r) => n + r.requests, 0)
      const stats = await uw.ask<{ records: number; statuses: Record<string, number> }>('stats')
      const records = stats.records - before
      const perGB = (m: Mode) => median(runs[m].map(cpuPerGB))
      const rps = (m: Mode) => median(runs[m].map((r) => r.requests / r.seconds))
      // Medians of the rounds' own ratios, as for Express (row 4).
      const cpuRatio = median(runs.bare.map((b, i) => cpuPerGB(runs.usagewire[i]!) / cpuPerGB(b)))
      const rpsRatio = median(
        runs.bare.map((b, i) => runs.usagewire[i]!.requests / runs.usagewire[i]!.seconds / (b.requests / b.seconds)),
      )
      log(
        `  ${framework}: bare ${fmt(rps('bare'), 0)} req/s, ${fmt(perGB('bare'), 2)} s/GB; usagewire ` +
          `${fmt(rps('usagewire'), 0)} req/s, ${fmt(perGB('usagewire'), 2)} s/GB; records ${records} / ${served} ` +
          `(${JSON.stringify(stats.statuses)}), ${bad} bad`,
      )
      rows.push({
        id: '4g',
        what: `${framework}: gateway CPU per GB vs the same gateway bare`,
        value: `${fmt(perGB('usagewire'), 2)} s/GB`,
        baseline: `bare ${fmt(perGB('bare'), 2)} s/GB; req/s ${fmt(rpsRatio, 3)}×; records ${records}/${served}`,
        ratio: `${fmt(cpuRatio, 3)}×`,
        target: '≤ 1.10×',
        result: cpuRatio <= 1.1 && records === served && bad === 0 ? 'PASS' : 'MISS',
        check:
          records !== served || bad !== 0
            ? `${framework}: ${records} usagewire records for ${served} responses, ${bad} bad responses`
            : undefined,
        raw: { framework, cpuRatio, rpsRatio, records, served, bad, bare: runs.bare, usagewire: runs.usagewire },
      })
    } finally {
      await Promise.all([bare.exit(), uw.exit()])
    }
  }
  return rows
}

/** Gateway CPU seconds per GB of response body delivered. */
function cpuPerGB(r: Load): number {
  return r.cpu!.gateway / 1e6 / (Math.max(1, r.bytes) / 1e9)
}
