/**
 * AWS event stream bodies for the conformance corpus: cut into frames with their CRCs checked, and shown
 * as SSE-like text so the wire checks of wire.ts apply (docs/dialects/bedrock-invoke.md#the-event-stream).
 * A `chunk` frame shows its base64 `bytes` decoded: `data:` is the model's own event, `id:` the rest of the
 * payload. Independent of @usagewire/core on purpose.
 */
import { crc32 } from 'node:zlib'

export interface Frame {
  raw: Buffer
  headers: Record<string, string>
  payload: Buffer
  /** Problems with the frame's lengths or CRCs. */
  problems: string[]
}

export const isEventStream = (contentType: string): boolean =>
  contentType.toLowerCase().startsWith('application/vnd.amazon.eventstream')

export function frames(body: Buffer): Frame[] {
  const out: Frame[] = []
  let pos = 0
  while (pos + 12 <= body.length) {
    const total = body.readUInt32BE(pos)
    const headersLength = body.readUInt32BE(pos + 4)
    const raw = body.subarray(pos, pos + total)
    const problems: string[] = []
    if (total < 16 || raw.length < total) {
      out.push({ raw: body.subarray(pos), headers: {}, payload: Buffer.alloc(0), problems: ['truncated frame'] })
      return out
    }
    if (crc32(raw.subarray(0, 8)) !== raw.readUInt32BE(8)) problems.push('prelude CRC')
    if (crc32(raw.subarray(0, total - 4)) !== raw.readUInt32BE(total - 4)) problems.push('message CRC')
    const headers: Record<string, string> = {}
    let h = 12
    while (h < 12 + headersLength) {
      const nameLength = raw[h]!
      const name = raw.toString('utf8', h + 1, h + 1 + nameLength)
      const type = raw[h + 1 + nameLength]!
      if (type !== 7) {
        problems.push(`header ${name}: type ${type} not shown`)
        break
      }
      const valueLength = raw.readUInt16BE(h + 2 + nameLength)
      const valueAt = h + 4 + nameLength
      headers[name] = raw.toString('utf8', valueAt, valueAt + valueLength)
      h = valueAt + valueLength
    }
    out.push({ raw, headers, payload: raw.subarray(12 + headersLength, total - 4), problems })
    pos += total
  }
  if (pos < body.length)
    out.push({ raw: body.subarray(pos), headers: {}, payload: Buffer.alloc(0), problems: ['truncated frame'] })
  return out
}

/** The model's event inside a `chunk` payload, and the payload with `bytes` blanked; else undefined. */
export function inner(frame: Frame): { event: string; rest: string } | undefined {
  try {
    const payload = JSON.parse(frame.payload.toString('utf8')) as Record<string, unknown>
    if (typeof payload.bytes !== 'string') return undefined
    const event = Buffer.from(payload.bytes, 'base64').toString('utf8')
    return { event, rest: JSON.stringify({ ...payload, bytes: '…' }) }
  } catch {
    return undefined
  }
}

/** The body as SSE-like text: one event per frame, named by `:event-type` (or `:message-type`). */
export function eventStreamText(body: Buffer): string {
  return frames(body)
    .map((frame) => {
      const name = frame.headers[':event-type'] ?? frame.headers[':message-type'] ?? 'frame'
      const wrapped = inner(frame)
      if (wrapped) return `event: ${name}\nid: ${wrapped.rest}\ndata: ${wrapped.event}\n\n`
      return `event: ${name}\ndata: ${frame.payload.toString('utf8')}\n\n`
    })
    .join('')
}

/** CRCs hold in every output frame, as many frames leave as came, and each frame that carries no usage leaves byte for byte. */
export function eventStreamProblems(input: Buffer, output: Buffer, aborted: boolean): string[] {
  const problems: string[] = []
  const ins = frames(input)
  const outs = frames(output)
  outs.forEach((frame, n) => {
    if (!(aborted && n === outs.length - 1)) for (const p of frame.problems) problems.push(`frame #${n}: ${p}`)
  })
  if (!aborted && ins.length !== outs.length) problems.push(`frames: ${outs.length} out, ${ins.length} in`)
  ins.forEach((frame, n) => {
    const out = outs[n]
    if (!out) return
    const text = inner(frame)?.event ?? frame.payload.toString('utf8')
    if (!/"usage"|invocationMetrics/.test(text) && !frame.raw.equals(out.raw) && !(aborted && n === outs.length - 1))
      problems.push(`frame #${n} (${frame.headers[':event-type'] ?? 'frame'}) carries no usage but changed`)
  })
  return problems
}
