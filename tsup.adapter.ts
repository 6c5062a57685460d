import { defineConfig, type Options } from 'tsup'

/** The build every adapter package shares: ESM + CJS + .d.ts for Node 20, core and its framework left external. */
export const adapterBuild = (external: string[]): Options =>
  defineConfig({
    entry: { index: 'src/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    target: 'node20',
    sourcemap: true,
    external: ['@usagewire/core', ...external],
  }) as Options

/** A package with a library and a command (`@usagewire/proxy`, `@usagewire/doctor`): the library as above, the CLI as ESM with a shebang. */
export const cliPackageBuild = (external: string[]): Options[] => [
  {
    entry: { index: 'src/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    target: 'node20',
    sourcemap: true,
    external,
  },
  {
    entry: { cli: 'src/cli.ts' },
    format: ['esm'],
    target: 'node20',
    banner: { js: '#!/usr/bin/env node' },
    external,
  },
]
