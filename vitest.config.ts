import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url))

export default defineConfig({
  resolve: {
    alias: [
      { find: /^@usagewire\/core$/, replacement: src('./packages/core/src/index.ts') },
      { find: /^@usagewire\/core\/(node|web|testing|prometheus|otel|postgres|estimate)$/, replacement: src('./packages/core/src/$1/index.ts') },
      {
        find: /^@usagewire\/(express|koa|fastify|http-proxy-middleware|proxy|doctor)$/,
        replacement: src('./packages/$1/src/index.ts'),
      },
    ],
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 20_000,
  },
})
