/**
 * Framer benchmarks (row 7), in this process: the cost per byte of one 4 MiB event, cut into 64-byte,
 * 1 KiB and 64 KiB chunks, in LF and CRLF streams, through the public `createProcessor` push/end API.
 * Framing cost grows linearly with the bytes whatever the chunking and line ends, nothing is searched
 * twice (docs/architecture.md#framers, docs/architecture.md#performance-budget): the target is that the
 * same event at twice the size costs at most 1.25× as much per byte, in every chunking (a framer that
 * searches a held event again from its start costs twice as much per byte there). The spread across
 * chunkings is reported too: it is the fixed cost of each push, which 64-byte chunks pay 1024 times as
 * often per byte as 64 KiB ones.
 *
 *  - Anthropic: a `content_block_delta` event (named, cannot carry usage: it leaves as it comes).
 *  - Chat: an unnamed OpenAI-chat-style data event, over maxEventBytes (1 MiB by default): it leaves as it
 *    comes and its payload is read on the way (docs/architecture.md#oversized-events).
 *
 * Each stream also has its usual small events before and after, so the dialect is settled and the usage
 * events are read as in any response.
 */
import { createProcessor } from '@usagewire/core'
import { anthropicBenchStream, chatBenchStream, textPieces, type BenchStream } from './streams.js'
import { fmt, median, type Row } from './table.js'

const EVENT_BYTES = 4 * 1024 * 1024
const CHUNKINGS = [
  ['64 B', 64],
  ['1 KiB', 1024],
  ['64 KiB', 64 * 1024],
] as const

export interface FramerBenchOptions {
  /** Passed to createProcessor; default: the processor's own (1 MiB). */
  maxEventBytes?: number
  /** A case still running after this many seconds stops, and its figure is a lower bound. Default 20. */
  deadlineSeconds?: number
  /** Size of the one large event. Default 4 MiB. */
  eventBytes?: number
  /** Passes per case, of which the first two warm up the JIT (fewer: only the first). Default 9. */
  passes?: number
}

/**
 * The smoke run's sizes: the same code paths (the chat event still exceeds maxEventBytes) on an eighth
 * of the bytes.
 */
export const FRAMER_SMOKE: FramerBenchOptions = {
  eventBytes: 512 * 1024,
  maxEventBytes: 128 * 1024,
  passes: 2,
  deadlineSeconds: 5,
}

interface Payload {
  label: string
  path: string
  body: Buffer
}

/** Text of about `bytes` bytes, made of the same words the other benchmarks use. */
function bigText(bytes: number): string {
  const pieces: string[] = []
  let size = 0
  for (let seed = 1; size < bytes; seed++) {
    for (const piece of textPieces(4096, seed)) {
      pieces.push(piece)
      size += piece.length
      if (size >= bytes) break
    }
  }
  return pieces.join('')
}

/** `stream` with event `index` grown to about `size` bytes by the text member `member`, in `eol` line ends. */
function payload(
  label: string,
  stream: BenchStream,
  index: number,
  member: string,
  eol: string,
  size: number,
): Payload {
  const events = stream.events.map((e) => e.toString('utf8'))
  const small = events[index]!
  const pattern = new RegExp(`"${member}":"[^"]*"`)
  if (!pattern.test(small)) throw new Error(`${label}: no ${member} member in event ${index}`)
  events[index] = small.replace(pattern, () => `"${member}":${JSON.stringify(bigText(size - small.length))}`)
  const body = Buffer.from(events.join('').replace(/\n/g, eol), 'utf8')
  return { label, path: stream.path, body }
}

function cut(body: Buffer, size: number): Buffer[] {
  const out: Buffer[] = []
  for (let at = 0; at < body.length; at += size) out.push(Buffer.from(body.subarray(at, at + size)))
  return out
}

interface Pass {
  ns: number
  cpuUs: number
  bytes: number // bytes pushed (all of the body, unless the deadline came first)
  out: number
  passthrough: string | undefined
}

function pass(p: Payload, chunks: Buffer[], maxEventBytes: number | undefined, deadline: number): Pass {
  const processor = createProcessor({
    path: p.path,
    contentType: 'text/event-stream',
    ...(maxEventBytes !== undefined && { maxEventBytes }),
  })
  let out = 0
  let bytes = 0
  const cpu = process.cpuUsage()
  const t = process.hrtime.bigint()
  let i = 0
  for (; i < chunks.length; i++) {
    const chunk = chunks[i]!
    const bufs = processor.push(chunk)
    for (let j = 0; j < bufs.length; j++) out += bufs[j]!.length
    bytes += chunk.length
    if ((i & 1023) === 1023 && Date.now() > deadline) break
  }
  if (i === chunks.length) for (const b of processor.end()) out += b.length
  const ns = Number(process.hrtime.bigint() - t)
  const used = process.cpuUsage(cpu)
  return { ns, cpuUs: used.user + used.system, bytes, out, passthrough: processor.result().passthrough?.reason }
}

interface Measure {
  nsPerByte: number
  cpuSecondsPerGB: number
  /** The deadline came first: the figure is a lower bound, from this many bytes of the body. */
  partial: number | undefined
  passthrough: string | undefined
}

/** The first passes warm up the JIT: two, or all but the last when there are fewer than three. */
const warmupOf = (passes: number): number => (passes > 2 ? 2 : passes - 1)

function measure(p: Payload, chunks: Buffer[], options: FramerBenchOptions): Measure {
  const deadline = Date.now() + (options.deadlineSeconds ?? 20) * 1000
  const passes = options.passes ?? 9
  const warmup = warmupOf(passes)
  const ns: number[] = []
  const cpu: number[] = []
  for (let i = 0; i < passes; i++) {
    const r = pass(p, chunks, options.maxEventBytes, deadline)
    const partial = r.bytes < p.body.length
    if (!partial && r.out < p.body.length * 0.99) throw new Error(`${p.label}: bytes out ${r.out}, in ${p.body.length}`)
    // The first passes warm up the JIT, unless a pass is so slow that there is time for one only.
    if (i >= warmup || partial || Date.now() > deadline) {
      ns.push(r.ns / r.bytes)
      cpu.push(((r.cpuUs / 1e6) * 1e9) / r.bytes)
    }
    if (partial || Date.now() > deadline || i === passes - 1)
      return {
        nsPerByte: median(ns),
        cpuSecondsPerGB: median(cpu),
        partial: partial ? r.bytes : undefined,
        passthrough: r.passthrough,
      }
  }
  throw new Error('unreachable')
}

/**
 * Cost per byte of `twice` (the same event at twice the size) over that of `once`, as the median of the
 * ratios of passes run in alternating pairs: on a noisy machine, two medians taken seconds apart differ
 * by more than what is measured here. Infinity when the deadline came first.
 */
function growthOf(once: Payload, twice: Payload, size: number, options: FramerBenchOptions): number {
  const deadline = Date.now() + (options.deadlineSeconds ?? 20) * 1000
  const passes = options.passes ?? 9
  const [a, b] = [cut(once.body, size), cut(twice.body, size)]
  const ratios: number[] = []
  for (let i = 0; i < passes; i++) {
    // The pair's order alternates, so that neither size always runs second.
    const small = i % 2 === 0 ? pass(once, a, options.maxEventBytes, deadline) : undefined
    const large = pass(twice, b, options.maxEventBytes, deadline)
    const r = small ?? pass(once, a, options.maxEventBytes, deadline)
    if (r.bytes < once.body.length || large.bytes < twice.body.length) return Infinity
    if (i >= warmupOf(passes)) ratios.push(large.ns / large.bytes / (r.ns / r.bytes))
  }
  return median(ratios)
}

export async function framerBench(log: (line: string) => void, options: FramerBenchOptions = {}): Promise<Row[]> {
  const rows: Row[] = []
  const payloads: Payload[] = []
  const eventBytes = options.eventBytes ?? EVENT_BYTES
  const sizeLabel = eventBytes % (1024 * 1024) === 0 ? `${eventBytes / 1024 / 1024} MiB` : `${eventBytes / 1024} KiB`
  const doubled: Payload[] = []
  for (const [eolLabel, eol] of [
    ['LF', '\n'],
    ['CRLF', '\r\n'],
  ] as const) {
    for (const [list, size] of [
      [payloads, eventBytes],
      [doubled, eventBytes * 2],
    ] as const) {
      list.push(payload(`anthropic content_block_delta, ${eolLabel}`, anthropicBenchStream(1, 1), 3, 'text', eol, size))
      list.push(payload(`chat data event, ${eolLabel}`, chatBenchStream(1, 1), 1, 'content', eol, size))
    }
  }
  log(
    `framer: one ${sizeLabel} event per stream, maxEventBytes ` +
      `${options.maxEventBytes ?? 'default'}; chunkings ${CHUNKINGS.map(([l]) => l).join(', ')}`,
  )
  let letter = 0
  for (const [index, p] of payloads.entries()) {
    const results: Measure[] = []
    const growth: number[] = []
    for (const [label, size] of CHUNKINGS) {
      const m = measure(p, cut(p.body, size), options)
      results.push(m)
      // The same event at twice the size: cost per byte there over cost per byte here.
      const grows = m.partial === undefined ? growthOf(p, doubled[index]!, size, options) : Infinity
      const cut2 = !Number.isFinite(grows)
      growth.push(grows)
      const bound = m.partial !== undefined ? '≥ ' : ''
      const perPush = m.nsPerByte * size
      log(
        `  ${p.label}, ${label} chunks: ${bound}${fmt(m.nsPerByte, 3)} ns/B (${fmt(perPush, 0)} ns/push), ` +
          `CPU ${bound}${fmt(m.cpuSecondsPerGB, 2)} s/GB` +
          (m.partial !== undefined ? ` (stopped at the deadline after ${(m.partial / 1e6).toFixed(2)} MB)` : '') +
          (m.passthrough ? `; passthrough: ${m.passthrough}` : '') +
          `; twice the size: ${cut2 ? 'stopped at the deadline' : `${fmt(grows)}× per byte`}`,
      )
      rows.push({
        id: label === CHUNKINGS[0][0] ? `7${String.fromCharCode(97 + letter++)}` : '',
        what: label === CHUNKINGS[0][0] ? `${sizeLabel} ${p.label}, ${label} chunks` : `  same, ${label} chunks`,
        value: `${bound}${fmt(m.nsPerByte, 3)} ns/B`,
        baseline: `CPU ${bound}${fmt(m.cpuSecondsPerGB, 2)} s/GB, ${fmt(perPush, 0)} ns/push${m.partial !== undefined ? ' (deadline)' : ''}; 2× size: ${cut2 ? 'deadline' : `${fmt(grows)}× per B`}`,
        result: 'info',
        raw: { ...m, chunkBytes: size, eventBytes: p.body.length, growth: Number.isFinite(grows) ? grows : null },
      })
    }
    const per = results.map((r) => r.nsPerByte)
    const spread = Math.max(...per) / Math.min(...per)
    const partial = results.some((r) => r.partial !== undefined)
    // Time per push as a fixed cost plus a cost per byte, from the smallest and the largest chunks: a
    // framer linear in the bytes has a per-byte cost that does not grow with the chunk size.
    const [small, large] = [CHUNKINGS[0][1], CHUNKINGS[CHUNKINGS.length - 1]![1]]
    const perByte = (per[per.length - 1]! * large - per[0]! * small) / (large - small)
    const fixed = per[0]! * small - perByte * small
    if (!partial)
      rows.push({
        id: '',
        what: '  fit: fixed ns/push + ns/B',
        value: `${fmt(fixed, 0)} + ${fmt(perByte, 3)}`,
        result: 'info',
      })
    rows.push({
      id: '',
      what: '  max/min across chunkings (fixed cost per push)',
      value: `${partial ? '≥ ' : ''}${fmt(spread)}×`,
      result: 'info',
      raw: { spread, partial, fixedNsPerPush: fixed, nsPerByte: perByte },
    })
    const worst = Math.max(...growth)
    rows.push({
      id: '',
      what: '  twice the bytes, cost per byte, worst chunking',
      value: Number.isFinite(worst) ? `${fmt(worst)}×` : 'deadline',
      baseline: `per chunking: ${growth.map((g) => (Number.isFinite(g) ? `${fmt(g)}×` : 'deadline')).join(', ')}`,
      target: '≤ 1.25×',
      result: worst <= 1.25 ? 'PASS' : 'MISS',
      raw: { growth: growth.map((g) => (Number.isFinite(g) ? g : null)) },
    })
  }
  return rows
}
