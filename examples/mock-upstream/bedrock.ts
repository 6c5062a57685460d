// Bedrock InvokeModelWithResponseStream bodies: moved to the doctor's provider (packages/doctor/src/provider/bedrock.ts).
export { bedrockStream, invocationMetrics, type BedrockBody } from '@usagewire/doctor'
