import { defineConfig } from 'tsup'

const external = ['@usagewire/proxy', '@anthropic-ai/sdk', 'openai', '@smithy/eventstream-codec']

export default defineConfig([
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
])
