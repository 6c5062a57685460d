// OpenAI Chat Completions bodies: moved to the doctor's provider (packages/doctor/src/provider/openai-chat.ts).
export { CHAT_MODEL, chatCompletion, chatStream, chatUsage, type ChatBody, type ChatUsage } from '@usagewire/doctor'
