import { createAnalysisActivities, type AnalysisActivityDeps } from './analysis/index.js';
import { createHarnessActivities, type HarnessActivityDeps } from './harness/index.js';
import {
  createHubActivities,
  createHubDownloadActivities,
  type HubActivityDeps,
  type HubDownloadActivityDeps,
} from './hub/index.js';
import { createPlanActivities, type PlanActivityDeps } from './plan/index.js';
import { createReaperActivities, type ReaperActivityDeps } from './reaper/index.js';
import {
  createKeptResultsActivities,
  createResultsActivities,
  createResultsTransferActivities,
  type ResultsActivityDeps,
  type ResultsTransferActivityDeps,
  shareResults,
  type ResultsStore,
} from './results/index.js';
import {
  createPodWatchActivities,
  createRunPodActivities,
  type PodWatchActivityDeps,
  type RunPodActivityDeps,
} from './runpod/index.js';
import { createStudyActivities, type StudyActivityDeps } from './study/index.js';
import { createVllmActivities, type VllmActivityDeps } from './vllm/index.js';
import {
  createGpuLockActivities,
  createWorkspaceActivities,
  type GpuLockActivityDeps,
  type WorkspaceActivityDeps,
} from './workspace/index.js';
import { withFailureConversion } from './failures.js';

export type ActivityDeps = RunPodActivityDeps &
  PodWatchActivityDeps &
  WorkspaceActivityDeps &
  GpuLockActivityDeps &
  HubActivityDeps &
  HubDownloadActivityDeps &
  VllmActivityDeps &
  HarnessActivityDeps &
  ResultsTransferActivityDeps &
  ResultsActivityDeps &
  ReaperActivityDeps &
  AnalysisActivityDeps &
  StudyActivityDeps &
  PlanActivityDeps & {
    /** Where several workers share the results folder's contents; LOCAL_ONLY_STORE for one worker. */
    resultsStore: ResultsStore;
  };

/**
 * Every activity the worker registers, each converting its typed errors to ApplicationFailures once; those that
 * touch the results folder keep it in step with the shared store.
 */
export function createActivities(deps: ActivityDeps) {
  const activities = {
    ...createRunPodActivities(deps),
    ...createPodWatchActivities(deps),
    ...createWorkspaceActivities(deps),
    ...createGpuLockActivities(deps),
    ...createHubActivities(deps),
    ...createHubDownloadActivities(deps),
    ...createVllmActivities(deps),
    ...createHarnessActivities(deps),
    ...createResultsTransferActivities(deps),
    ...createResultsActivities(deps),
    ...createKeptResultsActivities(deps),
    ...createReaperActivities(deps),
    ...createAnalysisActivities(deps),
    ...createStudyActivities(deps),
    ...createPlanActivities(deps),
  };
  return withFailureConversion(shareResults(activities, { store: deps.resultsStore, resultsDir: deps.resultsDir }));
}

export type Activities = ReturnType<typeof createActivities>;
