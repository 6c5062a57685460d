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
