/**
 * A real peer (LiteLLM, Headroom, Portkey) as a child process: spawned, polled until it serves, its output kept
 * for error messages. It never outlives the test: `stop()` ends it (SIGTERM, then SIGKILL after 5 s), and the
 * test process's `exit` kills every child still running. A test worker killed outright runs no handler of its
 * own: a peer that must not outlive it watches its parent itself (test/peers/litellm.ts, test/portkey/portkey.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'

export interface ChildSpec {
  /** What error messages call it. */
  name: string
  command: string
  args: string[]
  cwd: string
  env: NodeJS.ProcessEnv
  /** Runs it in a process group of its own, ended as a whole (a launcher and the server it starts). */
  group?: boolean
  /** It serves once `GET readyUrl` answers 2xx, with a body `readyBody` accepts when given. */
  readyUrl: string
  readyBody?: (body: string) => boolean
  timeoutMs: number
  /** Output that means the start failed although the process runs on. */
  fatal?: RegExp
}

export interface Child {
  /** From the spawn to the first ready answer. */
  startMs: number
  /** The end of what the process wrote to stdout and stderr. */
  output(): string
  stop(): Promise<void>
}

/** How much of a child's output is kept. */
const KEPT = 20_000

/** The children still running, each with its kill. */
const live = new Map<ChildProcess, (signal: NodeJS.Signals) => void>()

process.once('exit', () => {
  for (const kill of live.values()) kill('SIGKILL')
})

const exited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null

/** True when `GET url` answers 2xx within a second and its body passes `check`. */
async function answers(url: string, check: (body: string) => boolean = () => true): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1_000) })
    const body = await res.text()
    return res.ok && check(body)
  } catch {
    return false
  }
}

/** Spawns `spec` and resolves once it serves; rejects with the reason and its output, the process ended. */
export async function startChild(spec: ChildSpec): Promise<Child> {
  const started = Date.now()
  const child = spawn(spec.command, spec.args, {
    cwd: spec.cwd,
    env: spec.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: spec.group ?? false,
  })
  const kill = (signal: NodeJS.Signals) => {
    try {
      if (spec.group) process.kill(-child.pid!, signal)
      else child.kill(signal)
    } catch {
      // Already gone.
    }
  }
  live.set(child, kill)
  child.once('exit', () => live.delete(child))
  let log = ''
  const keep = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-KEPT))
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  let spawnError: Error | undefined
  child.once('error', (error) => {
    spawnError = error
    live.delete(child)
  })
  const stop = async () => {
    if (spawnError || exited(child)) return
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    kill('SIGTERM')
    const timer = setTimeout(() => kill('SIGKILL'), 5_000)
    await gone
    clearTimeout(timer)
  }

  const deadline = Date.now() + spec.timeoutMs
  for (;;) {
    if (spawnError) throw new Error(`${spec.name} could not be spawned: ${spawnError.message}`)
    if (exited(child))
      throw new Error(
        `${spec.name} exited (code ${child.exitCode}, signal ${child.signalCode}) before answering:\n${log}`,
      )
    const fatal = spec.fatal?.exec(log)
    if (fatal) {
      await stop()
      throw new Error(`${spec.name} failed to start (${fatal[0]}):\n${log}`)
    }
    if (await answers(spec.readyUrl, spec.readyBody)) break
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`${spec.name} did not answer GET ${spec.readyUrl} within ${spec.timeoutMs} ms:\n${log}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return { startMs: Date.now() - started, output: () => log, stop }
}

/** A port the OS says is free on 127.0.0.1 now, for a process that takes a port number, not 0. */
export async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** What a start that lost its port to another process fails with, in Node's and Python's words. */
const PORT_TAKEN = /address already in use|EADDRINUSE|Errno 98/i

/**
 * `start` on a free port; another process may take that port before the child binds it, and then the next
 * attempt picks another, up to `attempts` in all.
 */
export async function onFreePort<T>(start: (port: number) => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(await freePort())
    } catch (error) {
      if (attempt >= attempts || !PORT_TAKEN.test((error as Error).message)) throw error
    }
  }
}
