/**
 * The child processes of the end-to-end and callgrind benchmarks (bench/child.ts, and bench/sidecar.bench.ts
 * forking itself), the IPC they answer, CPU pinning, and the request every client sends.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import os from 'node:os'
import http from 'node:http'
import { fileURLToPath } from 'node:url'

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('..', import.meta.url))

export const BODY = Buffer.from(
  JSON.stringify({
    model: 'claude-sonnet-4-5',
    max_tokens: 1024,
    stream: true,
    messages: [{ role: 'user', content: 'Hi' }],
  }),
)

export interface Proc {
  child: ChildProcess
  port: number
  ready: Record<string, unknown>
  ask<T = unknown>(cmd: string): Promise<T>
  /** Asks the child to exit cleanly (a child under --cpu-prof or valgrind writes its files then). */
  exit(): Promise<void>
}

/**
 * CPU pinning on Linux with taskset (BENCH_PIN=0 turns it off): the gateways get the last CPU to
 * themselves, the upstream and the load client share the others, so the gateway under test is the
 * bottleneck and usagewire's cost shows in its throughput instead of in a scheduler's choices.
 */
export const CPUS = os.cpus().length
export const GATEWAY_CPUS = `${CPUS - 1}`
export const OTHER_CPUS = CPUS === 2 ? '0' : `0-${CPUS - 2}`
export const ALL_CPUS = `0-${CPUS - 1}`
export const PIN = process.env.BENCH_PIN !== '0' && CPUS >= 2 && process.platform === 'linux' && canPin()

/**
 * taskset may be missing, or present but refused (a container without CAP_SYS_NICE, a cpuset that does
 * not hold every CPU): try a call the bench makes, on this process, before relying on it.
 */
function canPin(): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', ALL_CPUS, String(process.pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Pins a process; a refusal (the process is gone, the cpuset changed) only costs the pinning. */
export function pin(pid: number, cpus: string): void {
  if (!PIN) return
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' })
  } catch {
    // a bench that runs unpinned is noisier, not wrong
  }
}

export interface SpawnOptions {
  /** The module to fork with `args`; default bench/child.ts. It answers the same IPC. */
  module?: string
  /** Names its folder of .cpuprofile files under BENCH_CPU_PROF; default its first two args joined by `-`. */
  name?: string
  /** Runs the child under this command, e.g. `valgrind --tool=callgrind …`: it is given node's path and flags. */
  wrapper?: string[]
  /** More flags for node, after the bench's own. */
  nodeFlags?: string[]
  /** The CPUs to pin the child to (PIN permitting); default: the gateways' CPU for gateways, the others for the rest. */
  cpus?: string
}

export async function spawn(args: string[], opts: SpawnOptions = {}): Promise<Proc> {
  // BENCH_CPU_PROF=<dir>: each child writes .cpuprofile files under <dir>/<role> when it exits (bench/profile.ts --summary).
  const dir = process.env.BENCH_CPU_PROF
  const name = opts.name ?? args.slice(0, 2).join('-')
  const prof = dir && !opts.wrapper ? ['--cpu-prof', `--cpu-prof-dir=${dir}/${name}`] : []
  // BENCH_NODE_FLAGS='--trace-deopt …': more node flags for every child (bench/README.md, "Profiling").
  const extra = process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []
  const nodeArgs = ['--import', 'tsx', '--expose-gc', ...(opts.nodeFlags ?? []), ...prof, ...extra]
  const child = fork(opts.module ?? CHILD, args, {
    cwd: ROOT,
    ...(opts.wrapper
      ? { execPath: opts.wrapper[0]!, execArgv: [...opts.wrapper.slice(1), process.execPath, ...nodeArgs] }
      : { execArgv: nodeArgs }),
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
  pin(child.pid!, opts.cpus ?? (args[0] === 'gateway' ? GATEWAY_CPUS : OTHER_CPUS))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  return {
    child,
    port: ready.ready as number,
    ready,
    ask: <T>(cmd: string) =>
      new Promise<T>((resolve, reject) => {
        if (child.exitCode !== null || child.signalCode !== null)
          return reject(new Error(`bench child ${args.join(' ')} has exited`))
        const id = next++
        waiting.set(id, resolve as (reply: unknown) => void)
        child.send({ id, cmd })
      }),
    exit: () => {
      if (child.exitCode === null && child.signalCode === null && child.connected) child.send({ id: -1, cmd: 'exit' })
      return exited
    },
  }
}

export function request(port: number, agent: http.Agent, headers: Record<string, string> = {}): http.ClientRequest {
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
      ...headers,
    },
  })
}
