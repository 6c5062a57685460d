/**
 * A throwaway PostgreSQL cluster for tests: `initdb` into a temporary directory, a server on 127.0.0.1 and
 * a free port, stopped and started at will, removed at the end. The server binaries come from the system
 * (Debian: `apt-get install -y postgresql`, in /usr/lib/postgresql/<version>/bin). PostgreSQL refuses to
 * run as root, so under root the cluster belongs to `nobody` and every command runs with its uid and gid.
 */
import { execFile } from 'node:child_process'
import { accessSync, chownSync, constants, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const TOOLS = ['postgres', 'initdb', 'pg_ctl']

const hasTools = (dir: string): boolean =>
  TOOLS.every((tool) => {
    try {
      accessSync(path.join(dir, tool), constants.X_OK)
      return true
    } catch {
      return false
    }
  })

/** The directory holding postgres, initdb and pg_ctl: on PATH, else the newest /usr/lib/postgresql/<v>/bin. */
export function findPostgres(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) if (dir && hasTools(dir)) return dir
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root)
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a))
  return versions.map((version) => path.join(root, version, 'bin')).find(hasTools)
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

export interface Cluster {
  connectionString: string
  /** Fast shutdown: the server ends every session, as in a restart or a failover. */
  stop(): Promise<void>
  start(): Promise<void>
  destroy(): Promise<void>
}

/** The uid and gid of `nobody` (65534 on Debian), for running the server when the tests run as root. */
async function nobody(): Promise<{ uid: number; gid: number }> {
  try {
    const [uid, gid] = await Promise.all(
      ['-u', '-g'].map(async (flag) => Number((await run('id', [flag, 'nobody'])).stdout.trim())),
    )
    if (Number.isInteger(uid) && Number.isInteger(gid)) return { uid: uid!, gid: gid! }
  } catch {
    // fall through to Debian's numbers
  }
  return { uid: 65534, gid: 65534 }
}

export async function startCluster(bin: string): Promise<Cluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'usagewire-pg-'))
  const data = path.join(dir, 'data')
  const port = await freePort()
  const user = process.getuid?.() === 0 ? await nobody() : undefined
  if (user) chownSync(dir, user.uid, user.gid)
  const options = { cwd: dir, env: { ...process.env, LC_ALL: 'C' }, ...(user ?? {}) }
  const tool = (name: string, args: string[]) => run(path.join(bin, name), args, options)

  await tool('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-locale', '--no-sync'])
  // fsync off (-F): a throwaway cluster; a fast shutdown still writes everything out.
  const start = () =>
    tool('pg_ctl', [
      '-D',
      data,
      '-l',
      path.join(dir, 'server.log'),
      '-w',
      '-t',
      '20',
      '-o',
      `-k ${dir} -h 127.0.0.1 -p ${port} -F`,
      'start',
    ]).then(() => undefined)
  const stop = (mode = 'fast') =>
    tool('pg_ctl', ['-D', data, '-w', '-t', '20', '-m', mode, 'stop']).then(() => undefined)
  await start()
  return {
    connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: () => stop(),
    start,
    async destroy() {
      await stop('immediate').catch(() => undefined)
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
