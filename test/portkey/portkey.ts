/**
 * The Portkey gateway (`@portkey-ai/gateway`, installed at the repo root) as a child process, for tests that
 * put it in front of a usagewire gateway. Its server binds every interface on the port it is given and
 * cannot be told otherwise, so the port is one the OS just handed out on 127.0.0.1; if another process takes
 * it first, Portkey exits and the next attempt picks another.
 *
 * The process never outlives the test: `stop()` ends it (SIGTERM, then SIGKILL), the test process's `exit`
 * kills it, and a guard loaded into Portkey's own process makes it exit once its parent is gone (a test
 * worker killed outright runs no handler of its own).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import net from 'node:net'
import { fileURLToPath } from 'node:url'

export interface Portkey {
  /** `http://127.0.0.1:<port>`: the OpenAI-compatible API is under `/v1`. */
  url: string
  /** The end of what the process wrote to stdout and stderr, for failure messages. */
  output(): string
  stop(): Promise<void>
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** Exits the process it is loaded into when the process that spawned it goes away (it is re-parented). */
const ORPHAN_GUARD =
  'data:text/javascript,' +
  encodeURIComponent(
    'const parent = process.ppid; setInterval(() => { if (process.ppid !== parent) process.exit(0) }, 500).unref()',
  )

/** The script Portkey's `bin` runs; throws when the package is not installed. */
export function portkeyEntry(): string {
  return createRequire(import.meta.url).resolve('@portkey-ai/gateway/build/start-server.js')
}

async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

const exited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null

async function end(child: ChildProcess): Promise<void> {
  if (exited(child)) return
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000)
  await gone
  clearTimeout(timer)
}

/** Starts Portkey headless and resolves once it answers `GET /`; rejects with the reason (and its output). */
export async function startPortkey({ timeoutMs = 15_000, attempts = 3 } = {}): Promise<Portkey> {
  const entry = portkeyEntry()
  let lastError: Error | undefined
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      return await launch(entry, await freePort(), timeoutMs)
    } catch (error) {
      lastError = error as Error
      if (!/EADDRINUSE/.test(lastError.message)) break
    }
  }
  throw lastError!
}

async function launch(entry: string, port: number, timeoutMs: number): Promise<Portkey> {
  const child = spawn(process.execPath, ['--import', ORPHAN_GUARD, entry, `--port=${port}`, '--headless'], {
    cwd: ROOT,
    // Loopback custom hosts are trusted by default; spelled out so an inherited setting cannot change it.
    env: { ...process.env, TRUSTED_CUSTOM_HOSTS: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let log = ''
  const keep = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-8_000))
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  let spawnError: Error | undefined
  child.once('error', (error) => (spawnError = error))
  const onExit = () => child.kill('SIGKILL')
  process.once('exit', onExit)
  const stop = async () => {
    process.off('exit', onExit)
    await end(child)
  }

  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (spawnError) {
      await stop()
      throw new Error(`Portkey could not be spawned: ${spawnError.message}`)
    }
    if (exited(child)) {
      process.off('exit', onExit)
      throw new Error(`Portkey exited (code ${child.exitCode}, signal ${child.signalCode}) before answering:\n${log}`)
    }
    // A failed listen is logged as an unhandled exception and does not end the process.
    if (log.includes('EADDRINUSE')) {
      await stop()
      throw new Error(`Portkey could not listen on port ${port} (EADDRINUSE):\n${log}`)
    }
    try {
      const res = await fetch(`${url}/`, { signal: AbortSignal.timeout(1_000) })
      if (res.ok && (await res.text()).includes('AI Gateway')) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`Portkey did not answer GET ${url}/ within ${timeoutMs} ms:\n${log}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { url, output: () => log, stop }
}
