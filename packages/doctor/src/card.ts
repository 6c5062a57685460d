/**
 * The report card as text for a terminal: one table per client format, ✓/✗ per reader, the truth and what
 * the reader reports side by side, the broken rules under it. With usagewire, one table with both: before →
 * after per row. Groups whose every reader is right and agrees fold into one line.
 */
import type { CardRow, DoctorCard, FormatCard, PhaseCard, RuleReport } from './doctor.js'
import { FIELDS, type ClientFormat, type Counts } from './readers.js'

const FORMAT_NAMES: Record<ClientFormat, string> = {
  anthropic: 'Anthropic Messages',
  'openai-chat': 'OpenAI Chat Completions',
  'openai-responses': 'OpenAI Responses',
}

const LEGEND: Record<ClientFormat, string> = {
  anthropic: 'input / cache read / cache write / output (input excludes the cache)',
  'openai-chat': 'prompt / cached / completion / reasoning / total (prompt includes the cache)',
  'openai-responses': 'input / cached / output / reasoning / total (input includes the cache)',
}

/** What the error scenario owes the client: a 4xx the SDKs do not retry (not a 408, 409, 429), no usage. */
const ERROR_TRUTH = 'HTTP 4xx not retried, no usage'

const mark = (ok: boolean | undefined) => (ok === undefined ? ' ' : ok ? '✓' : '✗')

/** Counts as `a/b/c/d`: a field not compared shows `·`, one not reported `—`. */
function numbers(format: ClientFormat, counts: Counts | undefined, compared?: string[]): string {
  return FIELDS[format]
    .map((field) => (compared && !compared.includes(field) ? '·' : String(counts?.[field] ?? '—')))
    .join('/')
}

function truthText(format: ClientFormat, row: CardRow): string {
  if (row.scenario === 'error') return ERROR_TRUTH
  if (!row.expected) return '—'
  // Nothing is due: a stream that did not ask for usage, or an OpenAI stream the client left.
  if (!row.reported && format === 'openai-chat' && row.mode === 'stream') return 'none asked for'
  if (!row.reported && row.scenario === 'abort' && format !== 'anthropic') return 'none before the end'
  return numbers(format, row.expected, row.fields)
}

function reportedText(format: ClientFormat, row: CardRow | undefined): string {
  if (!row) return ''
  if (row.scenario === 'error')
    return row.reported ? `${row.error}, usage ${numbers(format, row.reported)}` : (row.error ?? '')
  if (row.error) return row.reported ? `${numbers(format, row.reported)} (${row.error})` : row.error
  if (!row.reported) return 'no usage'
  return numbers(format, row.reported)
}

/** Plain-text columns, padded to the widest cell (by code points, so ✓ and – count once). */
function table(rows: string[][], indent = '  '): string[] {
  const width = (s: string) => [...s].length
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, width(cell))))
  return rows.map((row) =>
    (
      indent +
      row.map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat(widths[i]! - width(cell)))).join('  ')
    ).trimEnd(),
  )
}

const keyOf = (row: CardRow) => `${row.scenario}\u0000${row.mode}\u0000${row.reader}`
const groupOf = (row: CardRow) => `${row.scenario}\u0000${row.mode}`

function rulesText(title: string, rules: RuleReport[], max = 4): string[] {
  if (rules.length === 0) return []
  const lines = [`  ${title}`]
  for (const rule of rules) {
    const n = rule.peerBugs.length
    const rows = n > 0 ? ` (docs/peer-bugs.md row${n > 1 ? 's' : ''} ${rule.peerBugs.join(', ')})` : ''
    lines.push(`   • ${rule.title}${rows}`)
    for (const detail of rule.details.slice(0, max)) lines.push(`       ${detail}`)
    if (rule.details.length > max) lines.push(`       … and ${rule.details.length - max} more`)
  }
  return lines
}

function header(format: FormatCard, wrong: number, total: number, extra = ''): string[] {
  const upstream =
    format.upstream.length > 0 ? `the gateway called ${format.upstream.join(', ')}` : 'the provider saw no call'
  const verdict = wrong === 0 ? `all ${total} rows right` : `${wrong} of ${total} rows wrong`
  return [
    `${FORMAT_NAMES[format.format]} · model ${format.model} · ${upstream} · ${verdict}${extra}`,
    `  counts: ${LEGEND[format.format]}`,
  ]
}

/** One phase's table for one format. */
function formatTable(format: FormatCard): string[] {
  const rows: string[][] = [['', 'scenario', 'mode', 'reader', 'truth', 'reported']]
  const groups = new Map<string, CardRow[]>()
  for (const row of format.rows) groups.set(groupOf(row), [...(groups.get(groupOf(row)) ?? []), row])
  for (const group of groups.values()) {
    const first = group[0]!
    const same = group.every((r) => reportedText(format.format, r) === reportedText(format.format, first))
    if (group.length > 1 && same && group.every((r) => r.ok)) {
      rows.push([
        '✓',
        first.scenario,
        first.mode,
        `all ${group.length} readers`,
        truthText(format.format, first),
        reportedText(format.format, first),
      ])
      continue
    }
    for (const row of group) {
      const note = row.note ? `  (${row.note})` : ''
      rows.push([
        mark(row.ok),
        row.scenario,
        row.mode,
        row.label,
        truthText(format.format, row),
        reportedText(format.format, row) + note,
      ])
    }
  }
  const wrong = format.rows.filter((r) => !r.ok).length
  return [...header(format, wrong, format.rows.length), ...table(rows), ...rulesText('broken rules', format.rules)]
}

/** Both phases side by side for one format: before → after per row. */
function sideBySide(before: FormatCard, after: FormatCard | undefined, messageStart?: string): string[] {
  const afterRows = new Map((after?.rows ?? []).map((r) => [keyOf(r), r]))
  const beforeRows = new Map(before.rows.map((r) => [keyOf(r), r]))
  const keys = [...new Set([...before.rows.map(keyOf), ...(after?.rows ?? []).map(keyOf)])]
  const groups = new Map<string, string[]>()
  for (const key of keys) {
    const row = beforeRows.get(key) ?? afterRows.get(key)!
    groups.set(groupOf(row), [...(groups.get(groupOf(row)) ?? []), key])
  }
  const f = before.format
  const rows: string[][] = [['', '', 'scenario', 'mode', 'reader', 'truth', 'without usagewire', 'with usagewire']]
  /** Lines printed under a row (by its index): why the sidecar joined no provider call to a request. */
  const under = new Map<number, string[]>()
  for (const group of groups.values()) {
    const pairs = group.map((key) => ({ b: beforeRows.get(key), a: afterRows.get(key) }))
    const first = pairs[0]!.b ?? pairs[0]!.a!
    const text = (r: CardRow | undefined) => reportedText(f, r)
    const folded =
      pairs.length > 1 &&
      pairs.every((p) => p.b?.ok && p.a?.ok && text(p.b) === text(pairs[0]!.b) && text(p.a) === text(pairs[0]!.a))
    if (folded) {
      rows.push([
        '✓',
        '→ ✓',
        first.scenario,
        first.mode,
        `all ${pairs.length} readers`,
        truthText(f, first),
        text(pairs[0]!.b),
        text(pairs[0]!.a),
      ])
      continue
    }
    for (const { b, a } of pairs) {
      const row = (b ?? a)!
      const note = a?.note ? `  (${a.note})` : ''
      rows.push([
        mark(b?.ok),
        `→ ${mark(a?.ok)}`,
        row.scenario,
        row.mode,
        row.label,
        truthText(f, row),
        text(b),
        text(a) + note,
      ])
    }
    // A request still wrong with usagewire that the sidecar could not join: its reason, once, under its rows.
    // Not for the error scenario: usagewire never changes a status, joined or not.
    const unjoined = pairs.find((p) => p.a && !p.a.ok && p.a.correlation?.by === 'none')?.a
    if (unjoined && unjoined.scenario !== 'error')
      under.set(rows.length - 1, [
        `          ↳ usagewire did not join it: ${unjoined.correlation!.reason ?? 'no reason given'}`,
      ])
  }
  const wrongBefore = before.rows.filter((r) => !r.ok).length
  const wrongAfter = after ? after.rows.filter((r) => !r.ok).length : 0
  const extra = after ? `; with usagewire ${wrongAfter === 0 ? 'all right' : `${wrongAfter} wrong`}` : ''
  // Only under patch-final: the default, hold, fills message_start when the provider's numbers are joined.
  const startStillZero = messageStart === 'patch-final' && after?.rules.some((r) => r.rule === 'zero-start')
  return [
    ...header(before, wrongBefore, before.rows.length, extra),
    ...table(rows).flatMap((line, i) => [line, ...(under.get(i) ?? [])]),
    ...rulesText('broken rules without usagewire', before.rules),
    ...rulesText('still broken with usagewire', after?.rules ?? []),
    ...(startStillZero
      ? [
          "  hint: under --message-start patch-final, message_start leaves before the provider's numbers are joined;",
          '        the default, hold, fills it (clients then wait for the answer before the first token: docs/sidecar.md#timing)',
        ]
      : []),
  ]
}

function sidecarLine(phase: PhaseCard): string {
  const s = phase.sidecar
  if (!s) return ''
  return s.twoSided
    ? `with usagewire: clients → sidecar ${s.url} → gateway → sidecar ${s.providerUrl} → provider (message_start: ${s.messageStart})`
    : `with usagewire: clients → sidecar ${s.url} → gateway → provider (one-sided: the provider address could not be taken over; message_start: ${s.messageStart})`
}

/** The card as text for a terminal. */
export function formatCard(card: DoctorCard): string {
  const [before, after] = card.phases
  const requests = card.phases.reduce(
    (n, p) => n + p.formats.reduce((m, f) => m + new Set(f.rows.map(groupOf)).size, 0),
    0,
  )
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`
  const waited = card.waitedMs > 0 ? ` (after ${seconds(card.waitedMs)} waiting for the gateway)` : ''
  const lines = [
    `usagewire doctor · gateway ${card.gateway} · provider ${card.provider.url} · ${requests} requests in ${seconds(card.ms)}${waited}`,
    `SDKs: @anthropic-ai/sdk ${card.sdk.anthropic}, openai ${card.sdk.openai}`,
  ]
  if (after) lines.push(sidecarLine(after))
  for (const format of before?.formats ?? []) {
    lines.push('')
    const withIt = after?.formats.find((f) => f.format === format.format)
    lines.push(...(after ? sideBySide(format, withIt, after.sidecar?.messageStart) : formatTable(format)))
  }
  lines.push('')
  const verdict = card.ok
    ? 'every row is right'
    : after && after.ok
      ? 'rows are wrong without usagewire; with it every row is right'
      : 'some rows are wrong'
  lines.push(`${card.ok ? '✓' : '✗'} ${verdict}`)
  return lines.join('\n') + '\n'
}

/** The line that tells where to point the gateway's provider base URLs. */
export function providerLine(card: Pick<DoctorCard, 'provider'>): string {
  const p = card.provider
  return `usagewire doctor: point the gateway's providers here: Anthropic ${p.anthropic} · OpenAI ${p.openai} · Bedrock runtime endpoint ${p.bedrock} · Gemini ${p.gemini}`
}
