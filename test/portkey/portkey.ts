/**
 * The Portkey gateway (`@portkey-ai/gateway`, installed at the repo root) as a child process, for tests that
 * put it in front of a usagewire gateway. Its server binds every interface on the port it is given and
 * cannot be told otherwise, so the port is one the OS just handed out on 127.0.0.1; if another process takes
 * it first, Portkey exits and the next attempt picks another.
 *
 * The process never outlives the test: `stop()` ends it, the test process's `exit` kills it
 * (test/peers/child.ts), and a guard loaded into Portkey's own process makes it exit once its parent is gone
 * (a test worker killed outright runs no handler of its own).
 */
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { onFreePort, startChild, type Child } from '../peers/child.js'

export interface Portkey extends Child {
  /** `http://127.0.0.1:<port>`: the OpenAI-compatible API is under `/v1`. */
  url: string
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

/** Starts Portkey headless and resolves once it answers `GET /`; rejects with the reason (and its output). */
export async function startPortkey({ timeoutMs = 15_000, attempts = 3 } = {}): Promise<Portkey> {
  const entry = portkeyEntry()
  return onFreePort(async (port) => {
    const url = `http://127.0.0.1:${port}`
    const child = await startChild({
      name: 'Portkey',
      command: process.execPath,
      args: ['--import', ORPHAN_GUARD, entry, `--port=${port}`, '--headless'],
      cwd: ROOT,
      // Loopback custom hosts are trusted by default; spelled out so an inherited setting cannot change it.
      env: { ...process.env, TRUSTED_CUSTOM_HOSTS: '127.0.0.1' },
      readyUrl: `${url}/`,
      readyBody: (body) => body.includes('AI Gateway'),
      timeoutMs,
      // A failed listen is logged as an unhandled exception and does not end the process.
      fatal: /EADDRINUSE/,
    })
    return { url, ...child }
  }, attempts)
}
