/**
 * End-to-end benchmarks (docs/architecture.md#performance-budget). Three child processes (bench/child.ts): the
 * upstream, a bare gateway (express + http-proxy-middleware) and the same gateway with usagewire; the
 * load client runs in this process. Both gateways are up all the time and only the one being measured
 * gets traffic, so bare and usagewire runs alternate under the same conditions.
 *
 *  4. throughput at 64 concurrent streaming requests (keep-alive agent, maxSockets 64), alternating
 *     bare/usagewire runs, medians;
 *  5. heap per open stream: N streams held open mid-generation, gateway heapUsed after gc, usagewire
 *     minus bare, divided by N;
 *  6. slow client: one client that stops reading; what the gateway holds while the upstream keeps writing.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import os from 'node:os'
import { EventEmitter } from 'node:events'
import http from 'node:http'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { createProcessor } from '@usagewire/core'
import { createInterceptor } from '@usagewire/core/node'
import { anthropicBenchStream, E2E_DELTAS, E2E_WRITES, eventGroups } from './streams.js'
import { fmt, kib, median, mib, type Row } from './table.js'

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BODY = Buffer.from(
  JSON.stringify({
    model: 'claude-sonnet-4-5',
    max_tokens: 1024,
    stream: true,
    messages: [{ role: 'user', content: 'Hi' }],
  }),
)

interface Proc {
  child: ChildProcess
  port: number
  ready: Record<string, unknown>
  ask<T = unknown>(cmd: string): Promise<T>
}

/**
 * CPU pinning on Linux with taskset (BENCH_PIN=0 turns it off): the gateways get the last CPU to
 * themselves, the upstream and the load client share the others, so the gateway under test is the
 * bottleneck and usagewire's cost shows in its throughput instead of in a scheduler's choices.
 */
const CPUS = os.cpus().length
const PIN = process.env.BENCH_PIN !== '0' && CPUS >= 2 && process.platform === 'linux' && hasTaskset()
const GATEWAY_CPUS = `${CPUS - 1}`
const OTHER_CPUS = CPUS === 2 ? '0' : `0-${CPUS - 2}`

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

function pin(pid: number, cpus: string): void {
  if (PIN) execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' })
}

async function spawn(args: string[]): Promise<Proc> {
  // BENCH_CPU_PROF=<dir>: each child writes .cpuprofile files under <dir>/<role> when it exits (bench/profile.ts --summary).
  const dir = process.env.BENCH_CPU_PROF
  const prof = dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}/${args.slice(0, 2).join('-')}`] : []
  const child = fork(CHILD, args, {
    cwd: ROOT,
    execArgv: ['--import', 'tsx', '--expose-gc', ...prof],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  let next = 0
  const waiting = new Map<number, (reply: unknown) => void>()
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`bench child ${args.join(' ')} exited with ${code}`)))
    child.on('message', (msg: { id?: number; reply?: unknown; ready?: number }) => {
      if (msg.ready !== undefined) return resolve(msg as Record<string, unknown>)
      const done = msg.id === undefined ? undefined : waiting.get(msg.id)
      if (done) {
        waiting.delete(msg.id!)
        done(msg.reply)
      }
    })
  })
  child.removeAllListeners('exit')
  pin(child.pid!, args[0] === 'gateway' ? GATEWAY_CPUS : OTHER_CPUS)
  return {
    child,
    port: ready.ready as number,
    ready,
    ask: <T>(cmd: string) =>
      new Promise<T>((resolve) => {
        const id = next++
        waiting.set(id, resolve as (reply: unknown) => void)
        child.send({ id, cmd })
      }),
  }
}

function request(port: number, agent: http.Agent, mode?: string): http.ClientRequest {
  return http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/v1/messages',
    agent,
    headers: {
      'content-type': 'application/json',
      'content-length': BODY.length,
      'x-api-key': 'bench',
      'anthropic-version': '2023-06-01',
      ...(mode ? { 'x-bench-mode': mode } : {}),
    },
  })
}

interface Load {
  requests: number
  bytes: number
  seconds: number
  bad: number
  /** CPU time (user + system) per completed request, µs: gateway, upstream, load client. */
  cpu?: { gateway: number; upstream: number; client: number }
}

type Cpu = NodeJS.CpuUsage
const cpuDelta = (a: Cpu, b: Cpu) => b.user - a.user + (b.system - a.system)

/** A load run with the CPU each process spent on it. */
async function measured(gw: Proc, up: Proc, seconds: number, expectBytes: number): Promise<Load> {
  const [g0, u0] = await Promise.all([gw.ask<Cpu>('cpu'), up.ask<Cpu>('cpu')])
  const c0 = process.cpuUsage()
  const r = await load(gw.port, seconds, 64, expectBytes)
  const c1 = process.cpuUsage()
  const [g1, u1] = await Promise.all([gw.ask<Cpu>('cpu'), up.ask<Cpu>('cpu')])
  const per = (us: number) => us / Math.max(1, r.requests)
  r.cpu = { gateway: per(cpuDelta(g0, g1)), upstream: per(cpuDelta(u0, u1)), client: per(cpuDelta(c0, c1)) }
  return r
}

/** `concurrency` loops, each sending one streaming request after the other, for `seconds`. */
async function load(port: number, seconds: number, concurrency: number, expectBytes: number): Promise<Load> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  let requests = 0
  let bytes = 0
  let bad = 0
  const started = performance.now()
  const deadline = started + seconds * 1000
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request(port, agent)
      req.on('response', (res) => {
        let got = 0
        res.on('data', (c: Buffer) => (got += c.length))
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
      while (performance.now() < deadline) await one()
    }),
  )
  const elapsed = (performance.now() - started) / 1000
  agent.destroy()
  return { requests, bytes, seconds: elapsed, bad }
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
          const req = request(port, agent, 'hold')
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
  const req = request(gw.port, agent, 'flood')
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
class NullResponse extends EventEmitter {
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
function inProcessCost(): { intercept: number; processor: number; nothing: number; records: number } {
  const chunks = eventGroups(anthropicBenchStream(E2E_DELTAS, 0), E2E_WRITES)
  let records = 0
  const intercept = createInterceptor({ onUsage: () => records++ })
  const req = { url: '/v1/messages', method: 'POST', headers: {} } as http.IncomingMessage
  const through = (wrap: boolean) => () => {
    const res = new NullResponse()
    if (wrap) intercept(req, res as unknown as http.ServerResponse, '/v1/messages')
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
  const time = (f: () => void) => {
    for (let i = 0; i < 1000; i++) f()
    const runs: number[] = []
    for (let r = 0; r < 5; r++) {
      const t = process.hrtime.bigint()
      for (let i = 0; i < 600; i++) f()
      runs.push(Number(process.hrtime.bigint() - t) / 600 / 1000)
    }
    return median(runs)
  }
  return { intercept: time(through(true)), processor: time(processor), nothing: time(through(false)), records }
}

export interface GatewayBenchOptions {
  seconds: number
  rounds: number
  heapStreams: number
}

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
  const [bare, uw] = await Promise.all([spawn(['gateway', 'bare', target]), spawn(['gateway', 'usagewire', target])])
  const gateways = { bare, usagewire: uw }
  const streamBytes = up.ready.streamBytes as number
  try {
    // ── 4. throughput ────────────────────────────────────────────────────────────────────────────
    // Warm-up: JIT, heap sizing, socket pools. The per-request CPU of a fresh gateway keeps falling for
    // several seconds; shorter warm-ups made the first measured run slow.
    for (const gw of [bare, uw, bare, uw]) await load(gw.port, 1.25, 64, streamBytes)
    const recordsBefore = (await uw.ask<{ records: number }>('stats')).records
    const runs: Record<'bare' | 'usagewire', Load[]> = { bare: [], usagewire: [] }
    for (let round = 0; round < opts.rounds; round++) {
      const order = round % 2 === 0 ? (['bare', 'usagewire'] as const) : (['usagewire', 'bare'] as const)
      for (const mode of order) {
        const r = await measured(gateways[mode], up, opts.seconds, streamBytes)
        runs[mode].push(r)
        log(
          `  e2e round ${round + 1} ${mode.padEnd(9)} ${fmt(r.requests / r.seconds, 0)} req/s, ` +
            `${fmt(r.bytes / r.seconds / 1e6, 1)} MB/s, ${r.bad} bad; CPU µs/request: gateway ${fmt(r.cpu!.gateway, 0)}, ` +
            `upstream ${fmt(r.cpu!.upstream, 0)}, client ${fmt(r.cpu!.client, 0)}`,
        )
      }
    }
    const rps = (m: 'bare' | 'usagewire') => median(runs[m].map((r) => r.requests / r.seconds))
    const mbps = (m: 'bare' | 'usagewire') => median(runs[m].map((r) => r.bytes / r.seconds / 1e6))
    const bad = [...runs.bare, ...runs.usagewire].reduce((n, r) => n + r.bad, 0)
    const stats = await uw.ask<{ records: number; statuses: Record<string, number> }>('stats')
    const served = runs.usagewire.reduce((n, r) => n + r.requests, 0)
    const records = stats.records - recordsBefore
    log(
      `  usagewire records: ${records} in the measured runs (all: ${JSON.stringify(stats.statuses)}); bad responses: ${bad}`,
    )
    const pairs = runs.bare.map(
      (b, i) => runs.usagewire[i]!.requests / runs.usagewire[i]!.seconds / (b.requests / b.seconds),
    )
    log(`  per-round req/s ratios usagewire/bare: ${pairs.map((p) => fmt(p, 3)).join(', ')}`)
    const gwCpu = (m: 'bare' | 'usagewire') => median(runs[m].map((r) => r.cpu!.gateway))
    const ratio = rps('usagewire') / rps('bare')
    rows.push({
      id: '4a',
      what: `e2e req/s, 64 streams × ${streamBytes} B, median of ${opts.rounds}`,
      value: `${fmt(rps('usagewire'), 0)} req/s`,
      baseline: `bare ${fmt(rps('bare'), 0)} req/s`,
      ratio: `${fmt(ratio, 3)}×`,
      target: '≥ 0.97×',
      result: ratio >= 0.97 && bad === 0 ? 'PASS' : 'MISS',
    })
    const mbRatio = mbps('usagewire') / mbps('bare')
    rows.push({
      id: '4b',
      what: '  same, MB/s of response body',
      value: `${fmt(mbps('usagewire'), 1)} MB/s`,
      baseline: `bare ${fmt(mbps('bare'), 1)} MB/s`,
      ratio: `${fmt(mbRatio, 3)}×`,
      target: '≥ 0.97×',
      result: mbRatio >= 0.97 && bad === 0 ? 'PASS' : 'MISS',
    })
    rows.push({
      id: '4c',
      what: '  gateway CPU per request',
      value: `${fmt(gwCpu('usagewire'), 0)} µs`,
      baseline: `bare ${fmt(gwCpu('bare'), 0)} µs`,
      ratio: `${fmt(gwCpu('bare') / gwCpu('usagewire'), 3)}×`,
      result: 'info',
    })
    rows.push({
      id: '4d',
      what: '  usagewire records / responses served',
      value: `${records} / ${served}`,
      baseline: `${bad} bad responses`,
      target: 'equal, 0 bad',
      result: records === served && bad === 0 ? 'PASS' : 'MISS',
    })
    const cost = inProcessCost()
    log(
      `  in-process, per e2e response: interceptor + processor ${fmt(cost.intercept, 1)} µs, processor alone ` +
        `${fmt(cost.processor, 1)} µs, the null response alone ${fmt(cost.nothing, 1)} µs (${cost.records} records)`,
    )
    rows.push({
      id: '4e',
      what: '  usagewire CPU per response, in-process',
      value: `${fmt(cost.intercept - cost.nothing, 0)} µs`,
      baseline: `processor alone ${fmt(cost.processor, 0)} µs`,
      ratio: `e2e Δ ${fmt(gwCpu('usagewire') - gwCpu('bare'), 0)} µs`,
      result: 'info',
    })

    // ── 5. heap per open stream ──────────────────────────────────────────────────────────────────
    const heap: Record<'bare' | 'usagewire', { perStream: number; external: number }[]> = { bare: [], usagewire: [] }
    for (const mode of ['bare', 'usagewire'] as const) {
      const h = await heapPerStream(gateways[mode], up, opts.heapStreams)
      heap[mode].push(h)
      log(
        `  heap ${mode.padEnd(9)} ${kib(h.perStream)}/stream heapUsed, ${kib(h.external)}/stream external+arrayBuffers`,
      )
    }
    const per = (m: 'bare' | 'usagewire') => median(heap[m].map((h) => h.perStream))
    const ext = (m: 'bare' | 'usagewire') => median(heap[m].map((h) => h.external))
    const extra = per('usagewire') - per('bare')
    rows.push({
      id: '5',
      what: `extra heap per open stream, N=${opts.heapStreams}`,
      value: kib(extra),
      baseline: `bare ${kib(per('bare'))}, uw ${kib(per('usagewire'))}`,
      target: '< 4 KiB',
      result: extra < 4096 ? 'PASS' : 'MISS',
    })
    rows.push({
      id: '',
      what: '  same, external + arrayBuffers',
      value: kib(ext('usagewire') - ext('bare')),
      baseline: `bare ${kib(ext('bare'))}, uw ${kib(ext('usagewire'))}`,
      result: 'info',
    })

    // ── 6. slow client ──────────────────────────────────────────────────────────────────────────
    for (const mode of ['bare', 'usagewire'] as const) {
      const s = await slowClient(gateways[mode], up, 1.5)
      const first = s.samples[0]!
      const last = s.samples.at(-1)!
      const held = last.resWritable + last.proxyResReadable
      log(
        `  slow client ${mode.padEnd(9)} upstream sent ${mib(first.upstreamSent)} → ${mib(last.upstreamSent)} ` +
          `(${s.upstreamWaits} drain waits), gateway got ${mib(last.gatewayIn)}, ` +
          `holds res ${kib(last.resWritable)} + proxyRes ${kib(last.proxyResReadable)}, heap Δ ${kib(s.heapDelta)}, ` +
          `external Δ ${kib(s.externalDelta)}, write() false ${last.falses}×, true-while-full ${last.liedTrue}×`,
      )
      const stalled = last.upstreamSent === s.samples.at(-2)!.upstreamSent
      const ok = stalled && last.liedTrue === 0 && held < 1024 * 1024
      rows.push({
        id: mode === 'bare' ? '6a' : '6b',
        what: `slow client, ${mode}: bytes held in gateway`,
        value: kib(held),
        baseline: `upstream stalled at ${mib(last.upstreamSent)}, heap Δ ${kib(s.heapDelta)}`,
        ratio: `true-while-full ${last.liedTrue}×`,
        target: mode === 'usagewire' ? '< 1 MiB, stalls' : undefined,
        result: mode === 'usagewire' ? (ok ? 'PASS' : 'MISS') : 'info',
      })
    }
  } finally {
    // A clean exit, so a child run with --cpu-prof writes its profile.
    await Promise.all(
      [bare, uw, up].map(
        (p) => new Promise((resolve) => (p.child.once('exit', resolve), p.child.send({ id: -1, cmd: 'exit' }))),
      ),
    )
    pin(process.pid, `0-${CPUS - 1}`)
  }
  return rows
}
