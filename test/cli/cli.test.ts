import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const cli = fileURLToPath(new URL('../../packages/core/src/cli.ts', import.meta.url))
const usagewire = (...args: string[]) => run(process.execPath, ['--import', 'tsx', cli, ...args])

const capture = [
  'event: message_start',
  'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":2048,"cache_creation_input_tokens":287,"cache_read_input_tokens":30433,"output_tokens":1}}}',
  '',
  'event: message_delta',
  'data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":512}}',
  '',
  'event: message_stop',
  'data: {"type":"message_stop"}',
  '',
  '',
].join('\n')

describe('usagewire inspect', () => {
  const dir = mkdtempSync(join(tmpdir(), 'usagewire-cli-'))
  const file = join(dir, 'capture.sse')
  writeFileSync(file, capture)

  it('prints the usage record of a captured body as JSON', async () => {
    const { stdout } = await usagewire('inspect', file, '--path', '/v1/messages')
    const record = JSON.parse(stdout)
    expect(record).toMatchObject({
      dialect: 'anthropic-messages',
      model: 'claude-sonnet-4-5',
      status: 'complete',
      usage: { input: 2048, cacheRead: 30433, cacheWrite: 287, output: 512 },
    })
    expect(record.corrections).toContainEqual({
      where: 'message_delta',
      field: 'usage.input_tokens',
      from: 0,
      to: 2048,
    })
  })

  it('writes the bytes a client would receive with --rewrite', async () => {
    const out = join(dir, 'fixed.sse')
    await usagewire('inspect', file, '--rewrite', out)
    const fixed = readFileSync(out, 'utf8')
    expect(fixed).toContain(
      '"usage":{"input_tokens":2048,"cache_creation_input_tokens":287,"cache_read_input_tokens":30433,"output_tokens":512}',
    )
    expect(fixed.split('\n\n')[0]).toBe(capture.split('\n\n')[0])
  })

  it('refuses a --status that is no HTTP status, and one whose response gets no record, with exit code 2', async () => {
    await expect(usagewire('inspect', file, '--status', 'abc')).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--status must be an HTTP status'),
    })
    await expect(usagewire('inspect', file, '--status', '204')).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('no usage record'),
    })
  })

  it('says how to use it, with exit code 2, when the arguments are wrong', async () => {
    await expect(usagewire('nonsense')).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('usage: usagewire inspect'),
    })
  })
})
