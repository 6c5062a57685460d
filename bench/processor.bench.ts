/**
 * Processor benchmarks (docs/architecture.md#performance-budget), all in this process:
 *  1. throughput of createProcessor push/end: Anthropic alone against a Node PassThrough fed the same
 *     chunks, interleaved pass by pass so both see the same machine state (1a, 1b); then the OpenAI
 *     dialects against Anthropic per byte, all six corpora interleaved round by round (1c–1f); medians;
 *  2. JSON.parse calls per stream, counted by wrapping JSON.parse during one untimed pass;
 *  3. the share of untouched input chunks handed back as the very same Buffer object.
 */
import { once } from 'node:events'
import { PassThrough } from 'node:stream'
import { createProcessor } from '@usagewire/core'
import {
  anthropicBenchStream,
  bedrockBenchStream,
  chatBenchStream,
  fixedChunks,
  oneEventChunks,
  responsesBenchStream,
  type BenchStream,
} from './streams.js'
import { fmt, gbps, median, type Row } from './table.js'

const KIB64 = 64 * 1024

interface Corpus {
  label: string
  streams: BenchStream[]
  chunks: Buffer[][]
  bytes: number
}

function corpus(label: string, streams: BenchStream[], cut: (s: BenchStream) => Buffer[]): Corpus {
  return { label, streams, chunks: streams.map(cut), bytes: streams.reduce((n, s) => n + s.bytes, 0) }
}

/** One pass of the processor over every stream of the corpus (a fresh processor per stream). */
function processorPass(c: Corpus): number {
  let out = 0
  for (let s = 0; s < c.streams.length; s++) {
    const stream = c.streams[s]!
    const p = createProcessor({ path: stream.path, contentType: stream.contentType })
    const chunks = c.chunks[s]!
    for (let i = 0; i < chunks.length; i++) {
      const bufs = p.push(chunks[i]!)
      for (let j = 0; j < bufs.length; j++) out += bufs[j]!.length
    }
    for (const b of p.end()) out += b.length
  }
  return out
}

/** One pass of a PassThrough per stream: write every chunk, end, read everything until 'end'. */
async function passThroughPass(c: Corpus): Promise<number> {
  let out = 0
  for (const chunks of c.chunks) {
    const pt = new PassThrough()
    pt.on('data', (b: Buffer) => {
      out += b.length
    })
    for (let i = 0; i < chunks.length; i++) pt.write(chunks[i])
    pt.end()
    await once(pt, 'end')
  }
  return out
}

interface Throughput {
  proc: number // GB/s
  pt: number
  ratio: number
}

async function throughput(c: Corpus, passes: number, warmup: number): Promise<Throughput> {
  const procNs: number[] = []
  const ptNs: number[] = []
  for (let i = 0; i < passes + warmup; i++) {
    let t = process.hrtime.bigint()
    const a = processorPass(c)
    const pn = Number(process.hrtime.bigint() - t)
    t = process.hrtime.bigint()
    const b = await passThroughPass(c)
    const tn = Number(process.hrtime.bigint() - t)
    if (a < c.bytes * 0.99 || b !== c.bytes) throw new Error(`${c.label}: bytes out ${a} / ${b}, in ${c.bytes}`)
    if (i >= warmup) {
      procNs.push(pn)
      ptNs.push(tn)
    }
  }
  const proc = gbps(c.bytes, median(procNs))
  const pt = gbps(c.bytes, median(ptNs))
  return { proc, pt, ratio: proc / pt }
}

/**
 * Processor GB/s of several corpora measured in the same rounds (one pass of each per round, medians),
 * so that a ratio between two of them is not a ratio between two moments of a noisy machine.
 */
function interleaved(corpora: Corpus[], passes: number, warmup: number): number[] {
  const ns: number[][] = corpora.map(() => [])
  for (let i = 0; i < passes + warmup; i++) {
    corpora.forEach((c, k) => {
      const t = process.hrtime.bigint()
      const out = processorPass(c)
      const took = Number(process.hrtime.bigint() - t)
      if (out < c.bytes * 0.99) throw new Error(`${c.label}: bytes out ${out}, in ${c.bytes}`)
      if (i >= warmup) ns[k]!.push(took)
    })
  }
  return corpora.map((c, k) => gbps(c.bytes, median(ns[k]!)))
}

/**
 * JSON.parse calls over one untimed pass, per stream; the usage events it must parse, per stream; and
 * which events of the first stream were parsed (by index), to say which one was parsed needlessly.
 */
function parsesPerStream(c: Corpus): { parses: number; usage: number; expected: number; parsed: number[] } {
  const original = JSON.parse
  let calls = 0
  let texts: string[] = []
  JSON.parse = function countingParse(this: unknown, ...args: Parameters<typeof JSON.parse>) {
    calls++
    texts.push(args[0])
    return original.apply(this, args)
  } as typeof JSON.parse
  try {
    processorPass({ ...c, streams: c.streams.slice(0, 1), chunks: c.chunks.slice(0, 1) })
    const first = texts
    texts = []
    calls = 0
    processorPass(c)
    texts = first
  } finally {
    JSON.parse = original
  }
  const s = c.streams[0]!
  const events = s.events.map((e) => e.toString('utf8'))
  const parsed = texts.map((t) => events.findIndex((e) => e.includes(`data: ${t}\n`)))
  // The first event is always parsed (it settles the dialect); it may itself be a usage event.
  const expected = s.usageEvents.length + (s.usageEvents.includes(0) ? 0 : 1)
  return { parses: calls / c.streams.length, usage: s.usageEvents.length, expected, parsed }
}

interface SameBuffer {
  chunks: number
  /** Handed back as the very same Buffer object, alone. */
  same: number
  /** Bytes unchanged, but copied or cut differently (e.g. an event carried over into the next chunk). */
  recut: number
  /** Bytes changed: an event in it was rewritten. */
  changed: number
  /** Usage corrections the processor made (rewritten usage blocks' fields). */
  corrections: number
}

/** Classifies every input chunk by what the processor handed back for it. */
function sameBuffer(c: Corpus): SameBuffer {
  const r: SameBuffer = { chunks: 0, same: 0, recut: 0, changed: 0, corrections: 0 }
  for (let s = 0; s < c.streams.length; s++) {
    const p = createProcessor({ path: c.streams[s]!.path, contentType: c.streams[s]!.contentType })
    const chunks = c.chunks[s]!
    const input = Buffer.concat(chunks)
    const output: Buffer[] = []
    for (const chunk of chunks) {
      const out = p.push(chunk) as Buffer[]
      output.push(...out)
      r.chunks++
      if (out.length === 1 && out[0] === chunk) r.same++
      else if (Buffer.concat(out).equals(chunk)) r.recut++
      else r.changed++
    }
    output.push(...(p.end() as Buffer[]))
    r.corrections += p.result().corrections.length
    // For chunks that were carried over, "changed" only means "cut elsewhere" if the whole body is unchanged.
    if (r.corrections === 0 && Buffer.concat(output).equals(input)) {
      r.recut += r.changed
      r.changed = 0
    }
  }
  return r
}

export interface ProcessorBenchOptions {
  /** Streams per corpus: Anthropic, and each OpenAI dialect. */
  anthropicStreams: number
  openaiStreams: number
  /** Measured passes: Anthropic one event per chunk, Anthropic 64 KiB, the dialect comparison. */
  passes: { a1: number; a64: number; compare: number }
  /** Passes before measuring, for the JIT. */
  warmup: number
}

export const PROCESSOR_FULL: ProcessorBenchOptions = {
  anthropicStreams: 96,
  openaiStreams: 32,
  passes: { a1: 9, a64: 15, compare: 7 },
  warmup: 2,
}

export const PROCESSOR_SMOKE: ProcessorBenchOptions = {
  anthropicStreams: 4,
  openaiStreams: 2,
  passes: { a1: 1, a64: 1, compare: 1 },
  warmup: 1,
}

/** OpenAI Chat and Responses may cost up to this much more per byte than Anthropic. */
const DIALECT_SPREAD = 1.5

export async function processorBench(
  log: (line: string) => void,
  opts: ProcessorBenchOptions = PROCESSOR_FULL,
): Promise<Row[]> {
  const rows: Row[] = []
  const anthropic = Array.from({ length: opts.anthropicStreams }, (_, i) => anthropicBenchStream(2048, i))
  const chat = Array.from({ length: opts.openaiStreams }, (_, i) => chatBenchStream(2048, i))
  const responses = Array.from({ length: opts.openaiStreams }, (_, i) => responsesBenchStream(2048, i))
  const mb = (c: Corpus) => `${(c.bytes / 1e6).toFixed(1)} MB`

  const a1 = corpus('anthropic, 1 event/chunk', anthropic, oneEventChunks)
  const a64 = corpus('anthropic, 64 KiB chunks', anthropic, (s) => fixedChunks(s, KIB64))
  const c64 = corpus('openai-chat, 64 KiB chunks', chat, (s) => fixedChunks(s, KIB64))
  const r64 = corpus('openai-responses, 64 KiB chunks', responses, (s) => fixedChunks(s, KIB64))
  const c1 = corpus('openai-chat, 1 event/chunk', chat, oneEventChunks)
  const r1 = corpus('openai-responses, 1 event/chunk', responses, oneEventChunks)
  const bedrock = Array.from({ length: opts.openaiStreams }, (_, i) => bedrockBenchStream(2048, i))
  const b1 = corpus('bedrock-invoke event stream, 1 frame/chunk', bedrock, oneEventChunks)
  const b64 = corpus('bedrock-invoke event stream, 64 KiB chunks', bedrock, (s) => fixedChunks(s, KIB64))
  log(
    `processor corpora: anthropic ${anthropic.length} streams × ${anthropic[0]!.events.length} events (${mb(a1)}, ` +
      `${fmt(a1.bytes / (anthropic.length * anthropic[0]!.events.length), 1)} B/event); chat ${mb(c64)}; responses ${mb(r64)}`,
  )

  // Anthropic first and alone: what a gateway in front of one provider runs.
  for (const [id, c, passes] of [
    ['1a', a1, opts.passes.a1],
    ['1b', a64, opts.passes.a64],
  ] as const) {
    const t = await throughput(c, passes, opts.warmup)
    log(`  ${c.label}: processor ${fmt(t.proc)} GB/s, PassThrough ${fmt(t.pt)} GB/s`)
    rows.push({
      id,
      what: `processor GB/s, ${c.label}`,
      value: `${fmt(t.proc)} GB/s`,
      baseline: `PassThrough ${fmt(t.pt)} GB/s`,
      ratio: `${fmt(t.ratio)}×`,
      target: '≥ 1 GB/s',
      result: t.proc >= 1 ? 'PASS' : 'MISS',
      raw: { gbps: t.proc, passThroughGbps: t.pt, ratio: t.ratio, bytes: c.bytes, passes },
    })
  }

  // The dialects against each other, per byte, in the same rounds.
  const compared = [a1, c1, r1, b1, a64, c64, r64, b64]
  const rates = interleaved(compared, opts.passes.compare, opts.warmup)
  const rate = new Map(compared.map((c, k) => [c, rates[k]!]))
  log(`  interleaved: ${compared.map((c) => `${c.label} ${fmt(rate.get(c)!)} GB/s`).join('; ')}`)
  for (const [id, c, base] of [
    ['1c', c1, a1],
    ['1d', r1, a1],
    ['1e', c64, a64],
    ['1f', r64, a64],
    ['1g', b1, a1],
    ['1h', b64, a64],
  ] as const) {
    const slower = rate.get(base)! / rate.get(c)! // = ns per byte of c ÷ ns per byte of Anthropic
    rows.push({
      id,
      what: `processor GB/s, ${c.label}`,
      value: `${fmt(rate.get(c)!)} GB/s`,
      baseline: `anthropic ${fmt(rate.get(base)!)} GB/s`,
      ratio: `${fmt(slower)}× per B`,
      target: `≤ ${fmt(DIALECT_SPREAD, 1)}× anthropic`,
      result: slower <= DIALECT_SPREAD ? 'PASS' : 'MISS',
      raw: { gbps: rate.get(c), anthropicGbps: rate.get(base), nsPerByteRatio: slower, bytes: c.bytes },
    })
  }

  for (const [id, c] of [
    ['2a', a1],
    ['2b', c1],
    ['2c', r1],
    ['2d', b1],
  ] as const) {
    const p = parsesPerStream(c)
    const s0 = c.streams[0]!
    log(
      `  ${c.label.split(',')[0]}: JSON.parse on events ${p.parsed.map((i) => `#${i}`).join(', ')} of ${s0.events.length}; ` +
        `usage events ${s0.usageEvents.map((i) => `#${i}`).join(', ')}`,
    )
    rows.push({
      id,
      what: `JSON.parse per stream, ${c.label.split(',')[0]}`,
      value: fmt(p.parses, p.parses % 1 ? 2 : 0),
      baseline: p.expected === p.usage ? `${p.usage} usage events (1st is one)` : `${p.usage} usage event + the 1st`,
      target: `= ${p.expected}`,
      result: p.parses === p.expected ? 'PASS' : 'MISS',
      raw: {
        parsesPerStream: p.parses,
        expected: p.expected,
        usageEvents: p.usage,
        parsedEventsOfFirstStream: p.parsed,
      },
    })
  }

  for (const [id, c, targeted] of [
    ['3a', a1, true],
    ['3b', c1, false],
    ['3c', r1, false],
    ['3d', a64, false],
    ['3e', b1, false],
  ] as const) {
    const s = sameBuffer(c)
    const untouched = s.same + s.recut
    rows.push({
      id,
      what: `same-Buffer rate, ${c.label}`,
      value: `${fmt((s.same / Math.max(1, untouched)) * 100, 2)} %`,
      baseline: `${s.same}/${untouched} untouched chunks, ${s.changed} rewritten`,
      target: targeted ? '100 % of untouched' : undefined,
      result: targeted ? (s.same === untouched && s.chunks > 0 ? 'PASS' : 'MISS') : 'info',
      raw: { ...s },
    })
  }
  return rows
}
