import { parseArgs } from 'node:util'
import { formatCard, providerLine } from './card.js'
import {
  DEFAULT_PROVIDER_LISTEN,
  DoctorUsageError,
  GatewayUnreachableError,
  runDoctor,
  type DoctorOptions,
} from './doctor.js'
import { SCENARIO_NAMES, type ScenarioName } from './provider/scenarios.js'
import { CLIENT_FORMATS, type ClientFormat } from './readers.js'

export const USAGE = `usage: usagewire doctor --gateway URL [options]

Starts a provider whose numbers are known, sends every scenario through the gateway with the official
SDKs, and prints what each client reads against the truth.

  --gateway URL                  the gateway's base URL, as clients use it
  --provider-listen [HOST:]PORT  where the doctor's provider listens (default ${DEFAULT_PROVIDER_LISTEN}): point the
                                 gateway's provider base URLs here before running
  --clients LIST                 client formats (default ${CLIENT_FORMATS.join(',')})
  --model FORMAT=NAME            the model a client format asks the gateway for (repeat)
  --scenarios LIST               scenarios (default ${SCENARIO_NAMES.join(',')})
  --with-usagewire               run again with the usagewire sidecar around the gateway; print both
  --message-start POLICY         the sidecar's message_start policy: hold (default) or patch-final
  --api-key KEY                  the key the SDKs send to the gateway (default usagewire-doctor)
  --timeout-ms N                 per request (default 15000)
  --wait-ms N                    wait up to N ms for the gateway to come up (start it after the doctor's provider);
                                 the wait is reported apart from the audit's time
  --json                         print the card as JSON
Exit code: 0 every row right, 1 a row wrong, 2 a usage error or a gateway that cannot be reached.
`

export interface DoctorCliOptions extends DoctorOptions {
  json?: boolean
  help?: boolean
}

const list = (value: string) =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)

/** The CLI's flags as `runDoctor` options; throws a DoctorUsageError with what is wrong. */
export function parseDoctorArgs(argv: string[]): DoctorCliOptions {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        gateway: { type: 'string' },
        'provider-listen': { type: 'string' },
        clients: { type: 'string' },
        model: { type: 'string', multiple: true },
        scenarios: { type: 'string' },
        'with-usagewire': { type: 'boolean' },
        'message-start': { type: 'string' },
        'api-key': { type: 'string' },
        'timeout-ms': { type: 'string' },
        'wait-ms': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }))
  } catch (error) {
    throw new DoctorUsageError((error as Error).message)
  }
  if (values.help) return { gateway: '', help: true }
  if (!values.gateway) throw new DoctorUsageError('--gateway is needed')
  const options: DoctorCliOptions = { gateway: values.gateway }
  options.providerListen = values['provider-listen'] ?? DEFAULT_PROVIDER_LISTEN
  if (values.clients !== undefined) {
    const clients = list(values.clients)
    for (const c of clients)
      if (!CLIENT_FORMATS.includes(c as ClientFormat))
        throw new DoctorUsageError(`--clients: unknown format "${c}" (${CLIENT_FORMATS.join(', ')})`)
    options.clients = clients as ClientFormat[]
  }
  if (values.scenarios !== undefined) {
    const scenarios = list(values.scenarios)
    for (const s of scenarios)
      if (!SCENARIO_NAMES.includes(s as ScenarioName))
        throw new DoctorUsageError(`--scenarios: unknown scenario "${s}" (${SCENARIO_NAMES.join(', ')})`)
    options.scenarios = scenarios as ScenarioName[]
  }
  for (const spec of values.model ?? []) {
    const eq = spec.indexOf('=')
    const format = spec.slice(0, eq) as ClientFormat
    if (eq <= 0 || eq === spec.length - 1 || !CLIENT_FORMATS.includes(format))
      throw new DoctorUsageError(`--model needs FORMAT=NAME with FORMAT one of ${CLIENT_FORMATS.join(', ')}: "${spec}"`)
    options.models = { ...options.models, [format]: spec.slice(eq + 1) }
  }
  if (values['with-usagewire']) options.withUsagewire = true
  const policy = values['message-start']
  if (policy !== undefined) {
    if (policy !== 'hold' && policy !== 'patch-final')
      throw new DoctorUsageError('--message-start is hold or patch-final')
    options.messageStart = policy
  }
  if (values['api-key'] !== undefined) options.apiKey = values['api-key']
  if (values['timeout-ms'] !== undefined) {
    const n = Number(values['timeout-ms'])
    if (!Number.isInteger(n) || n <= 0)
      throw new DoctorUsageError('--timeout-ms needs a positive number of milliseconds')
    options.timeoutMs = n
  }
  if (values['wait-ms'] !== undefined) {
    const n = Number(values['wait-ms'])
    if (!Number.isInteger(n) || n < 0) throw new DoctorUsageError('--wait-ms needs a number of milliseconds')
    options.waitMs = n
  }
  if (values.json) options.json = true
  return options
}

/** Where the CLI writes; process.stdout and process.stderr unless a caller (a test) gives its own. */
export interface DoctorIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
}

const processIo: DoctorIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
}

/**
 * `usagewire doctor …` (a leading `doctor` is skipped): prints the card and resolves to the exit code,
 * 0 when every row is right, 1 when one is wrong, 2 on a usage error or a gateway that cannot be reached.
 */
export async function runDoctorCli(argv: string[], io: DoctorIo = processIo): Promise<number> {
  const args = argv[0] === 'doctor' ? argv.slice(1) : argv
  let options: DoctorCliOptions
  try {
    options = parseDoctorArgs(args)
  } catch (error) {
    io.stderr(`usagewire doctor: ${(error as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (options.help) {
    io.stdout(USAGE)
    return 0
  }
  const { json, help: _help, ...doctor } = options
  try {
    const card = await runDoctor({
      ...doctor,
      // With --json, stdout carries the card alone.
      onProvider: (provider) => (json ? io.stderr : io.stdout)(`${providerLine({ provider })}\n`),
    })
    io.stdout(json ? `${JSON.stringify(card, null, 2)}\n` : formatCard(card))
    return card.ok ? 0 : 1
  } catch (error) {
    if (error instanceof DoctorUsageError || error instanceof GatewayUnreachableError) {
      io.stderr(`usagewire doctor: ${error.message}\n`)
      return 2
    }
    throw error
  }
}
