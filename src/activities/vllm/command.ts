// The `vllm serve` command line of a study's settings: what is started, recorded in the manifest, and compared
// before a running server is reused.
import type { StartVllmInput } from './types.js';
import { envPrefix, q } from '../ssh/index.js';

export interface VllmServeCommand {
  baseUrl: string;
  args: string[];
  /** Environment that selects the GPUs (and, in the sandbox, the simulated answers). */
  env: Record<string, string>;
  /** The exact command, environment included. */
  commandLine: string;
}

export function vllmServeCommand(input: StartVllmInput): VllmServeCommand {
  const v = input.vllm;
  const args = [
    'vllm',
    'serve',
    input.modelDir,
    '--served-model-name',
    input.servedModelName,
    '--host',
    '127.0.0.1',
    '--port',
    String(v.port),
    '--dtype',
    v.dtype,
    '--max-model-len',
    String(v.maxModelLen),
    '--max-num-seqs',
    String(v.maxNumSeqs),
    '--max-num-batched-tokens',
    String(v.maxNumBatchedTokens),
    '--seed',
    String(v.seed),
    '--gpu-memory-utilization',
    String(v.gpuMemoryUtilization),
    '--tensor-parallel-size',
    String(input.tensorParallelSize),
    v.enablePrefixCaching ? '--enable-prefix-caching' : '--no-enable-prefix-caching',
    '--generation-config',
    'vllm',
    ...(input.reasoningParser ? ['--reasoning-parser', input.reasoningParser] : []),
  ];
  // Only the run's GPUs on a shared server, numbered as nvidia-smi and NVML number them (CUDA's own order differs).
  const env: Record<string, string> = input.gpuIndices?.length
    ? { CUDA_DEVICE_ORDER: 'PCI_BUS_ID', CUDA_VISIBLE_DEVICES: input.gpuIndices.join(',') }
    : {};
  // Sandbox only: how the simulated vLLM answers (part of the recorded command line, so a manifest shows it).
  if (input.simulatedAnswers) env.VLLM_SIM_ANSWERS = JSON.stringify(input.simulatedAnswers);
  // The exact command, environment that selects the GPUs included: recorded, and compared before reusing a server.
  const commandLine = `${envPrefix(env)}${args.map(q).join(' ')}`;
  return { baseUrl: `http://127.0.0.1:${v.port}`, args, env, commandLine };
}
