/**
 * The spill file: where records wait while the database is away (docs/ledger.md#when-the-database-is-away).
 * One JSON line per record, appended and fsync'd a batch at a time. To replay, the file is first renamed
 * aside (`<file>.replay-<time>-<pid>-<n>`), new spills go to a fresh file, and a renamed file is deleted
 * only once every line of it is in the database: a crash at any point leaves each record in a file that
 * the next start replays, and a replay twice is harmless because inserts skip ids already stored.
 */
import { createReadStream } from 'node:fs'
import { appendFile, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { createInterface } from 'node:readline'
import type { Entry } from './row.js'

export interface SpillFile {
  readonly path: string
  /** Appends the entries, one line each, and fsyncs them; resolves once they are on disk. */
  append(entries: readonly Entry[]): Promise<void>
  /** Renames what was spilled so far aside and lists every file waiting for replay, oldest first. */
  takeForReplay(): Promise<string[]>
  /** Appends lines the ledger cannot store (unreadable, or refused by the database) to `<file>.rejected`. */
  reject(lines: readonly string[]): Promise<void>
  close(): Promise<void>
}

const isMissing = (error: unknown): boolean => (error as NodeJS.ErrnoException)?.code === 'ENOENT'

export function spillFile(file: string): SpillFile {
  const resolved = path.resolve(file)
  const dir = path.dirname(resolved)
  const prefix = `${path.basename(resolved)}.replay-`
  let handle: FileHandle | undefined
  let rotations = 0
  // Every file operation runs in turn: a rename never happens between an append's write and its fsync.
  let tail: Promise<unknown> = Promise.resolve()
  const inTurn = <T>(task: () => Promise<T>): Promise<T> => {
    const result = tail.then(task, task)
    tail = result.catch(() => undefined)
    return result
  }

  /** Opens for appending; a last line cut by a crash is ended first, so it never swallows the next record. */
  async function opened(): Promise<FileHandle> {
    if (handle) return handle
    const fresh = await open(resolved, 'a+')
    try {
      const { size } = await fresh.stat()
      if (size > 0) {
        const last = Buffer.alloc(1)
        await fresh.read(last, 0, 1, size - 1)
        if (last[0] !== 0x0a) await fresh.appendFile('\n')
      }
    } catch (error) {
      await fresh.close().catch(() => undefined)
      throw error
    }
    handle = fresh
    return fresh
  }

  async function closeHandle(): Promise<void> {
    const current = handle
    handle = undefined
    await current?.close()
  }

  return {
    path: resolved,
    append: (entries) =>
      inTurn(async () => {
        if (entries.length === 0) return
        const fd = await opened()
        try {
          await fd.appendFile(entries.map((entry) => JSON.stringify(entry)).join('\n') + '\n')
          await fd.sync()
        } catch (error) {
          await closeHandle().catch(() => undefined)
          throw error
        }
      }),
    takeForReplay: () =>
      inTurn(async () => {
        await closeHandle()
        try {
          if ((await stat(resolved)).size > 0) {
            const aside = path.join(
              dir,
              `${prefix}${Date.now()}-${process.pid}-${String(rotations++).padStart(6, '0')}`,
            )
            await rename(resolved, aside)
            await syncDir(dir)
          }
        } catch (error) {
          if (!isMissing(error)) throw error
        }
        const names = (await readdir(dir)).filter((name) => name.startsWith(prefix)).sort()
        return names.map((name) => path.join(dir, name))
      }),
    reject: (lines) => inTurn(() => appendFile(`${resolved}.rejected`, lines.map((line) => line + '\n').join(''))),
    close: () => inTurn(closeHandle),
  }
}

/** Makes a rename durable; a file system that cannot fsync a directory still renamed the file. */
async function syncDir(dir: string): Promise<void> {
  let fd: FileHandle | undefined
  try {
    fd = await open(dir, 'r')
    await fd.sync()
  } catch {
    // Best effort: the rename itself is atomic either way.
  } finally {
    await fd?.close().catch(() => undefined)
  }
}

/** Reads a spill file in batches; a line that is not a record goes to `bad`. */
export async function* readSpilled(
  file: string,
  batchSize: number,
  bad: (line: string) => void,
): AsyncGenerator<Entry[]> {
  const input = createReadStream(file)
  const lines = createInterface({ input, crlfDelay: Infinity })
  let batch: Entry[] = []
  try {
    for await (const line of lines) {
      if (line.trim() === '') continue
      let entry: Entry | undefined
      try {
        entry = JSON.parse(line) as Entry
      } catch {
        entry = undefined
      }
      if (!entry || typeof entry.at !== 'string' || typeof entry.record?.id !== 'string') {
        bad(line)
        continue
      }
      batch.push(entry)
      if (batch.length >= batchSize) {
        yield batch
        batch = []
      }
    }
    if (batch.length > 0) yield batch
  } finally {
    lines.close()
    input.destroy()
  }
}

export const removeReplayed = (file: string): Promise<void> =>
  unlink(file).catch((error: unknown) => {
    if (!isMissing(error)) throw error
  })
