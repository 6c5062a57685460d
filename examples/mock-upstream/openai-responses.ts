// OpenAI Responses bodies: moved to the doctor's provider (packages/doctor/src/provider/openai-responses.ts).
export {
  RESPONSES_MODEL,
  responsesBody,
  responsesStream,
  responsesUsage,
  type ResponsesBody,
  type ResponsesUsage,
} from '@usagewire/doctor'
