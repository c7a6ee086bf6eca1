// Do the prompts fit the context? vLLM answers HTTP 400 to a request whose prompt plus max_tokens passes
// max-model-len, and the harness scores it as wrong: over-long samples would bias the comparison, so none may exist.
import type { PreflightReport } from './types.js';

/** Context windows are set in whole KiB of tokens in practice; the suggestion rounds up to one. */
export const MAX_MODEL_LEN_STEP = 1024;

export interface ContextResult {
  repoId: string;
  prompt: string;
  longestPromptTokens: number;
  longestId: string | number;
  /** Samples whose prompt + maxTokens exceed maxModelLen. */
  overIds: (string | number)[];
  /** The smallest maxModelLen that fits every sample of this prompt with this model's maxTokens. */
  neededMaxModelLen: number;
  framingNote: string;
}

export function checkContext(input: {
  repoId: string;
  maxTokens: number;
  maxModelLen: number;
  tokens: PreflightReport['tokens'];
}): ContextResult[] {
  return input.tokens
    .filter((t) => t.key === input.repoId)
    .map((t) => {
      const limit = input.maxModelLen - input.maxTokens;
      return {
        repoId: input.repoId,
        prompt: t.prompt,
        longestPromptTokens: t.maxTokens,
        longestId: t.maxId,
        overIds: t.counts.filter(([, n]) => n > limit).map(([id]) => id),
        neededMaxModelLen: t.maxTokens + input.maxTokens,
        framingNote: t.framingNote,
      };
    });
}

export const roundUpMaxModelLen = (n: number) => Math.ceil(n / MAX_MODEL_LEN_STEP) * MAX_MODEL_LEN_STEP;
