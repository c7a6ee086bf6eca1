export { createAnalysisActivities, summarizePacket, GATE_DECISIONS_FILE } from './activities.js';
export type { AnalysisActivityDeps } from './activities.js';
export { AnalysisClient } from './client.js';
export { AnalysisFailedError, AnalysisInputError } from './errors.js';
export type { AnalysisApi, AnalysisClientOptions } from './client.js';
export { DecisionPacketSchema, PacketOutputSchema, ReportOutputSchema, GateDecisionsFileSchema } from './schemas.js';
export type * from './types.js';
