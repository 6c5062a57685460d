import { defineConfig } from 'tsup'

const external = [
  '@usagewire/core',
  '@usagewire/http-proxy-middleware',
  'http-proxy-middleware',
  'prom-client',
  '@aws-crypto/sha256-js',
  '@aws-sdk/credential-provider-node',
  '@smithy/signature-v4',
]

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
