/**
 * Rows 10a–10d: usagewire as a sidecar (@usagewire/proxy, docs/sidecar.md) beside a gateway, against the same
 * gateway without it. Five child processes, each forked from this file (`node --import tsx --expose-gc
 * bench/sidecar.bench.ts <role>`); the load client runs in the bench process:
 *
 *   provider             a node:http server streaming the e2e response (Anthropic SSE, 200 events, ~26 KB, in
 *                        8 writes), each request the next of a pool of texts so that no two requests in flight
 *                        get the same answer (content correlation joins nothing it cannot tell apart);
 *                        `x-bench-events` and `x-bench-bytes` give each body's event count and length
 *   gateway <header>     a pass-through: node:http forwarding to its target (set over IPC) on a keep-alive agent,
 *                        piping the answer back. It drops <header>, the sidecar's correlation header, as
 *                        gateways that do not pass client headers on do: the two-sided sidecar then joins by
 *                        content, reading every event's text on both sides
 *   sidecar              startProxy({ listen, target }) as users run it (defaults: /metrics, Prometheus sink),
 *                        once told `start <target> [<provider>]` over IPC; with <provider>, a provider-facing
 *                        listener that forwards there
 *   hop                  the same listeners without usagewire: http-proxy-middleware as startProxy sets it up
 *                        (keep-alive agents, changeOrigin), no plugin, no correlation, no readings; one process
 *                        serves both hop paths
 *
 * Five paths to the same provider, each measured in turn in every round:
 *
 *   gateway       client → gateway A → provider                                 what the whole sidecar costs (info)
 *   hop           client → hop 1 → gateway A → provider                         the baseline of 10a, 10b
 *   one-sided     client → sidecar 1 → gateway A → provider                     10a, 10b
 *   hop-two       client → hop 2 → gateway C → hop 2 → provider                 the baseline of 10c, 10d
 *   two-sided     client → sidecar 2 → gateway B → sidecar 2 → provider         10c, 10d
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { ALL_CPUS, GATEWAY_CPUS, OTHER_CPUS, PIN, pin, request, spawn, BODY, type Proc } from './procs.js'
import { anthropicBenchStream, E2E_DELTAS, E2E_WRITES, eventGroups, SSE } from './streams.js'
import { fmt, median, type Row } from './table.js'

const SELF = fileURLToPath(import.meta.url)

/** The sidecar's correlation header (DEFAULT_CORRELATION_HEADER of @usagewire/proxy), which the gateways drop. */
const CORRELATION_HEADER = 'x-usagewire-correlation'

/**
 * Distinct answers the provider rotates through: two client requests in flight at once get the same text only
 * if this many requests started while one of them was open.
 */
const POOL = 256

export interface SidecarBenchOptions {
  /** Streams kept in flight for the throughput rows (10b, 10d). */
  concurrency: number
  /** Length of each measured load run. */
  seconds: number
  /** Measured rounds, each one run per path (gateway, one-sided, two-sided), in rotating order. */
  rounds: number
  /** Length of each warm-up run: two per path. */
  warmupSeconds: number
  /** Requests sent one at a time on each path for the time to first event (10a, 10c). */
  serialRequests: number
}

export const SIDECAR_FULL: SidecarBenchOptions = {
  concurrency: 16,
  seconds: 2,
  rounds: 3,
  warmupSeconds: 2,
  serialRequests: 300,
}

export const SIDECAR_SMOKE: SidecarBenchOptions = {
  concurrency: 16,
  seconds: 0.3,
  rounds: 1,
  warmupSeconds: 0.2,
  serialRequests: 20,
}

type Path = 'gateway' | 'hop' | 'one-sided' | 'hop-two' | 'two-sided'
const PATHS: readonly Path[] = ['gateway', 'hop', 'one-sided', 'hop-two', 'two-sided']
/** A record of numbers, one per path. */
const perPath = <T>(make: () => T): Record<Path, T> =>
  Object.fromEntries(PATHS.map((p) => [p, make()])) as Record<Path, T>

interface Load {
  requests: number
  bytes: number
  seconds: number
  bad: number
  /** The first bad response, for the log. */
  firstBad?: string
  /** Complete responses whose bytes differ from the provider's (the sidecar rewrote a usage event). */
  rewritten: number
  /** Time from sending each request to the first bytes of its body, ms. */
  firstEvent: number[]
  /** Time from sending each request to the end of its body, ms. */
  lastByte: number[]
  /** CPU time (user + system) over the run, µs. */
  cpu?: { sidecar: number; gateway: number; provider: number; client: number }
}

type Cpu = NodeJS.CpuUsage
const cpuDelta = (a: Cpu, b: Cpu) => b.user - a.user + (b.system - a.system)

interface SidecarStats {
  records: number
  /** Records by `record.correlation.by` ('one-sided' for records without one). */
  by: Record<string, number>
  /** Why records were not joined, for the log. */
  reasons: Record<string, number>
  statuses: Record<string, number>
}

const BLANK = Buffer.from('\n\n')
const LAST_EVENT = Buffer.from('event: message_stop\ndata: {"type":"message_stop"}\n\n')

/**
 * `concurrency` loops, each sending one streaming request after the other, for `seconds` (or `count` requests).
 * A response is complete when it has every event the provider sent (`x-bench-events`) and ends with
 * message_stop; its bytes may differ from the provider's where the sidecar rewrote a usage event.
 */
async function load(port: number, seconds: number, concurrency: number, count = Infinity): Promise<Load> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  const r: Load = { requests: 0, bytes: 0, seconds: 0, bad: 0, rewritten: 0, firstEvent: [], lastByte: [] }
  let launched = 0
  const bad = (why: string) => {
    r.bad++
    r.firstBad ??= why
  }
  const started = performance.now()
  const deadline = started + seconds * 1000
  const one = () =>
    new Promise<void>((resolve) => {
      const sent = performance.now()
      const req = request(port, agent)
      req.on('response', (res) => {
        let got = 0
        let events = 0
        let tail = Buffer.alloc(0)
        res.on('data', (c: Buffer) => {
          if (got === 0) r.firstEvent.push(performance.now() - sent)
          got += c.length
          if (tail.at(-1) === 10 && c[0] === 10) events++
          for (let at = c.indexOf(BLANK); at !== -1; at = c.indexOf(BLANK, at + 2)) events++
          tail = Buffer.concat([tail, c]).subarray(-LAST_EVENT.length)
        })
        res.on('end', () => {
          r.requests++
          r.bytes += got
          r.lastByte.push(performance.now() - sent)
          const expected = Number(res.headers['x-bench-events'])
          if (res.statusCode !== 200 || events !== expected || !tail.equals(LAST_EVENT))
            bad(`status ${res.statusCode}, ${events} of ${expected} events, ends ${JSON.stringify(tail.toString())}`)
          else if (got !== Number(res.headers['x-bench-bytes'])) r.rewritten++
          resolve()
        })
        res.on('error', (e) => (bad(e.message), resolve()))
      })
      req.on('error', (e) => (bad(e.message), resolve()))
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
  r.seconds = (performance.now() - started) / 1000
  agent.destroy()
  return r
}

async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const stop = Date.now() + ms
  while (Date.now() < stop) {
    if (await check()) return true
    await sleep(25)
  }
  return check()
}

const ms = (v: number) => `${fmt(v, v < 10 ? 2 : 1)} ms`
const us = (v: number) => `${fmt(v, 0)} µs`
const signed = (v: number) => `${v < 0 ? '−' : '+'}${ms(Math.abs(v))}`

export async function sidecarBench(log: (line: string) => void, opts: SidecarBenchOptions): Promise<Row[]> {
  log(
    PIN
      ? `  pinned: gateways and sidecars on CPU ${GATEWAY_CPUS}, provider and load client on CPU ${OTHER_CPUS}`
      : '  not pinned to CPUs',
  )
  pin(process.pid, OTHER_CPUS)
  const started: Proc[] = []
  const child = async (name: string, args: string[], cpus: string) => {
    const p = await spawn(args, { module: SELF, name: `sidecar-${name}`, cpus })
    started.push(p)
    return p
  }
  try {
    // All seven boot at once; the addresses are wired over IPC after: gateway B's target is sidecar 2's
    // provider side, which sidecar 2 opens only once it knows gateway B's address (gateway C and hop 2 alike).
    const [provider, gatewayA, gatewayB, gatewayC, sidecar1, sidecar2, hops] = await Promise.all([
      child('provider', ['provider'], OTHER_CPUS),
      child('gateway-a', ['gateway', CORRELATION_HEADER], GATEWAY_CPUS),
      child('gateway-b', ['gateway', CORRELATION_HEADER], GATEWAY_CPUS),
      child('gateway-c', ['gateway', CORRELATION_HEADER], GATEWAY_CPUS),
      child('one-sided', ['sidecar'], GATEWAY_CPUS),
      child('two-sided', ['sidecar'], GATEWAY_CPUS),
      child('hop', ['hop'], GATEWAY_CPUS),
    ])
    const providerUrl = `http://127.0.0.1:${provider.port}`
    await gatewayA.ask(`target ${providerUrl}`)
    const [one, two, hop, hopTwo] = await Promise.all([
      sidecar1.ask<Started>(`start http://127.0.0.1:${gatewayA.port}`),
      sidecar2.ask<Started>(`start http://127.0.0.1:${gatewayB.port} ${providerUrl}`),
      hops.ask<Started>(`start http://127.0.0.1:${gatewayA.port}`),
      hops.ask<Started>(`start http://127.0.0.1:${gatewayC.port} ${providerUrl}`),
    ])
    await gatewayB.ask(`target ${two.providerUrl!}`)
    await gatewayC.ask(`target ${hopTwo.providerUrl!}`)
    return await measure(log, opts, provider, {
      gateway: { port: gatewayA.port, gateway: gatewayA },
      hop: { port: hop.port, gateway: gatewayA, sidecar: hops },
      'one-sided': { port: one.port, gateway: gatewayA, sidecar: sidecar1 },
      'hop-two': { port: hopTwo.port, gateway: gatewayC, sidecar: hops },
      'two-sided': { port: two.port, gateway: gatewayB, sidecar: sidecar2 },
    })
  } finally {
    await Promise.all(started.map((p) => p.exit()))
    pin(process.pid, ALL_CPUS)
  }
}

interface Route {
  /** Where the client sends its requests. */
  port: number
  gateway: Proc
  sidecar?: Proc
}

async function measure(
  log: (line: string) => void,
  opts: SidecarBenchOptions,
  provider: Proc,
  routes: Record<Path, Route>,
): Promise<Row[]> {
  const served = perPath(() => 0)
  const bad = perPath(() => 0)
  const rewritten = perPath(() => 0)
  const firstBad: string[] = []
  const count = (path: Path, r: Load) => {
    served[path] += r.requests
    bad[path] += r.bad
    rewritten[path] += r.rewritten
    if (r.firstBad) firstBad.push(`${path}: ${r.firstBad}`)
    return r
  }
  const rotated = (i: number) => PATHS.map((_, k) => PATHS[(i + k) % PATHS.length]!)

  // Warm-up: JIT, heap sizing, socket pools, twice per path.
  for (let pass = 0; pass < 2; pass++)
    for (const path of rotated(pass)) count(path, await load(routes[path].port, opts.warmupSeconds, opts.concurrency))

  // ── 10b, 10d: throughput at a fixed concurrency, the paths in rotating order every round ──────
  const runs = perPath((): Load[] => [])
  for (let round = 0; round < opts.rounds; round++) {
    for (const path of rotated(round)) {
      const { port, gateway, sidecar } = routes[path]
      const cpu = () =>
        Promise.all([sidecar?.ask<Cpu>('cpu'), gateway.ask<Cpu>('cpu'), provider.ask<Cpu>('cpu'), process.cpuUsage()])
      const [s0, g0, p0, c0] = await cpu()
      const r = count(path, await load(port, opts.seconds, opts.concurrency))
      const [s1, g1, p1, c1] = await cpu()
      r.cpu = {
        sidecar: s0 && s1 ? cpuDelta(s0, s1) : 0,
        gateway: cpuDelta(g0, g1),
        provider: cpuDelta(p0, p1),
        client: cpuDelta(c0, c1),
      }
      runs[path].push(r)
      const per = (v: number) => fmt(v / Math.max(1, r.requests), 0)
      log(
        `  sidecar round ${round + 1} ${path.padEnd(9)} ${fmt(r.requests / r.seconds, 0)} req/s, ${r.bad} bad; ` +
          `CPU µs/response: sidecar ${per(r.cpu.sidecar)}, gateway ${per(r.cpu.gateway)}, ` +
          `provider ${per(r.cpu.provider)}, client ${per(r.cpu.client)}; first event ${ms(median(r.firstEvent))}`,
      )
    }
  }
  const rps = (p: Path) => median(runs[p].map((r) => r.requests / r.seconds))
  const perResponse = (p: Path, of: 'sidecar' | 'gateway') =>
    median(runs[p].map((r) => r.cpu![of] / Math.max(1, r.requests)))
  const loadedFirst = (p: Path) => median(runs[p].flatMap((r) => r.firstEvent))

  // ── 10a, 10c: time to first event, one request at a time (no queue adds to it), in rotating batches ──
  const serial = perPath((): number[] => [])
  const serialEnd = perPath((): number[] => [])
  const batch = Math.max(1, Math.ceil(opts.serialRequests / 10))
  for (let sent = 0, i = 0; sent < opts.serialRequests; sent += batch, i++) {
    for (const path of rotated(i)) {
      const r = count(path, await load(routes[path].port, Infinity, 1, batch))
      serial[path].push(...r.firstEvent)
      serialEnd[path].push(...r.lastByte)
    }
  }
  const first = (p: Path) => median(serial[p])
  log(
    `  time to first event, one request at a time (${serial.gateway.length} each): ` +
      PATHS.map((p) => `${p} ${ms(first(p))}`).join(', ') +
      `; at ${opts.concurrency} streams: ` +
      PATHS.map((p) => `${p} ${ms(loadedFirst(p))}`).join(', '),
  )
  log('  time to last byte, one request at a time: ' + PATHS.map((p) => `${p} ${ms(median(serialEnd[p]))}`).join(', '))

  // Records are written as each response finishes on the sidecar: wait for the last ones.
  const stats = {} as Record<'one-sided' | 'two-sided', SidecarStats>
  for (const path of ['one-sided', 'two-sided'] as const) {
    const sidecar = routes[path].sidecar!
    await until(async () => (await sidecar.ask<SidecarStats>('stats')).records >= served[path], 3000)
    stats[path] = await sidecar.ask<SidecarStats>('stats')
    log(
      `  ${path} sidecar: ${stats[path].records} records for ${served[path]} responses, by ${JSON.stringify(stats[path].by)}` +
        `${Object.keys(stats[path].reasons).length > 0 ? `, not joined: ${JSON.stringify(stats[path].reasons)}` : ''}; ` +
        `statuses ${JSON.stringify(stats[path].statuses)}; bad responses ${bad[path]}, rewritten ${rewritten[path]}`,
    )
  }
  log(`  gateway alone: ${served.gateway} responses, ${bad.gateway} bad, rewritten ${rewritten.gateway}`)
  for (const f of firstBad.slice(0, 5)) log(`  bad response, ${f}`)

  const raw = (p: Path) =>
    runs[p].map((r) => ({
      requests: r.requests,
      bytes: r.bytes,
      seconds: r.seconds,
      bad: r.bad,
      cpuUs: r.cpu,
      firstEventMsMedian: median(r.firstEvent),
    }))
  const rows: Row[] = []
  for (const path of ['one-sided', 'two-sided'] as const) {
    const two = path === 'two-sided'
    const hop: Path = two ? 'hop-two' : 'hop'
    const name = two ? 'two-sided sidecar' : 'sidecar, client-facing'
    const [idFirst, idRate] = two ? ['10c', '10d'] : ['10a', '10b']
    const firstRatio = first(path) / first(hop)
    const firstBadCount = bad[path] + bad[hop] + bad.gateway
    rows.push({
      id: idFirst,
      what: `${name}: time to first event, 1 at a time, median`,
      value: ms(first(path)),
      baseline: `bare hop${two ? 's' : ''} ${ms(first(hop))}; ${signed(first(path) - first(hop))}`,
      ratio: `${fmt(firstRatio, 3)}×`,
      target: '≤ 1.10×',
      result: firstRatio <= 1.1 && firstBadCount === 0 ? 'PASS' : 'MISS',
      raw: {
        ratio: firstRatio,
        hopMs: first(hop),
        gatewayMs: first('gateway'),
        sidecarMs: first(path),
        requests: serial[path].length,
        lastByteMs: {
          gateway: median(serialEnd.gateway),
          hop: median(serialEnd[hop]),
          sidecar: median(serialEnd[path]),
        },
      },
    })
    const gatewayRatio = first(path) / first('gateway')
    rows.push({
      id: '',
      what: '  same, against the gateway alone (the hop included)',
      value: ms(first(path)),
      baseline: `gateway ${ms(first('gateway'))}; ${signed(first(path) - first('gateway'))}`,
      ratio: `${fmt(gatewayRatio, 3)}×`,
      result: 'info',
      raw: { ratio: gatewayRatio, gatewayMs: first('gateway'), sidecarMs: first(path) },
    })
    const loadedRatio = loadedFirst(path) / loadedFirst(hop)
    rows.push({
      id: '',
      what: `  same, at ${opts.concurrency} streams (includes queueing)`,
      value: ms(loadedFirst(path)),
      baseline: `bare hop${two ? 's' : ''} ${ms(loadedFirst(hop))}, gateway ${ms(loadedFirst('gateway'))}`,
      ratio: `${fmt(loadedRatio, 3)}×`,
      result: 'info',
      raw: {
        ratio: loadedRatio,
        hopMs: loadedFirst(hop),
        gatewayMs: loadedFirst('gateway'),
        sidecarMs: loadedFirst(path),
      },
    })
    const ratio = rps(path) / rps(hop)
    const target = two ? 0.8 : 0.9
    const perRound = runs[path].map((r, i) => r.requests / r.seconds / (runs[hop][i]!.requests / runs[hop][i]!.seconds))
    log(`  per-round req/s ratios ${path}/${hop}: ${perRound.map((p) => fmt(p, 3)).join(', ')}`)
    rows.push({
      id: idRate,
      what: `${name}: req/s, ${opts.concurrency} streams × ~26 KB, median of ${opts.rounds}`,
      value: `${fmt(rps(path), 0)} req/s`,
      baseline: `bare hop${two ? 's' : ''} ${fmt(rps(hop), 0)} req/s; gateway alone ${fmt(rps('gateway'), 0)} req/s (${fmt(rps(path) / rps('gateway'), 3)}×)`,
      ratio: `${fmt(ratio, 3)}×`,
      target: `≥ ${fmt(target, 2)}×`,
      result: ratio >= target && firstBadCount === 0 ? 'PASS' : 'MISS',
      raw: {
        ratio,
        perRound,
        gatewayRatio: rps(path) / rps('gateway'),
        gateway: raw('gateway'),
        [hop]: raw(hop),
        [path]: raw(path),
      },
    })
    const sidecarUs = perResponse(path, 'sidecar')
    const hopUs = perResponse(hop, 'sidecar')
    const gatewayUs = perResponse('gateway', 'gateway')
    rows.push({
      id: '',
      what: '  sidecar CPU per response',
      value: us(sidecarUs),
      baseline:
        `bare hop${two ? 's' : ''} ${us(hopUs)}; gateway alone ${us(gatewayUs)}, ` +
        `behind the sidecar ${us(perResponse(path, 'gateway'))}`,
      ratio: `${fmt(sidecarUs / hopUs, 3)}×`,
      result: 'info',
      raw: {
        sidecarUsPerResponse: sidecarUs,
        hopUsPerResponse: hopUs,
        gatewayUsPerResponse: gatewayUs,
        gatewayOnThisPathUsPerResponse: perResponse(path, 'gateway'),
      },
    })
    const s = stats[path]
    const unjoined = two ? s.records - (s.by.header ?? 0) - (s.by.content ?? 0) - (s.by.single ?? 0) : 0
    const allBad = firstBadCount
    const ok = s.records === served[path] && allBad === 0 && unjoined === 0
    rows.push({
      id: '',
      what: two ? '  records / responses served, all joined' : '  records / responses served',
      value: `${s.records} / ${served[path]}`,
      baseline: `${allBad} bad responses${two ? `; ${unjoined} not joined` : ''}`,
      target: two ? 'equal, 0 bad, 0 unjoined' : 'equal, 0 bad',
      result: ok ? 'PASS' : 'MISS',
      check: ok
        ? undefined
        : `sidecar ${path}: ${s.records} records for ${served[path]} responses, ${allBad} bad responses` +
          (two ? `, ${unjoined} records not joined to their provider call` : ''),
      raw: {
        records: s.records,
        served: served[path],
        bad: bad[path],
        hopBad: bad[hop],
        gatewayBad: bad.gateway,
        rewritten: rewritten[path],
        by: s.by,
        unjoined,
      },
    })
  }
  return rows
}

// ── the child processes ────────────────────────────────────────────────────────────────────────

function serve(handler: (cmd: string) => unknown | Promise<unknown>): void {
  // A bench that dies (or is interrupted) must not leave servers behind.
  process.on('disconnect', () => process.exit(0))
  process.on('message', (msg: { id: number; cmd: string }) => {
    if (msg.cmd === 'exit') process.exit(0)
    void Promise.resolve(handler(msg.cmd)).then((reply) => process.send!({ id: msg.id, reply }))
  })
}

async function listen(server: http.Server): Promise<number> {
  server.keepAliveTimeout = 60_000
  server.maxConnections = 10_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

async function providerChild(): Promise<void> {
  const answers = Array.from({ length: POOL }, (_, i) => {
    const stream = anthropicBenchStream(E2E_DELTAS, i)
    return {
      chunks: eventGroups(stream, E2E_WRITES),
      bytes: String(stream.bytes),
      events: String(stream.events.length),
    }
  })
  let next = 0
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      const answer = answers[next++ % POOL]!
      res.writeHead(200, {
        'content-type': SSE,
        'cache-control': 'no-cache',
        'request-id': 'req_bench',
        'x-bench-bytes': answer.bytes,
        'x-bench-events': answer.events,
      })
      for (const chunk of answer.chunks) res.write(chunk)
      res.end()
    })
  })
  const port = await listen(server)
  serve((cmd) => (cmd === 'cpu' ? process.cpuUsage() : null))
  process.send!({ ready: port })
}

/** Hop-by-hop headers: they describe one connection, not the request or response. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'])

async function gatewayChild(drop: string): Promise<void> {
  let target: URL | undefined
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 })
  const server = http.createServer((req, res) => {
    if (!target) return void res.writeHead(503).end()
    const headers: http.OutgoingHttpHeaders = { host: target.host }
    for (const [name, value] of Object.entries(req.headers))
      if (name !== 'host' && name !== drop && !HOP.has(name)) headers[name] = value
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent },
      (answer) => {
        const out: http.OutgoingHttpHeaders = {}
        for (const [name, value] of Object.entries(answer.headers)) if (!HOP.has(name)) out[name] = value
        res.writeHead(answer.statusCode ?? 502, out)
        answer.pipe(res)
      },
    )
    upstream.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()))
    req.pipe(upstream)
  })
  const port = await listen(server)
  serve((cmd) => {
    if (cmd === 'cpu') return process.cpuUsage()
    if (cmd.startsWith('target ')) target = new URL(cmd.slice(7))
    return null
  })
  process.send!({ ready: port })
}

/** What a sidecar child answers to `start <target> [<provider>]`. */
interface Started {
  port: number
  providerUrl: string | undefined
}

async function sidecarChild(): Promise<void> {
  // Loaded only here: the bench process and the other children load nothing of the sidecar.
  const { startProxy } = await import('@usagewire/proxy')
  const stats: SidecarStats = { records: 0, by: {}, reasons: {}, statuses: {} }
  const start = async (target: string, provider: string | undefined): Promise<Started> => {
    const sidecar = await startProxy({
      listen: '127.0.0.1:0',
      target,
      ...(provider ? { providerListen: '127.0.0.1:0', provider } : {}),
      onUsage: (record) => {
        stats.records++
        const c = record.correlation
        const by = c?.by ?? 'one-sided'
        stats.by[by] = (stats.by[by] ?? 0) + 1
        if (c?.by === 'none') {
          const why = c.reason ?? 'no reason given'
          stats.reasons[why] = (stats.reasons[why] ?? 0) + 1
        }
        stats.statuses[record.status] = (stats.statuses[record.status] ?? 0) + 1
      },
    })
    return { port: Number(new URL(sidecar.url).port), providerUrl: sidecar.providerUrl }
  }
  serve((cmd) => {
    if (cmd === 'cpu') return process.cpuUsage()
    if (cmd === 'stats') return stats
    if (cmd.startsWith('start ')) {
      const [target, provider] = cmd.slice(6).split(' ')
      return start(target!, provider)
    }
    return null
  })
  process.send!({ ready: 0 })
}

/**
 * The sidecar's listeners without usagewire: http-proxy-middleware with the options startProxy gives it
 * (a keep-alive agent per hop, changeOrigin), answering `start <target> [<provider>]` as a sidecar does.
 */
async function hopChild(): Promise<void> {
  const { createProxyMiddleware } = await import('http-proxy-middleware')
  const forwarder = (target: string) => {
    const proxy = createProxyMiddleware<http.IncomingMessage, http.ServerResponse>({
      target,
      changeOrigin: true,
      agent: new http.Agent({ keepAlive: true }),
    })
    return http.createServer((req, res) => void proxy(req, res, () => res.writeHead(502).end()))
  }
  const start = async (target: string, provider: string | undefined): Promise<Started> => {
    const port = await listen(forwarder(target))
    const providerUrl = provider ? `http://127.0.0.1:${await listen(forwarder(provider))}` : undefined
    return { port, providerUrl }
  }
  serve((cmd) => {
    if (cmd === 'cpu') return process.cpuUsage()
    if (cmd.startsWith('start ')) {
      const [target, provider] = cmd.slice(6).split(' ')
      return start(target!, provider)
    }
    return null
  })
  process.send!({ ready: 0 })
}

if (process.argv[1] === SELF) {
  const [role, arg1] = process.argv.slice(2)
  if (role === 'provider') await providerChild()
  else if (role === 'gateway') await gatewayChild(arg1 ?? CORRELATION_HEADER)
  else if (role === 'sidecar') await sidecarChild()
  else if (role === 'hop') await hopChild()
  else throw new Error(`bench/sidecar.bench.ts: unknown role ${role}`)
}
