/**
 * Node gateways as real peers (claude-code-router), installed from npm outside the repo and reused when
 * present: `npm install --prefix ~/.cache/usagewire-peers/<name>-<version>` (or under `$USAGEWIRE_PEERS_DIR`),
 * the scope's `@` dropped and its `/` a `-`. Like the Python peers (test/peers/python.ts): a prefix counts as
 * installed once its `.installed` marker names exactly the package asked for, an install is serialized
 * across test workers and processes by a lock directory, and in CI (`CI=true`) a peer that cannot be
 * installed fails its tests with the reason; elsewhere they skip with the reason printed.
 */
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { onFreePort, startChild, type Child } from './child.js'
import { lock, orSkip, PEERS_DIR, run } from './python.js'

export interface NpmPeerSpec {
  /** The npm package name, e.g. `@musistudio/claude-code-router`. */
  name: string
  version: string
}

/**
 * The pinned npm peers. claude-code-router 3.x needs Node ≥ 22; 1.0.73 declares no engines and runs on Node 20
 * (npm warns that a dependency of it, cookie 2.0.2, asks for Node ≥ 22; the router does not need it to serve).
 */
export const NPM_PEERS = {
  claudeCodeRouter: { name: '@musistudio/claude-code-router', version: '1.0.73' },
} satisfies Record<string, NpmPeerSpec>

export interface NpmPeer {
  dir: string
  /** The path of an executable the package installs (`ccr`). */
  bin(name: string): string
  /** The installed package's own directory. */
  packageDir: string
}

/** `npm` variables a package manager's script environment sets (pnpm's own options) stay out of the install. */
function npmEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env))
    if (!/^npm_/i.test(key) || /^npm_config_(registry|userconfig|cache|proxy|https_proxy|noproxy)$/i.test(key))
      env[key] = value
  return env
}

const dirName = (name: string, version: string) => `${name.replace(/^@/, '').replace(/\//g, '-')}-${version}`

/** The prefix `name@version` is installed in, installed first when it is not there yet. */
export async function ensureNpmPeer(name: string, version: string): Promise<NpmPeer> {
  mkdirSync(PEERS_DIR, { recursive: true })
  const dir = join(PEERS_DIR, dirName(name, version))
  const marker = join(dir, '.installed')
  const wanted = `${name}@${version}`
  const peer: NpmPeer = {
    dir,
    bin: (bin) => join(dir, 'node_modules', '.bin', bin),
    packageDir: join(dir, 'node_modules', ...name.split('/')),
  }
  const installed = () => existsSync(marker) && readFileSync(marker, 'utf8').trim() === wanted
  if (installed()) return peer
  const unlock = await lock(`${dir}.lock`)
  try {
    if (installed()) return peer
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    // From inside the prefix, so that no project's .npmrc or workspace applies.
    await run(
      'npm',
      ['install', '--prefix', dir, '--save-exact', '--no-audit', '--no-fund', '--omit=dev', '--loglevel=error', wanted],
      `${dir}.npm.log`,
      dir,
      npmEnvironment(),
    )
    writeFileSync(marker, `${wanted}\n`)
    return peer
  } finally {
    unlock()
  }
}

/** The npm peer, or the reason it is not there (see `orSkip`). */
export const npmPeerOrSkip = (spec: NpmPeerSpec): Promise<NpmPeer | { skip: string }> =>
  orSkip(`${spec.name} ${spec.version}`, () => ensureNpmPeer(spec.name, spec.version))

export interface ClaudeCodeRouterOptions {
  /** Its providers, as its config file names them (`api_base_url` is the whole `…/chat/completions` URL). */
  providers: Array<{ name: string; api_base_url: string; api_key: string; models: string[]; transformer?: unknown }>
  /** `provider,model` per route; `default` at least. */
  router: Record<string, string>
  timeoutMs?: number
}

export interface ClaudeCodeRouter extends Child {
  /** `http://127.0.0.1:<port>`: `/v1/messages`. */
  url: string
  /** Its `APIKEY`: clients send it as `x-api-key` or `Authorization: Bearer`. */
  apiKey: string
}

/**
 * `ccr start` (the service in the foreground) in a fresh HOME with its config file at
 * `$HOME/.claude-code-router/config.json`, its logs off, on 127.0.0.1 and a port the OS just handed out; an
 * environment built from scratch, so nothing of the machine's configuration reaches it. Ready when `GET
 * /health` answers. A watcher in its own process ends it once its parent is gone (a test worker killed
 * outright runs no handler of its own).
 */
export async function startClaudeCodeRouter(
  peer: NpmPeer,
  options: ClaudeCodeRouterOptions,
): Promise<ClaudeCodeRouter> {
  const home = mkdtempSync(join(tmpdir(), 'usagewire-ccr-'))
  const removeHome = () => rmSync(home, { recursive: true, force: true })
  const apiKey = `sk-ccr-${randomBytes(16).toString('hex')}`
  const cli = join(peer.packageDir, 'dist', 'cli.js')
  const guarded = [
    'const parent = process.ppid',
    'setInterval(() => { if (process.ppid !== parent) process.exit(0) }, 500).unref()',
    `process.argv = [process.argv[0], ${JSON.stringify(cli)}, 'start']`,
    `require(${JSON.stringify(cli)})`,
  ].join('\n')
  const launch = async (port: number) => {
    mkdirSync(join(home, '.claude-code-router'), { recursive: true })
    const config = {
      LOG: false,
      HOST: '127.0.0.1',
      PORT: port,
      APIKEY: apiKey,
      API_TIMEOUT_MS: 30_000,
      Providers: options.providers,
      Router: options.router,
    }
    writeFileSync(join(home, '.claude-code-router', 'config.json'), JSON.stringify(config, null, 2))
    const url = `http://127.0.0.1:${port}`
    const child = await startChild({
      name: 'claude-code-router',
      command: process.execPath,
      args: ['-e', guarded],
      cwd: home,
      env: {
        PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
        HOME: home,
        LANG: 'C.UTF-8',
        NO_PROXY: '127.0.0.1,localhost',
        no_proxy: '127.0.0.1,localhost',
      },
      readyUrl: `${url}/health`,
      timeoutMs: options.timeoutMs ?? 30_000,
      fatal: /EADDRINUSE/,
    })
    return { ...child, url, apiKey }
  }
  try {
    const router = await onFreePort(launch)
    return { ...router, stop: () => router.stop().finally(removeHome) }
  } catch (error) {
    removeHome()
    throw error
  }
}
