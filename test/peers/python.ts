/**
 * Python gateways as real peers (LiteLLM, Headroom), installed from PyPI into venvs outside the repo and
 * reused when present: `~/.cache/usagewire-peers/<name>-<version>` (or `$USAGEWIRE_PEERS_DIR`). A venv
 * counts as installed once its `.installed` marker names exactly the packages asked for; an install is
 * serialized across test workers and processes by a lock directory.
 *
 * In CI (`CI=true`) a peer that cannot be installed fails its tests with the reason; elsewhere they
 * skip with the reason printed.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

export interface PeerSpec {
  name: string
  version: string
  /** pip requirement specifiers, e.g. `litellm[proxy]==1.83.10`. */
  packages: readonly string[]
}

/** The pinned peers the seeds name, and the newest that install on this index. */
export const PEERS = {
  litellm: { name: 'litellm', version: '1.83.10', packages: ['litellm[proxy]==1.83.10', 'prometheus_client'] },
  litellmNewest: { name: 'litellm', version: '1.108.7', packages: ['litellm[proxy]==1.108.7', 'prometheus_client'] },
  headroom: { name: 'headroom', version: '0.27.0', packages: ['headroom-ai[proxy,bedrock]==0.27.0'] },
  headroom028: { name: 'headroom', version: '0.28.0', packages: ['headroom-ai[proxy,bedrock]==0.28.0'] },
  headroom039: { name: 'headroom', version: '0.39.0', packages: ['headroom-ai[proxy,bedrock]==0.39.0'] },
  headroomNewest: { name: 'headroom', version: '0.42.0', packages: ['headroom-ai[proxy,bedrock]==0.42.0'] },
} satisfies Record<string, PeerSpec>

export const PEERS_DIR = process.env.USAGEWIRE_PEERS_DIR ?? join(homedir(), '.cache', 'usagewire-peers')

export interface Peer {
  dir: string
  /** The path of an executable in the venv (`litellm`, `headroom`, `python`). */
  bin(name: string): string
}

/** Runs `command` to its end, its output written to `log`; rejects with the output's end when it fails. */
export function run(
  command: string,
  args: string[],
  log: string,
  cwd?: string,
  env?: NodeJS.ProcessEnv,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(cwd && { cwd }), ...(env && { env }) })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    child.on('error', reject)
    child.on('close', (code) => {
      writeFileSync(log, output)
      if (code === 0) resolve()
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${output.slice(-2000)}`))
    })
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Takes the lock directory, waiting for another installer (a stale lock, over 20 minutes old, is broken). */
export async function lock(path: string): Promise<() => void> {
  for (;;) {
    try {
      mkdirSync(path)
      return () => rmSync(path, { recursive: true, force: true })
    } catch {
      try {
        if (Date.now() - statSync(path).mtimeMs > 20 * 60_000) rmSync(path, { recursive: true, force: true })
      } catch {
        // Gone meanwhile: try again.
      }
      await sleep(500)
    }
  }
}

const python = (): string => process.env.USAGEWIRE_PYTHON ?? 'python3'

/** The venv of `spec`, installed first when it is not there yet (minutes, the first time). */
export async function ensurePeer(spec: PeerSpec): Promise<Peer> {
  mkdirSync(PEERS_DIR, { recursive: true })
  const dir = join(PEERS_DIR, `${spec.name}-${spec.version}`)
  const marker = join(dir, '.installed')
  const wanted = spec.packages.join(' ')
  const peer: Peer = { dir, bin: (name) => join(dir, 'bin', name) }
  const installed = () => existsSync(marker) && readFileSync(marker, 'utf8').trim() === wanted
  if (installed()) return peer
  const unlock = await lock(`${dir}.lock`)
  try {
    if (installed()) return peer
    rmSync(dir, { recursive: true, force: true })
    await run(python(), ['-m', 'venv', dir], `${dir}.venv.log`)
    await run(peer.bin('pip'), ['install', '--disable-pip-version-check', '-q', ...spec.packages], `${dir}.pip.log`)
    writeFileSync(marker, `${wanted}\n`)
    return peer
  } finally {
    unlock()
  }
}

/**
 * What `ensure` installs, or the reason it could not: in CI a missing peer is an error (thrown);
 * elsewhere the caller skips its tests and prints the reason.
 */
export async function orSkip<T>(what: string, ensure: () => Promise<T>): Promise<T | { skip: string }> {
  try {
    return await ensure()
  } catch (error) {
    const reason = `${what} could not be installed: ${(error as Error).message}`
    if (process.env.CI === 'true') throw new Error(`CI=true: ${reason}`)
    console.warn(`skipping: ${reason}`)
    return { skip: reason }
  }
}

/** The Python peer, or the reason it is not there (see {@link orSkip}). */
export const peerOrSkip = (spec: PeerSpec): Promise<Peer | { skip: string }> =>
  orSkip(`${spec.name} ${spec.version}`, () => ensurePeer(spec))
