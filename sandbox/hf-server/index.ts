export { startHfServer } from './server.js';
export type { HfRequestLogEntry, HfServer, StartHfServerOptions } from './server.js';
export { HfFaultSchema, MODEL_INFO_FAULT_TARGET } from './faults.js';
export type { ActiveFault, HfFault } from './faults.js';
export {
  buildHfRepo,
  commitShaFor,
  DEFAULT_HF_MODEL_IDS,
  DEFAULT_SHARD_BYTES,
  DEFAULT_SHARD_COUNT,
  isLfsPath,
  shardFileName,
} from './models.js';
export type { HfModelSpec, HfRepo, HfRepoFile } from './models.js';
export { buildSafetensorsShard, checkSafetensorsComplete, tensorDataBytes } from './safetensors.js';
export type { BuildSafetensorsShardOptions, SafetensorsCheck, SafetensorsTensorSpec } from './safetensors.js';
