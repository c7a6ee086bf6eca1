// The workflow bundle's entry point: workflow functions only.
export { studyWorkflow } from './study.js';
export { phaseWorkflow } from './phase.js';
export { podSessionWorkflow } from './pod-session/index.js';
export { reaperWorkflow } from './reaper.js';
export { fetchKeptResultsWorkflow } from './fetch-kept.js';
