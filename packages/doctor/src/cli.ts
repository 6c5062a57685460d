import { runDoctorCli } from './args.js'

const code = await runDoctorCli(process.argv.slice(2))
// Exit once what was printed has been written (pooled connections would otherwise keep the process a while).
process.stdout.write('', () => process.exit(code))
