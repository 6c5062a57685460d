/**
 * Code comments cite the repo's own docs/ pages: every citation names a page that exists and, where it
 * names an anchor, a heading (or row anchor) of that page.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

function files(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue
    const path = join(dir, name)
    if (statSync(path).isDirectory()) files(path, out)
    else if (/\.(ts|md)$/.test(name)) out.push(path)
  }
  return out
}

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens. */
const slug = (heading: string): string =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-')

function anchors(page: string): Set<string> {
  const text = readFileSync(page, 'utf8')
  const found = new Set<string>()
  for (const match of text.matchAll(/^#{1,6} (.+)$/gm)) found.add(slug(match[1]!))
  for (const match of text.matchAll(/(?:id|name)="([^"]+)"/g)) found.add(match[1]!)
  return found
}

describe('docs citations', () => {
  const sources = ['packages', 'test', 'examples', 'bench', 'docs'].flatMap((dir) => files(join(ROOT, dir)))
  const citations = sources.flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(/(?<![\w/.`-])docs\/([\w/.-]+\.md)(?:#([\w-]+))?/g)].map((m) => ({
      file: relative(ROOT, file),
      page: m[1]!,
      anchor: m[2],
    })),
  )

  it('are many, and each names a page and anchor that exist', () => {
    expect(citations.length).toBeGreaterThan(20)
    const broken = citations.filter(({ page, anchor }) => {
      const path = join(ROOT, 'docs', page)
      if (!existsSync(path)) return true
      return anchor !== undefined && !anchors(path).has(anchor)
    })
    expect(broken).toEqual([])
  })

  it('no file cites documents outside the repo', () => {
    const outside = sources
      .filter((file) => !file.includes(`${join(ROOT, 'docs')}`))
      .filter((file) => /\b(WIRE|PEERS|DESIGN)\.md\b|\/work\/shared/.test(readFileSync(file, 'utf8')))
      .map((file) => relative(ROOT, file))
    expect(outside).toEqual([])
  })
})
