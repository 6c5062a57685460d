import { defineConfig } from 'tsup'
import { cliPackageBuild } from '../../tsup.adapter.js'

export default defineConfig(
  cliPackageBuild([
    '@usagewire/core',
    '@usagewire/http-proxy-middleware',
    'http-proxy-middleware',
    'prom-client',
    '@aws-crypto/sha256-js',
    '@aws-sdk/credential-provider-node',
    '@smithy/signature-v4',
  ]),
)
