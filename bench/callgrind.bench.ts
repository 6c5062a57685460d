/**
 * Row 8: instructions per response in the gateway process, bare and with usagewire, counted by
 * valgrind's callgrind. Unlike time, an instruction count hardly moves with other load on the machine:
 * two runs on this noisy VM agree within 1–2 %, where their req/s differ by up to 2×.
 *
 * Each gateway (bench/child.ts, the same express + http-proxy-middleware process as rows 4–6) runs under
 * `valgrind --tool=callgrind --instr-atstart=no`: nothing is counted while it starts and while warm-up
 * requests bring its JIT to a steady state. Then `callgrind_control -i on` starts the count, and after
 * each window of responses `callgrind_control -d` writes what the window cost to its own file. The
 * figure is the median window, per response.
 *
 * The responses are the field's shape: 2005 events (~257 KiB) arriving in ~1 KB writes (bench/streams.ts
 * FIELD_*). Under valgrind the gateway is ~50× slower than its upstream, so an upstream that wrote as
 * fast as it could would have its writes merged into 64 KiB reads, and the per-read and per-event costs
 * that dominate in the field would vanish. So the upstream here runs in this process in lockstep with the
 * client: it writes a stream's next ~1 KB only once the client has received everything written so far.
 * Every write then reaches the gateway as one read, whatever the gateway's speed.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { FRAMEWORKS, type Framework } from './frameworks.js'
import { BODY, request, spawn, type Proc } from './procs.js'
import {
  anthropicBenchStream,
  E2E_DELTAS,
  FIELD_DELTAS,
  FIELD_WRITE_BYTES,
  E2E_WRITES,
  eventGroups,
  sizeGroups,
  SSE,
} from './streams.js'
import { fmt, median, type Row } from './table.js'

export const RESULTS = fileURLToPath(new URL('./results/', import.meta.url))

export interface CallgrindBenchOptions {
  /**
   * Responses per gateway before counting starts, to settle the JIT: `short` responses of SHORT_WRITES
   * writes, `concurrency` − 2 at a time, alongside `full` ones, 2 at a time. A function that runs once
   * per request is optimized only after many requests, and short ones get there sooner under valgrind.
   */
  warmup: { short: number; full: number }
  /** Counted windows, each dumped on its own, to show how evenly the work (and the GC) spreads. */
  windows: number
  /** Responses per window. */
  perWindow: number
  /** Streams in flight at once. */
  concurrency: number
  /** false: the same requests with the gateways not under valgrind, and no counts (the smoke run). */
  valgrind: boolean
  /**
   * `field`: a long response in ~1 KB writes (row 8); `e2e`: the end-to-end rows' 26 KB response in the
   * upstream's 8 writes of whole events (row 8b), where the cost per request weighs most. A gateway gets
   * each of them as a write of its own however fast it reads: node's HTTP parser hands the body on one
   * chunked-encoding chunk at a time, and the proxy writes each one on.
   */
  shape: 'field' | 'e2e'
}

/** Writes in a short warm-up response: the first 7 and the last. */
const SHORT_WRITES = 8

export const CALLGRIND_FULL: CallgrindBenchOptions = {
  warmup: { short: 1500, full: 32 },
  windows: 7,
  perWindow: 16,
  concurrency: 8,
  valgrind: true,
  shape: 'field',
}
/** Row 8b: short responses spread their collections over more of them, so windows are larger. */
export const CALLGRIND_E2E: CallgrindBenchOptions = {
  warmup: { short: 1500, full: 32 },
  windows: 7,
  perWindow: 64,
  concurrency: 8,
  valgrind: true,
  shape: 'e2e',
}
export const CALLGRIND_SMOKE: CallgrindBenchOptions = {
  warmup: { short: 4, full: 2 },
  windows: 2,
  perWindow: 3,
  concurrency: 3,
  valgrind: false,
  shape: 'field',
}

type Mode = 'bare' | 'usagewire'

/**
 * The gateway counted: the Express one of rows 4–8 (default), or another adapter's from row 4g
 * (`BENCH_GATEWAY=koa|fastify|http-proxy-middleware`), to see where its difference goes.
 */
const GATEWAY = ((): 'express' | Framework => {
  const name = process.env.BENCH_GATEWAY ?? 'express'
  if (name !== 'express' && !(FRAMEWORKS as readonly string[]).includes(name))
    throw new Error(`BENCH_GATEWAY=${name}: not express, ${FRAMEWORKS.join(', ')}`)
  return name as 'express' | Framework
})()

/**
 * Node flags for the gateways under callgrind, so that a count repeats run after run:
 *  - `--predictable-gc-schedule`: V8 sizes its heap from allocation and collection speeds measured in
 *    wall-clock time, so on a noisy machine an old-generation collection lands in a different window
 *    each run. This flag, V8's own for repeatable runs, fixes semi-spaces at 4 MiB, grows the old
 *    generation by a fixed 30 % and turns the memory reducer off.
 *  - `--single-threaded`: no concurrent marking, sweeping or compiling on helper threads. Under valgrind
 *    threads take turns anyway, but when a helper's job ran, and so which feedback a function was
 *    compiled from, depended on timing: one run's usagewire cost 1.5 M instructions per response more
 *    JIT code than the next one's.
 *  - `--interrupt-budget=8192` (default 67584): functions tier up after an eighth of the bytecode, so
 *    the ones that run once per request reach TurboFan during the warm-up instead of compiling inside
 *    the counted windows. The tiers are the same as in a long-running gateway, only reached sooner
 *    (`--no-opt` and the like would count code no gateway runs). Node 22's V8 counts calls instead and
 *    has no such flag: there `--invocation-count-for-turbofan=375` (default 3000), an eighth too.
 */
const NODE_FLAGS = [
  '--predictable-gc-schedule',
  '--single-threaded',
  Number(process.versions.node.split('.')[0]) < 22 ? '--interrupt-budget=8192' : '--invocation-count-for-turbofan=375',
]

/** Why valgrind cannot be used here, or undefined when it can. */
export function valgrindMissing(): string | undefined {
  for (const [cmd, args] of [
    ['valgrind', ['--version']],
    ['callgrind_control', ['--version']],
  ] as const) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' })
    if (r.error || r.status !== 0) return `${cmd} not found (install valgrind)`
  }
  return undefined
}

interface Lockstep {
  port: number
  writes: Buffer[]
  bytes: number
  events: number
  /** Streams whose next write came from the deadlock breaker rather than from the client's progress. */
  nudges: number
  close(): Promise<void>
  /**
   * Sends `count` requests through the gateway at `port`, `concurrency` at a time, of `writes` writes
   * each (default: all).
   */
  run(port: number, count: number, concurrency: number, writes?: number): Promise<{ responses: number; bad: number }>
}

/**
 * If the gateway ever held back bytes the client is waiting for, lockstep would wait forever: after this
 * long the next write goes anyway, and is counted as a nudge (0 in a healthy run).
 */
const NUDGE_MS = 2000

async function lockstepUpstream(shape: CallgrindBenchOptions['shape']): Promise<Lockstep> {
  const stream = anthropicBenchStream(shape === 'e2e' ? E2E_DELTAS : FIELD_DELTAS, 0)
  const writes = shape === 'e2e' ? eventGroups(stream, E2E_WRITES) : sizeGroups(stream, FIELD_WRITE_BYTES)
  interface Flow {
    res?: http.ServerResponse
    plan: Buffer[]
    bytes: number
    next: number
    sent: number
    received: number
    timer?: NodeJS.Timeout
  }
  const flows = new Map<string, Flow>()
  let nudges = 0
  const advance = (f: Flow) => {
    clearTimeout(f.timer)
    const res = f.res!
    const chunk = f.plan[f.next++]!
    f.sent += chunk.length
    if (f.next === f.plan.length) res.end(chunk)
    else {
      res.write(chunk)
      f.timer = setTimeout(() => {
        nudges++
        advance(f)
      }, NUDGE_MS)
    }
  }
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      const flow = flows.get(String(req.headers['x-bench-stream']))
      if (!flow) {
        res.writeHead(404).end()
        return
      }
      res.writeHead(200, { 'content-type': SSE, 'cache-control': 'no-cache', 'request-id': 'req_bench' })
      flow.res = res
      advance(flow)
    })
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  let ids = 0

  const one = (port: number, agent: http.Agent, plan: Buffer[], bytes: number) =>
    new Promise<boolean>((resolve) => {
      const id = String(ids++)
      const flow: Flow = { plan, bytes, next: 0, sent: 0, received: 0 }
      flows.set(id, flow)
      const done = (ok: boolean) => {
        clearTimeout(flow.timer)
        flows.delete(id)
        resolve(ok)
      }
      const req = request(port, agent, { 'x-bench-stream': id })
      req.on('response', (res) => {
        res.on('data', (c: Buffer) => {
          flow.received += c.length
          if (flow.res && flow.next < plan.length && flow.received >= flow.sent) advance(flow)
        })
        res.on('end', () => done(res.statusCode === 200 && flow.received === bytes))
        res.on('error', () => done(false))
      })
      req.on('error', () => done(false))
      req.end(BODY)
    })

  return {
    port: (server.address() as AddressInfo).port,
    writes,
    bytes: stream.bytes,
    events: stream.events.length,
    get nudges() {
      return nudges
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
    run: async (port, count, concurrency, length = writes.length) => {
      // A shorter response keeps the first writes and the last (the usage event and the end).
      const plan = length >= writes.length ? writes : [...writes.slice(0, length - 1), writes.at(-1)!]
      const bytes = plan.reduce((n, b) => n + b.length, 0)
      const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
      let started = 0
      let responses = 0
      let bad = 0
      await Promise.all(
        Array.from({ length: Math.min(concurrency, count) }, async () => {
          while (started < count) {
            started++
            if (await one(port, agent, plan, bytes)) responses++
            else bad++
          }
        }),
      )
      agent.destroy()
      return { responses, bad }
    },
  }
}

/**
 * Self cost per kind of code in a callgrind out file: the JIT's code (no object file: valgrind sees
 * code V8 generated at run time as `???`), V8's builtins (embedded in the node binary, `Builtins_*`:
 * the interpreter, inline caches, most of Buffer and string methods), the rest of the node binary (V8's
 * runtime and GC, libuv, llhttp, node's C++), and shared libraries (libc: memcpy, malloc, syscalls).
 */
export interface Breakdown {
  total: number
  jit: number
  builtins: number
  node: number
  libs: number
  /** The same instructions again, by what the code does (see COMPONENTS). */
  parts: Record<Component, number>
  /**
   * The JIT's instructions by JavaScript function (`name file:line`), where the gateway wrote a perf map
   * (`--perf-basic-prof`) that names them; code the map does not name is left out.
   */
  jitBy: Map<string, number>
}

/**
 * The names of the JIT's code, from the map `--perf-basic-prof` writes to /tmp/perf-<pid>.map (one line
 * per code object: start and size in hex, then its name). A range the map names twice (code collected
 * and its space reused) takes the later name. Returns a lookup from an address to `name file:line`.
 */
export function readPerfMap(path: string): (address: number) => string | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    return () => undefined
  }
  const entries: Array<{ start: number; end: number; name: string; order: number }> = []
  let order = 0
  for (const line of text.split('\n')) {
    const a = line.indexOf(' ')
    const b = line.indexOf(' ', a + 1)
    if (a <= 0 || b <= a) continue
    const start = parseInt(line.slice(0, a), 16)
    const size = parseInt(line.slice(a + 1, b), 16)
    entries.push({ start, end: start + size, name: jsName(line.slice(b + 1)), order: order++ })
  }
  entries.sort((x, y) => x.start - y.start || x.order - y.order)
  const starts = entries.map((e) => e.start)
  return (address) => {
    // The last entry that starts at or before the address; among overlapping ones the latest written.
    let lo = 0
    let hi = starts.length - 1
    let at = -1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (starts[mid]! <= address) ((at = mid), (lo = mid + 1))
      else hi = mid - 1
    }
    let best: (typeof entries)[number] | undefined
    for (let i = at; i >= 0 && i > at - 64; i--) {
      const e = entries[i]!
      if (e.start <= address && address < e.end && (best === undefined || e.order > best.order)) best = e
    }
    return best?.name
  }
}

/**
 * `JS:*push file:///…/packages/core/dist/chunk-X.js:2652:7` → `push @usagewire/core/dist/chunk-X.js:2652`:
 * this workspace's packages under their published names, others as found under node_modules.
 */
function jsName(raw: string): string {
  const m = /^(?:[A-Za-z]+:)?[*~^+]?(.*?) (\S+?)(?::(\d+)(?::\d+)?)?$/.exec(raw)
  if (!m) return raw
  const file = m[2]!
    .replace(/^file:\/\//, '')
    .replace(/^.*\/packages\//, '@usagewire/')
    .replace(/^.*\/node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?/, '')
  return `${m[1] || '(anonymous)'} ${file}${m[3] ? `:${m[3]}` : ''}`
}

/**
 * Whose code a named JIT function is: usagewire's packages, Node's own (its `node:` modules, and V8's
 * stubs and regular expressions, which name no file), or the gateway's dependencies.
 */
export function ownerOf(name: string): 'usagewire' | 'node' | 'gateway' {
  const space = name.lastIndexOf(' ')
  if (space === -1) return 'node'
  const file = name.slice(space + 1)
  if (file.startsWith('node:')) return 'node'
  return file.startsWith('@usagewire/') ? 'usagewire' : 'gateway'
}

/**
 * What the instructions outside the JIT's code do, told by the function callgrind charges: the garbage
 * collector, the optimizing compilers, V8's property lookups (inline-cache misses, the runtime's lookups
 * and shape changes behind them: where a gateway whose objects change shape per request spends), JSON
 * parsing, byte searches (`Buffer#indexOf`, memchr), and the rest. The JIT's own code is one part.
 */
export const COMPONENTS = ['jit', 'lookups', 'json', 'search', 'gc', 'compile', 'other'] as const
export type Component = (typeof COMPONENTS)[number]

const PART_OF: Array<[RegExp, Component]> = [
  [
    /Scaveng|MarkCompact|Marking|Sweep|Evacuat|RememberedSet|PointersUpdating|RecordMigrated|LiveObject|IteratePointers|BodyDescriptor|Heap::|SemiSpace|Pretenuring|GCTracer|StringTableCleaner|ClearWeak|FlushBytecode|IterateObjectCache|SizeFromMap|MinorGCJob|DefaultJobState|CancelableTask|RecordWrite/,
    'gc',
  ],
  [/JsonParser|JsonString|InternalizeString|StringTable/, 'json'],
  [/memchr|stringsearch|IndexOf/, 'search'],
  [
    /LookupIterator|IC_Miss|LoadIC|StoreIC|StubCache|MigrateToMap|DescriptorArray|ComputeHandler|FieldIndex|FetchValue|NumberOfFields|PrototypeIterator|MakePrototypesFast|FeedbackNexus|Map::|Transition/,
    'lookups',
  ],
  [/compiler::|Turbofan|Maglev|Baseline|Compile|Deoptimiz|Bytecode/, 'compile'],
]

const PART_NAMES: Record<Component, string> = {
  jit: 'JIT',
  lookups: 'lookups',
  json: 'JSON',
  search: 'search',
  gc: 'GC',
  compile: 'compile',
  other: 'other',
}
/** Parts that land in some windows and not in others: left out of the steady difference. */
const UNSTEADY = new Set<Component>(['gc', 'compile'])
const signed = (n: number) => `${n < 0 ? '−' : '+'}${fmt(Math.abs(n) / 1e3, 0)} K`

const partOf = (fn: string): Component => {
  for (const [pattern, part] of PART_OF) if (pattern.test(fn)) return part
  return 'other'
}

export function readCallgrind(
  path: string,
  jitName: (address: number) => string | undefined = () => undefined,
): Breakdown {
  const text = readFileSync(path, 'utf8')
  const names = { ob: new Map<string, string>(), fn: new Map<string, string>() }
  const parts = Object.fromEntries(COMPONENTS.map((c) => [c, 0])) as Record<Component, number>
  const jitBy = new Map<string, number>()
  const out: Breakdown = { total: 0, jit: 0, builtins: 0, node: 0, libs: 0, parts, jitBy }
  let jsFn: string | undefined
  const jsCache = new Map<string, string | undefined>()
  const partCache = new Map<string, Component>()
  let ob = ''
  let fn = ''
  let part: Component = 'other'
  let skipNext = false
  const name = (kind: 'ob' | 'fn', spec: string) => {
    const m = /^\((\d+)\)(?: (.*))?$/.exec(spec)
    if (!m) return spec
    if (m[2] !== undefined) names[kind].set(m[1]!, m[2])
    return names[kind].get(m[1]!) ?? ''
  }
  let totals: number | undefined
  for (const line of text.split('\n')) {
    const c = line.charCodeAt(0)
    if ((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 42) {
      // a cost line: position(s), then the Ir count; the line after `calls=` is the callee's inclusive cost
      if (skipNext) {
        skipNext = false
        continue
      }
      const ir = Number(line.slice(line.lastIndexOf(' ') + 1))
      if (ob === '???' || ob === '') {
        out.jit += ir
        parts.jit += ir
        if (jsFn !== undefined) jitBy.set(jsFn, (jitBy.get(jsFn) ?? 0) + ir)
        continue
      }
      if (/\/node$/.test(ob)) {
        if (fn.startsWith('Builtins_')) out.builtins += ir
        else out.node += ir
      } else out.libs += ir
      parts[part] += ir
    } else if (line.startsWith('ob=')) ob = name('ob', line.slice(3))
    else if (line.startsWith('cob=')) name('ob', line.slice(4))
    else if (line.startsWith('fn=')) {
      fn = name('fn', line.slice(3))
      part = partCache.get(fn) ?? partOf(fn)
      partCache.set(fn, part)
      if (fn.startsWith('0x')) {
        if (!jsCache.has(fn)) jsCache.set(fn, jitName(parseInt(fn, 16)))
        jsFn = jsCache.get(fn)
      } else jsFn = undefined
    } else if (line.startsWith('cfn=')) name('fn', line.slice(4))
    else if (line.startsWith('calls=')) skipNext = true
    else if (line.startsWith('totals:')) totals = Number(line.slice(7).trim())
  }
  out.total = out.jit + out.builtins + out.node + out.libs
  if (totals !== undefined && totals !== out.total)
    throw new Error(`${path}: self costs add up to ${out.total}, the file's totals say ${totals}`)
  return out
}

interface Counted {
  responses: number
  bad: number
  records: number
  /** One per counted window, in order; empty when not under valgrind. */
  windows: Breakdown[]
  seconds: { warmup: number; counted: number }
}

/** Callgrind's out file for `mode`; the dump of window n is `<out file>.<n>`. */
const outFile = (mode: string) => `${RESULTS}callgrind.${mode}.out`

async function countOne(mode: Mode, up: Lockstep, opts: CallgrindBenchOptions): Promise<Counted> {
  const target = `http://127.0.0.1:${up.port}`
  const file = opts.shape === 'e2e' ? `e2e.${mode}` : mode
  for (const f of readdirSync(RESULTS)) if (f.startsWith(`callgrind.${file}.`)) rmSync(`${RESULTS}${f}`)
  const wrapper = opts.valgrind
    ? [
        'valgrind',
        '--tool=callgrind',
        '--instr-atstart=no',
        `--callgrind-out-file=${outFile(file)}`,
        `--log-file=${RESULTS}callgrind.${file}.log`,
      ]
    : undefined
  const gw: Proc = await spawn(
    GATEWAY === 'express' ? ['gateway', mode, target] : ['framework', GATEWAY, mode, target],
    {
      wrapper,
      // --perf-basic-prof: the gateway writes /tmp/perf-<pid>.map, which names the JIT's code by function.
      nodeFlags: opts.valgrind ? [...NODE_FLAGS, '--perf-basic-prof'] : NODE_FLAGS,
    },
  )
  const control = (...args: string[]) => {
    if (opts.valgrind) execFileSync('callgrind_control', [...args, String(gw.child.pid)], { stdio: 'ignore' })
  }
  try {
    let t = performance.now()
    // Full responses alongside the short ones, so the type feedback the JIT optimizes on covers both
    // from the start: after short ones alone, the first full responses (backpressure, longer buffers)
    // deoptimized dozens of functions that then took hundreds of requests to come back. Both counts are
    // fixed, so that every run allocates the same before counting starts. In two parts, each on
    // connections of its own: the first connections the gateway sees close (when the first part's clients
    // go) generalize a field of node's sockets, and V8 then throws away the compiled code of every function
    // that read a socket, node's and usagewire's alike (`--trace-deopt`: "wrong map" in parserOnIncoming,
    // resOnFinish, the proxy's middleware, usagewire's interceptor, …). Counted right after, as before,
    // the windows ran much of both gateways' per-request code unoptimized. The second part, two thirds of
    // the warm-up, lets the JIT compile it again.
    let bad = 0
    for (const share of [1 / 3, 2 / 3]) {
      const [short, full] = await Promise.all([
        up.run(gw.port, Math.round(opts.warmup.short * share), opts.concurrency - 2, SHORT_WRITES),
        up.run(gw.port, Math.max(1, Math.round(opts.warmup.full * share)), 2),
      ])
      bad += short.bad + full.bad
    }
    const warmupSeconds = (performance.now() - t) / 1000
    const before = (await gw.ask<{ records: number }>('stats')).records
    t = performance.now()
    let responses = 0
    control('-i', 'on')
    for (let w = 0; w < opts.windows; w++) {
      const r = await up.run(gw.port, opts.perWindow, opts.concurrency)
      responses += r.responses
      bad += r.bad
      // A dump holds the counts since the previous one: one file per window.
      control('-d')
    }
    control('-i', 'off')
    const countedSeconds = (performance.now() - t) / 1000
    const records = (await gw.ask<{ records: number }>('stats')).records - before
    await gw.exit()
    // valgrind runs node in the process it was started as: the map is under the child's own pid.
    const map = `/tmp/perf-${gw.child.pid}.map`
    const jitName = opts.valgrind ? readPerfMap(map) : undefined
    // Kept beside the counts on request, to name the JIT's code in them afterwards (callers, callees).
    if (opts.valgrind && process.env.BENCH_KEEP_MAPS) copyFileSync(map, `${outFile(file)}.map`)
    rmSync(map, { force: true })
    const windows = opts.valgrind
      ? Array.from({ length: opts.windows }, (_, w) => readCallgrind(`${outFile(file)}.${w + 1}`, jitName))
      : []
    return { responses, bad, records, windows, seconds: { warmup: warmupSeconds, counted: countedSeconds } }
  } finally {
    await gw.exit()
  }
}

const m = (n: number) => `${fmt(n / 1e6, 2)} M`

/**
 * Per response: the window with the median count (the steady state: an old-generation collection or a
 * late TurboFan compile lands in one window of the seven and makes it the highest), all windows
 * together (those included, at their share), and the lowest and the highest window.
 */
function summarize(
  c: Counted,
  perWindow: number,
): Pick<Breakdown, 'parts' | 'jitBy'> & { median: Breakdown; all: number; low: number; high: number } {
  const per = (w: Breakdown): Breakdown => ({
    total: w.total / perWindow,
    jit: w.jit / perWindow,
    builtins: w.builtins / perWindow,
    node: w.node / perWindow,
    libs: w.libs / perWindow,
    parts: Object.fromEntries(COMPONENTS.map((k) => [k, w.parts[k] / perWindow])) as Record<Component, number>,
    jitBy: new Map([...w.jitBy].map(([name, ir]) => [name, ir / perWindow])),
  })
  const windows = c.windows.map(per)
  const sorted = [...windows].sort((a, b) => a.total - b.total)
  return {
    median: sorted[(sorted.length - 1) >> 1]!,
    all: c.windows.reduce((n, w) => n + w.total, 0) / c.responses,
    low: sorted[0]!.total,
    high: sorted.at(-1)!.total,
    // Each component's own median over the windows: a collection or a compile that lands in a window
    // moves its GC or compile part, not the others.
    parts: Object.fromEntries(COMPONENTS.map((k) => [k, median(windows.map((w) => w.parts[k]))])) as Record<
      Component,
      number
    >,
    // Each named function's own median, the same way (a function a window did not run counts 0 there).
    jitBy: new Map(
      [...new Set(windows.flatMap((w) => [...w.jitBy.keys()]))].map((name) => [
        name,
        median(windows.map((w) => w.jitBy.get(name) ?? 0)),
      ]),
    ),
  }
}

export async function callgrindBench(log: (line: string) => void, opts: CallgrindBenchOptions): Promise<Row[]> {
  mkdirSync(RESULTS, { recursive: true })
  const up = await lockstepUpstream(opts.shape)
  const id = opts.shape === 'e2e' ? '8b' : '8'
  const what = `gateway instructions per ${(up.bytes / 1024).toFixed(0)} KiB response`
  const expected = opts.windows * opts.perWindow
  if (GATEWAY !== 'express') log(`  gateway: ${GATEWAY} (BENCH_GATEWAY), bare and with usagewire`)
  log(
    `  responses: ${up.bytes} B, ${up.events} events in ${up.writes.length} ${opts.shape === 'e2e' ? 'writes of whole events' : `writes of ≤ ${FIELD_WRITE_BYTES} B`}, ` +
      `lockstep with the client; ${opts.concurrency} in flight; per gateway ${opts.warmup.short} short + ${opts.warmup.full} full warm-up, then ` +
      `${opts.windows} counted windows of ${opts.perWindow}` +
      (opts.valgrind ? '' : '; not under valgrind (no counts)'),
  )
  const counted = {} as Record<Mode, Counted>
  try {
    for (const mode of ['bare', 'usagewire'] as const) {
      const c = await countOne(mode, up, opts)
      counted[mode] = c
      const s = c.windows.length > 0 ? summarize(c, opts.perWindow) : undefined
      log(
        `  ${mode.padEnd(9)} ${c.responses} responses, ${c.bad} bad, ${c.records} records; ` +
          `warm-up ${fmt(c.seconds.warmup, 1)} s, counted ${fmt(c.seconds.counted, 1)} s` +
          (s
            ? `; instructions/response: median window ${m(s.median.total)}, all ${m(s.all)} (windows of ${opts.perWindow}: ${c.windows.map((w) => fmt(w.total / opts.perWindow / 1e6, 2)).join(', ')} M): ` +
              `median window: JIT code ${m(s.median.jit)}, V8 builtins ${m(s.median.builtins)}, rest of node ${m(s.median.node)}, ` +
              `shared libraries ${m(s.median.libs)}`
            : ''),
      )
    }
  } finally {
    await up.close()
  }
  const { bare, usagewire } = counted
  const bad = bare.bad + usagewire.bad
  const check = [
    bad !== 0 ? `${bad} bad responses` : '',
    usagewire.records !== usagewire.responses
      ? `${usagewire.records} usagewire records for ${usagewire.responses} responses`
      : '',
    bare.responses !== expected || usagewire.responses !== expected
      ? `${bare.responses} and ${usagewire.responses} responses of ${expected}`
      : '',
  ]
    .filter(Boolean)
    .join('; ')
  if (up.nudges > 0) log(`  ${up.nudges} writes went without the client's progress (the gateway held bytes back)`)
  const raw = {
    responseBytes: up.bytes,
    events: up.events,
    writes: up.writes.length,
    ...opts,
    nudges: up.nudges,
    bare,
    usagewire,
  }
  if (bare.windows.length === 0 || usagewire.windows.length === 0)
    return [
      {
        id,
        what,
        value: 'not counted',
        baseline: `${bare.responses} + ${usagewire.responses} responses, not under valgrind`,
        result: 'info',
        check: check ? `callgrind: ${check}` : undefined,
        raw,
      },
    ]
  const b = summarize(bare, opts.perWindow)
  const u = summarize(usagewire, opts.perWindow)
  const ratio = u.median.total / b.median.total
  const delta = u.median.total - b.median.total
  const d = (k: 'jit' | 'builtins' | 'node' | 'libs') => m(u.median[k] - b.median[k])
  // The steady part of the difference: every component's median but the collector's and the compilers',
  // which land in some windows and not in others.
  const steadyOf = (p: Record<Component, number>) => COMPONENTS.reduce((n, k) => (UNSTEADY.has(k) ? n : n + p[k]), 0)
  const bareSteady = steadyOf(b.parts)
  const steady = steadyOf(u.parts) - bareSteady
  return [
    {
      id,
      what: `${what}, median window`,
      value: m(u.median.total),
      baseline: `bare ${m(b.median.total)}`,
      ratio: `${fmt(ratio, 3)}×`,
      result: 'info',
      check: check ? `callgrind: ${check}` : undefined,
      raw: {
        ...raw,
        bareIrPerResponse: b.median.total,
        usagewireIrPerResponse: u.median.total,
        ratio,
        bareAllWindows: b.all,
        usagewireAllWindows: u.all,
        bareParts: b.parts,
        usagewireParts: u.parts,
      },
    },
    {
      id: '',
      what: '  same, per byte of response body',
      value: `${fmt(u.median.total / up.bytes, 1)} Ir/B`,
      baseline: `bare ${fmt(b.median.total / up.bytes, 1)} Ir/B`,
      ratio: `Δ ${fmt(delta / up.bytes, 1)} Ir/B`,
      result: 'info',
    },
    {
      id: '',
      what: '  usagewire − bare, by kind of code',
      value: m(delta),
      baseline: `JIT ${d('jit')}, builtins ${d('builtins')}, node ${d('node')}, libs ${d('libs')}`,
      ratio: `${fmt(delta / up.events, 0)} Ir/event`,
      result: 'info',
    },
    {
      id: '',
      what: '  usagewire − bare, by component (medians)',
      value: m(steady),
      baseline: COMPONENTS.map((k) => `${PART_NAMES[k]} ${signed(u.parts[k] - b.parts[k])}`).join(', '),
      ratio: `steady ${fmt((bareSteady + steady) / bareSteady, 3)}×`,
      result: 'info',
    },
    ...jitRows(b.jitBy, u.jitBy, u.parts.jit - b.parts.jit),
    {
      id: '',
      what: `  all ${opts.windows} windows of ${opts.perWindow} (GC, late compiles)`,
      value: m(u.all),
      baseline: `bare ${m(b.all)}; windows uw ${m(u.low)}–${m(u.high)}, bare ${m(b.low)}–${m(b.high)}`,
      ratio: `${fmt(u.all / b.all, 3)}×`,
      result: 'info',
    },
  ]
}

/**
 * The JIT part of the difference by whose functions ran it (usagewire's, Node's own, the gateway's
 * packages), and usagewire's costliest functions, from the functions' medians. None where the perf map
 * named nothing (a gateway not under valgrind).
 */
function jitRows(bare: Map<string, number>, usagewire: Map<string, number>, jitDelta: number): Row[] {
  if (usagewire.size === 0) return []
  const by = { usagewire: 0, node: 0, gateway: 0 }
  let named = 0
  for (const name of new Set([...bare.keys(), ...usagewire.keys()])) {
    const delta = (usagewire.get(name) ?? 0) - (bare.get(name) ?? 0)
    by[ownerOf(name)] += delta
    named += delta
  }
  const own = [...usagewire].filter(([name]) => ownerOf(name) === 'usagewire').sort((x, y) => y[1] - x[1])
  const top = own.slice(0, 6).map(([name, ir]) => `${name.slice(0, name.indexOf(' '))} ${fmt(ir / 1e3, 1)} K`)
  return [
    {
      id: '',
      what: '  usagewire − bare, JIT code by whose functions',
      value: signed(by.usagewire),
      baseline: `usagewire's ${signed(by.usagewire)}, Node's ${signed(by.node)}, the gateway's packages ${signed(by.gateway)}, unnamed ${signed(jitDelta - named)}`,
      ratio: `${own.length} functions`,
      result: 'info',
      raw: {
        byOwner: by,
        unnamed: jitDelta - named,
        usagewireFunctions: Object.fromEntries(own.map(([name, ir]) => [name, Math.round(ir)])),
      },
    },
    {
      id: '',
      what: "  usagewire's costliest functions (JIT, per response)",
      value: top[0] ?? '',
      baseline: top.slice(1).join(', '),
      result: 'info',
    },
  ]
}
