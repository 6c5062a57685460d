/**
 * `pnpm bench`: measures the performance budget (docs/architecture.md#performance-budget) and prints one
 * table, every target as a ratio or a count measured in this run, with PASS/MISS. A MISS never fails the
 * run: the exit code is non-zero only when a benchmark throws or one of its own correctness checks fails
 * (a bad response, usagewire records ≠ responses), because then its figures measure something broken.
 *
 *   pnpm bench                       everything (~2 min after the build, ~80 s of it under valgrind)
 *   pnpm bench -- --smoke            every benchmark at toy sizes, no valgrind (~8 s): the bench still runs
 *   pnpm bench -- --only=proc        processor benchmarks only (1–3)
 *   pnpm bench -- --only=framer      framer benchmarks only (7)
 *   pnpm bench -- --only=sinks       metrics sinks only (9)
 *   pnpm bench -- --only=e2e         end-to-end benchmarks only (4–6)
 *   pnpm bench -- --only=callgrind   instructions per response under callgrind only (8)
 *   pnpm bench -- --only=sidecar     the sidecar (@usagewire/proxy) against the same listeners without usagewire only (10)
 *
 * Results go to bench/results/: latest.md and latest.json for a full run, latest-<only>.* for --only,
 * smoke.* for --smoke (bench/README.md, "Reading the results").
 *
 * The benchmarks measure the built packages (packages/<name>/dist, what users install), not the sources:
 * under the root tsconfig, tsx maps `@usagewire/*` to packages/<name>/src and compiles them with esbuild's
 * `keepNames`, which gives every closure its own `name` property (≈ +6 KiB heap per open stream and a
 * defineProperty per closure per request). So this entry re-runs itself with TSX_TSCONFIG_PATH pointing
 * at bench/tsconfig.json, which has no `paths`: `@usagewire/*` then resolves through node_modules to dist.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
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

const { gatewayBench, GATEWAY_FULL, GATEWAY_SMOKE } = await import('./gateway.bench.js')
const { processorBench, PROCESSOR_FULL, PROCESSOR_SMOKE } = await import('./processor.bench.js')
const { framerBench, FRAMER_SMOKE } = await import('./framer.bench.js')
const { callgrindBench, CALLGRIND_E2E, CALLGRIND_FULL, CALLGRIND_SMOKE, RESULTS, valgrindMissing } =
  await import('./callgrind.bench.js')
const { sinksBench, SINKS_FULL, SINKS_SMOKE } = await import('./sinks.bench.js')
const { sidecarBench, SIDECAR_FULL, SIDECAR_SMOKE } = await import('./sidecar.bench.js')
const { formatTable } = await import('./table.js')

const SECTIONS = ['proc', 'framer', 'sinks', 'e2e', 'callgrind', 'sidecar'] as const
type Section = (typeof SECTIONS)[number]

// pnpm passes a literal `--` through on some versions: read flags wherever they are.
const args = process.argv.slice(2).filter((a) => a !== '--')
const smoke = args.includes('--smoke')
const only = args.find((a) => a.startsWith('--only='))?.slice(7)
const unknown = args.filter((a) => a !== '--smoke' && !a.startsWith('--only='))
if (unknown.length > 0 || (only !== undefined && !SECTIONS.includes(only as Section))) {
  console.error(`usage: pnpm bench [-- --smoke] [--only=${SECTIONS.join('|')}]`)
  process.exit(2)
}

const started = Date.now()
const log = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}`)

const cpus = os.cpus()
const machine = {
  node: process.version,
  cpu: cpus[0]?.model.trim() ?? 'unknown CPU',
  cpus: cpus.length,
  os: `${os.type()} ${os.release()} ${os.arch()}`,
  date: new Date().toISOString(),
}
const machineLine = `node ${machine.node}, ${machine.cpus} × ${machine.cpu}, ${machine.os}, ${machine.date}`
const mode = smoke ? 'smoke' : only ? `only ${only}` : 'full'

const core = import.meta.resolve('@usagewire/core')
const express = import.meta.resolve('@usagewire/express')
log(`usagewire bench (${mode}): ${machineLine}`)
log(`measuring ${core.replace(/^.*\/packages\//, 'packages/')} and ${express.replace(/^.*\/packages\//, 'packages/')}`)
if (!core.includes('/dist/') || !express.includes('/dist/'))
  log('WARNING: not the built packages; run `pnpm run build` first')

const rows: Row[] = []
const errors: string[] = []

async function section(name: Section, title: string, run: () => Promise<Row[]>): Promise<void> {
  if (only !== undefined && only !== name) return
  log(title)
  try {
    rows.push(...(await run()))
  } catch (e) {
    // The other sections still run: one broken benchmark should not hide the figures of the rest.
    const message = e instanceof Error ? (e.stack ?? e.message) : String(e)
    log(`  FAILED: ${message}`)
    errors.push(`${name}: ${e instanceof Error ? e.message : String(e)}`)
  }
}

await section('proc', 'processor (in this process)', () =>
  processorBench(log, smoke ? PROCESSOR_SMOKE : PROCESSOR_FULL),
)
await section('framer', 'framer: one large event in any chunking (in this process)', () =>
  framerBench(log, smoke ? FRAMER_SMOKE : {}),
)
await section('sinks', 'metrics sinks: CPU per record (in this process)', () =>
  sinksBench(log, smoke ? SINKS_SMOKE : SINKS_FULL),
)
await section(
  'e2e',
  'end to end (child processes: upstream, bare, usagewire and calibration gateways; the load client in this process)',
  () => gatewayBench(log, smoke ? GATEWAY_SMOKE : GATEWAY_FULL),
)
await section('callgrind', 'instructions per response: the gateway process under callgrind', async () => {
  if (smoke) return callgrindBench(log, CALLGRIND_SMOKE)
  const missing = valgrindMissing()
  if (missing === undefined) {
    // BENCH_CALLGRIND_ROW=8 or 8b counts that row alone (bench/README.md, row 8).
    const row = process.env.BENCH_CALLGRIND_ROW
    return [
      ...(row === '8b' ? [] : await callgrindBench(log, CALLGRIND_FULL)),
      ...(row === '8' ? [] : await callgrindBench(log, CALLGRIND_E2E)),
    ]
  }
  log(`  skipped: ${missing}`)
  return [{ id: '8', what: 'gateway instructions per response', value: 'skipped', baseline: missing, result: 'info' }]
})
await section(
  'sidecar',
  'sidecar (child processes: provider, gateways, sidecars; the load client in this process)',
  () => sidecarBench(log, smoke ? SIDECAR_SMOKE : SIDECAR_FULL),
)

const seconds = (Date.now() - started) / 1000
const table = formatTable(rows)
const passed = rows.filter((r) => r.result === 'PASS').length
const missed = rows.filter((r) => r.result === 'MISS').length
const failures = [...rows.filter((r) => r.check).map((r) => `${r.id || 'row'}: ${r.check}`), ...errors]
const summary = `${passed} PASS, ${missed} MISS, ${failures.length} failed, ${seconds.toFixed(1)} s`
console.log(`\n${table}\n`)
for (const f of failures) console.log(`FAILED ${f}`)
console.log(summary)
if (smoke) console.log('smoke run: toy sizes, so the figures mean nothing; only a failure above counts')

const name = smoke ? 'smoke' : only ? `latest-${only}` : 'latest'
mkdirSync(RESULTS, { recursive: true })
writeFileSync(
  `${RESULTS}${name}.md`,
  [
    `# usagewire bench (${mode})`,
    '',
    `${machineLine}; ${core.includes('/dist/') ? 'packages/*/dist' : 'packages/*/src (not built)'}`,
    '',
    '```',
    table,
    '```',
    '',
    ...failures.map((f) => `FAILED ${f}  `),
    summary,
    '',
  ].join('\n'),
)
let group = ''
writeFileSync(
  `${RESULTS}${name}.json`,
  JSON.stringify(
    {
      mode,
      machine,
      seconds,
      passed,
      missed,
      failures,
      rows: rows.map((r) => {
        if (r.id) group = r.id
        return {
          id: r.id,
          group,
          measurement: r.what.trim(),
          value: r.value,
          baseline: r.baseline ?? null,
          ratio: r.ratio ?? null,
          target: r.target ?? null,
          result: r.result,
          check: r.check ?? null,
          raw: r.raw ?? null,
        }
      }),
    },
    null,
    2,
  ) + '\n',
)
log(`results: bench/results/${name}.md, bench/results/${name}.json`)
process.exit(failures.length > 0 ? 1 : 0)
