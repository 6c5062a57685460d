// Anthropic Messages bodies: moved to the doctor's provider (packages/doctor/src/provider/anthropic.ts).
export {
  ANTHROPIC_MODEL,
  anthropicEvents,
  anthropicMessage,
  anthropicStream,
  deltaUsage,
  fullUsage,
  startUsage,
  type AnthropicBody,
  type AnthropicUsage,
} from '@usagewire/doctor'
