import type { Options } from 'tsup'

/** A package's library: ESM + CJS + .d.ts for Node 20, with `external` left to the package's dependencies. */
const library = (external: string[]): Options => ({
  entry: { index: 'src/index.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  target: 'node20',
  sourcemap: true,
  external,
})

/** The build every adapter package shares: the library, with core and its framework left external. */
export const adapterBuild = (external: string[]): Options => library(['@usagewire/core', ...external])

/** A package with a library and a command (`@usagewire/proxy`, `@usagewire/doctor`): the library as above, the CLI as ESM with a shebang. */
export const cliPackageBuild = (external: string[]): Options[] => [
  library(external),
  {
    entry: { cli: 'src/cli.ts' },
    format: ['esm'],
    target: 'node20',
    banner: { js: '#!/usr/bin/env node' },
    external,
  },
]
