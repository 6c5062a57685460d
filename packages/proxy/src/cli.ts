import { runProxyCli } from './args.js'

await runProxyCli(process.argv.slice(2))
