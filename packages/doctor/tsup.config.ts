import { defineConfig } from 'tsup'
import { cliPackageBuild } from '../../tsup.adapter.js'

export default defineConfig(
  cliPackageBuild(['@usagewire/proxy', '@anthropic-ai/sdk', 'openai', '@smithy/eventstream-codec']),
)
