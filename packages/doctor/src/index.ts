/**
 * @usagewire/doctor: a usage-fidelity audit of any gateway against a provider whose numbers are known
 * (docs/doctor.md).
 *
 *   usagewire-doctor --gateway http://127.0.0.1:4000 --provider-listen 8790 [--with-usagewire] [--json]
 */
export {
  runDoctor,
  openDoctor,
  providerInfo,
  DoctorUsageError,
  GatewayUnreachableError,
  DEFAULT_MODELS,
  DEFAULT_PROVIDER_LISTEN,
  DEFAULT_TIMEOUT_MS,
  type AuditOptions,
  type DoctorOptions,
  type DoctorSession,
  type DoctorCard,
  type PhaseCard,
  type FormatCard,
  type CardRow,
  type RuleReport,
  type ProviderInfo,
} from './doctor.js'
export { runDoctorCli, parseDoctorArgs, USAGE, type DoctorCliOptions, type DoctorIo } from './args.js'
export { formatCard, providerLine } from './card.js'
export { sendRequest, SDK_VERSIONS, type Capture, type ClientRequest } from './clients.js'
export {
  ANTHROPIC_READERS,
  CLIENT_FORMATS,
  FIELDS,
  READER_LABELS,
  anthropicCounts,
  chatCounts,
  responsesCounts,
  readAnthropicStream,
  readAnthropicFinal,
  readAnthropicBody,
  readChatStream,
  readChatBody,
  readResponsesStream,
  readResponsesBody,
  type AnthropicReader,
  type ClientFormat,
  type Counts,
  type Reading,
} from './readers.js'
export {
  detect,
  detectStreamVsJson,
  detectProviderRequest,
  currentStreamReading,
  contentChunks,
  errorStatusRight,
  RETRIED_STATUSES,
  MODES,
  RULES,
  type ContentChunks,
  type ContentKind,
  type ProviderRequest,
  type Finding,
  type Mode,
  type Observation,
  type RuleId,
  type RuleInfo,
} from './rules.js'
export { expectedCounts, differences, ABORT_FIELDS } from './truth.js'
export { parseSse, parseJson, type WireEvent } from './wire.js'
export * from './provider/index.js'
