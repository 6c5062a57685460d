/**
 * `pnpm bench`: measures the performance budget (docs/architecture.md#performance-budget) and prints one
 * table, every target as a ratio measured in this run, with PASS/MISS. Measurements only: nothing here
 * fails a build.
 *
 *   pnpm bench                    everything (~45 s after the build)
 *   pnpm bench -- --only=proc     processor benchmarks only (1–3)
 *   pnpm bench -- --only=e2e      end-to-end benchmarks only (4–6)
 *   pnpm bench -- --only=framer   framer benchmarks only (7)
 *
 * The benchmarks measure the built packages (packages/<name>/dist, what users install), not the sources:
 * under the root tsconfig, tsx maps `@usagewire/*` to packages/<name>/src and compiles them with esbuild's
 * `keepNames`, which gives every closure its own `name` property (≈ +6 KiB heap per open stream and a
 * defineProperty per closure per request). So this entry re-runs itself with TSX_TSCONFIG_PATH pointing
 * at bench/tsconfig.json, which has no `paths`: `@usagewire/*` then resolves through node_modules to dist.
 */
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import type { Row } from './table.js'

const BENCH_TSCONFIG = fileURLToPath(new URL('./tsconfig.json', import.meta.url))

if (process.env.TSX_TSCONFIG_PATH !== BENCH_TSCONFIG) {
  const child = spawnSync(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    {
      stdio: 'inherit',
      env: { ...process.env, TSX_TSCONFIG_PATH: BENCH_TSCONFIG },
    },
  )
  process.exit(child.status ?? 1)
}

const { gatewayBench } = await import('./gateway.bench.js')
const { processorBench } = await import('./processor.bench.js')
const { framerBench } = await import('./framer.bench.js')
const { printTable } = await import('./table.js')

const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7)
const started = Date.now()
const log = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}`)

const core = import.meta.resolve('@usagewire/core')
const express = import.meta.resolve('@usagewire/express')
log(`usagewire bench: node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${os.platform()}`)
log(`measuring ${core.replace(/^.*\/packages\//, 'packages/')} and ${express.replace(/^.*\/packages\//, 'packages/')}`)
if (!core.includes('/dist/') || !express.includes('/dist/'))
  log('WARNING: not the built packages; run `pnpm run build` first')

const rows: Row[] = []
if (only === undefined || only === 'proc') {
  log('processor (in this process)')
  rows.push(...(await processorBench(log)))
}
if (only === undefined || only === 'framer') {
  log('framer: one large event in any chunking (in this process)')
  rows.push(...(await framerBench(log)))
}
if (only === undefined || only === 'e2e') {
  log('end to end (child processes: upstream, bare gateway, usagewire gateway; the load client in this process)')
  rows.push(...(await gatewayBench(log, { seconds: 2, rounds: 3, heapStreams: 500 })))
}
console.log('')
printTable(rows)
const missed = rows.filter((r) => r.result === 'MISS').length
const passed = rows.filter((r) => r.result === 'PASS').length
console.log(`\n${passed} PASS, ${missed} MISS, ${((Date.now() - started) / 1000).toFixed(1)} s`)
