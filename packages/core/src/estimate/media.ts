/**
 * Fixed allowances for items whose tokens the body does not say: an image or a PDF costs what its pixels
 * and pages cost, and decoding them is not an estimate's job. Each is the provider's documented cost of a
 * typical item (docs/estimate.md#images-and-documents). Audio and video get none: their cost depends on a
 * duration the body does not state.
 */
export const MEDIA = {
  /** Claude scales an image to at most about 1.15 megapixels, at about 750 pixels a token: the cap. */
  claudeImage: 1600,
  /** A PDF page is its text plus an image of the page; one typical page. */
  claudeDocument: 2000,
  /** A 1024×1024 image at high detail: 85 + 4 tiles × 170. */
  openaiImage: 765,
  /** `detail: 'low'`: one fixed 85-token view. */
  openaiImageLow: 85,
  /** A file part (PDF): like Claude's, its text plus an image per page; one typical page. */
  openaiFile: 2000,
  /** Gemini counts an image, or a PDF page, as 258 tokens per 768×768 tile; one tile. */
  geminiImage: 258,
  /** LLaVA-style models (Ollama's usual vision models) read a 336-pixel image as 24 × 24 patches. */
  ollamaImage: 576,
} as const
