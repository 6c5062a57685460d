import { defineConfig } from 'tsup'

export default defineConfig([
  {
    entry: {
      index: 'src/index.ts',
      node: 'src/node/index.ts',
      web: 'src/web/index.ts',
      testing: 'src/testing/index.ts',
      prometheus: 'src/prometheus/index.ts',
      otel: 'src/otel/index.ts',
      postgres: 'src/postgres/index.ts',
      estimate: 'src/estimate/index.ts',
    },
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    target: 'node20',
    sourcemap: true,
    external: ['prom-client', '@opentelemetry/api', 'pg', 'gpt-tokenizer'],
  },
  {
    entry: { cli: 'src/cli.ts' },
    format: ['esm'],
    target: 'node20',
    banner: { js: '#!/usr/bin/env node' },
  },
])
