import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { inspect } from './testing/inspect.js'

const USAGE = `usage: usagewire inspect FILE [--path P] [--content-type T] [--rewrite OUT]
       usagewire proxy --listen [HOST:]PORT --target URL [...]   (with @usagewire/proxy installed; --help for its options)
       usagewire doctor --gateway URL [...]                      (with @usagewire/doctor installed; --help for its options)

Reads a captured LLM response body (SSE or JSON), prints its usage record as JSON,
and with --rewrite writes the bytes a client would receive through usagewire.

  --path P            request path the body answered (default: from the body), e.g. /v1/messages
  --content-type T    response content type (default: guessed from the body)
  --rewrite OUT       write the rewritten body to OUT ('-' for stdout; the record then goes to stderr)
  --status N          HTTP status of the captured response (default 200)
`

function main(argv: string[]): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      path: { type: 'string' },
      'content-type': { type: 'string' },
      rewrite: { type: 'string' },
      status: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  const [command, file] = positionals
  if (values.help || command !== 'inspect' || !file) {
    process.stderr.write(USAGE)
    return values.help ? 0 : 2
  }
  const status = values.status === undefined ? undefined : Number(values.status)
  if (status !== undefined && !(Number.isInteger(status) && status >= 100 && status <= 599)) {
    process.stderr.write(`usagewire inspect: --status must be an HTTP status (100–599), not "${values.status}"\n`)
    return 2
  }
  if (status !== undefined && (status < 200 || status === 204 || status === 304)) {
    // The same as in a gateway: such a response generated nothing, and gets no record.
    process.stderr.write(`usagewire inspect: a ${status} response carries no LLM answer and gets no usage record\n`)
    return 2
  }
  const body = readFileSync(file === '-' ? 0 : file)
  const { record, output } = inspect(body, {
    path: values.path,
    contentType: values['content-type'],
    httpStatus: status,
  })
  const json = `${JSON.stringify(record, null, 2)}\n`
  if (values.rewrite === '-') {
    process.stdout.write(output)
    process.stderr.write(json)
  } else {
    if (values.rewrite) writeFileSync(values.rewrite, output)
    process.stdout.write(json)
  }
  return 0
}

/** `usagewire proxy …` is the sidecar's, in its own package: loaded only when asked for. */
async function proxy(argv: string[]): Promise<void> {
  const name = '@usagewire/proxy'
  let module: { runProxyCli(argv: string[]): Promise<void> }
  try {
    module = (await import(name)) as typeof module
  } catch (error) {
    process.stderr.write(
      `usagewire proxy needs ${name} installed beside @usagewire/core (${(error as Error).message})\n`,
    )
    process.exitCode = 2
    return
  }
  await module.runProxyCli(argv)
}

/** `usagewire doctor …` audits a gateway, in its own package: loaded only when asked for. */
async function doctor(argv: string[]): Promise<void> {
  const name = '@usagewire/doctor'
  let module: { runDoctorCli(argv: string[]): Promise<number> }
  try {
    module = (await import(name)) as typeof module
  } catch (error) {
    process.stderr.write(
      `usagewire doctor needs ${name} installed beside @usagewire/core (${(error as Error).message})\n`,
    )
    process.exitCode = 2
    return
  }
  process.exitCode = await module.runDoctorCli(argv)
}

const argv = process.argv.slice(2)
if (argv[0] === 'proxy') {
  await proxy(argv.slice(1))
} else if (argv[0] === 'doctor') {
  await doctor(argv.slice(1))
} else {
  try {
    process.exitCode = main(argv)
  } catch (error) {
    process.stderr.write(`usagewire: ${(error as Error).message}\n${USAGE}`)
    process.exitCode = 2
  }
}
