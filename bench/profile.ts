/**
 * Profiling helper, not part of `pnpm bench`:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/uw-prof --import tsx bench/profile.ts [one|64k] [anthropic|chat|responses]
 *   node --import tsx bench/profile.ts --summary /tmp/uw-prof/<file or directory>
 *
 * The first runs processor passes only (no PassThrough) for a few seconds; the second prints the functions
 * with the most self time, with their file and line, so a hot spot in packages/ can be named.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { createProcessor } from '@usagewire/core'
import { anthropicBenchStream, chatBenchStream, fixedChunks, oneEventChunks, responsesBenchStream } from './streams.js'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}

/** The profile of a file, or of the busiest thread among the .cpuprofile files of a directory. */
function busiest(path: string): { nodes: ProfileNode[] } {
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => join(path, f))
    : [path]
  const busy = (p: { nodes: ProfileNode[] }) =>
    p.nodes.reduce((n, x) => n + (x.callFrame.functionName === '(idle)' ? 0 : (x.hitCount ?? 0)), 0)
  const profiles = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as { nodes: ProfileNode[] })
  return profiles.sort((a, b) => busy(b) - busy(a))[0]!
}

function summary(file: string, top = 25): void {
  const profile = busiest(file)
  const self = new Map<string, number>()
  let total = 0
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0
    total += hits
    const { functionName, url, lineNumber } = node.callFrame
    const where = url.replace(/^file:\/\/\/work\/main\//, '')
    const key = `${functionName || '(anonymous)'}  ${where}:${lineNumber + 1}`
    self.set(key, (self.get(key) ?? 0) + hits)
  }
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, top)
  console.log('self time:')
  for (const [key, hits] of rows) console.log(`${((hits / total) * 100).toFixed(1).padStart(5)} %  ${key}`)

  // Self time of what a function in packages/ calls straight into (Buffer.indexOf and Buffer.compare with
  // their argument checks, JSON.parse, natives) is charged to that function, so a native hot spot names the
  // line of ours that calls it. Time in anything else (node:http, node:net…) is not charged: a write()
  // wrapper is not billed for the socket write it forwards to.
  const transparent = (f: ProfileNode['callFrame']) =>
    (f.url === '' && !f.functionName.startsWith('(')) ||
    /^node:(buffer|internal\/buffer|internal\/validators)$/.test(f.url)
  const parent = new Map<number, ProfileNode>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node)
  const charged = new Map<string, number>()
  let ours = 0
  for (const node of profile.nodes) {
    let at: ProfileNode | undefined = node
    while (at && !at.callFrame.url.includes('/packages/') && transparent(at.callFrame)) at = parent.get(at.id)
    if (!at || !at.callFrame.url.includes('/packages/')) continue
    const key = `${at.callFrame.functionName || '(anonymous)'}  ${at.callFrame.url.replace(/^.*\/packages\//, 'packages/')}`
    charged.set(key, (charged.get(key) ?? 0) + (node.hitCount ?? 0))
    ours += node.hitCount ?? 0
  }
  const idle = profile.nodes
    .filter((n) => n.callFrame.functionName === '(idle)')
    .reduce((n, x) => n + (x.hitCount ?? 0), 0)
  console.log(
    `packages/ (with the natives they call): ${((ours / total) * 100).toFixed(1)} % of samples, ` +
      `${((ours / Math.max(1, total - idle)) * 100).toFixed(1)} % of non-idle samples`,
  )
  console.log('by function in packages/:')
  for (const [key, hits] of [...charged].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
    console.log(`${((hits / total) * 100).toFixed(1).padStart(5)} %  ${key}`)
  }
}

function run(chunking: string, dialect: string): void {
  const build =
    dialect === 'chat' ? chatBenchStream : dialect === 'responses' ? responsesBenchStream : anthropicBenchStream
  const streams = Array.from({ length: 64 }, (_, i) => build(2048, i))
  const chunks = streams.map((s) => (chunking === '64k' ? fixedChunks(s, 64 * 1024) : oneEventChunks(s)))
  const bytes = streams.reduce((n, s) => n + s.bytes, 0)
  const until = Date.now() + 4000
  let passes = 0
  const t = process.hrtime.bigint()
  while (Date.now() < until) {
    for (let s = 0; s < streams.length; s++) {
      const p = createProcessor({ path: streams[s]!.path, contentType: 'text/event-stream' })
      for (const c of chunks[s]!) p.push(c)
      p.end()
    }
    passes++
  }
  const ns = Number(process.hrtime.bigint() - t)
  console.log(`${dialect} ${chunking}: ${((bytes * passes) / ns).toFixed(3)} GB/s over ${passes} passes`)
}

const args = process.argv.slice(2)
if (args[0] === '--summary') summary(args[1]!, Number(args[2] ?? 25))
else run(args[0] ?? 'one', args[1] ?? 'anthropic')
