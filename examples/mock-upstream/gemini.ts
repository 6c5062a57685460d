// Gemini API bodies: moved to the doctor's provider (packages/doctor/src/provider/gemini.ts).
export {
  GEMINI_MODEL,
  geminiResponse,
  geminiSnapshots,
  geminiStream,
  geminiUsage,
  type GeminiBody,
  type GeminiUsage,
} from '@usagewire/doctor'
