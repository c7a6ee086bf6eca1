import { createAnalysisActivities, type AnalysisActivityDeps } from './analysis/activities.js';
import { createHubActivities, type HubActivityDeps } from './hub/activities.js';
import { createPlanActivities, type PlanActivityDeps } from './plan/activities.js';
import { createPodActivities, type PodActivityDeps } from './pod/activities.js';
import { createGpuLockActivities, type GpuLockActivityDeps } from './pod/gpu-lock.js';
import { createReaperActivities, type ReaperActivityDeps } from './reaper/activities.js';
import { createResultsActivities, type ResultsActivityDeps } from './results/activities.js';
import { createRunPodActivities, type RunPodActivityDeps } from './runpod/activities.js';
import { createStudyActivities, type StudyActivityDeps } from './study/activities.js';
import { withFailureConversion } from './failures.js';

export type ActivityDeps = RunPodActivityDeps &
  PodActivityDeps &
  GpuLockActivityDeps &
  ResultsActivityDeps &
  ReaperActivityDeps &
  HubActivityDeps &
  AnalysisActivityDeps &
  StudyActivityDeps &
  PlanActivityDeps;

/** Every activity the worker registers, each converting its typed errors to ApplicationFailures once. */
export function createActivities(deps: ActivityDeps) {
  return withFailureConversion({
    ...createRunPodActivities(deps),
    ...createPodActivities(deps),
    ...createGpuLockActivities(deps),
    ...createResultsActivities(deps),
    ...createReaperActivities(deps),
    ...createHubActivities(deps),
    ...createAnalysisActivities(deps),
    ...createStudyActivities(deps),
    ...createPlanActivities(deps),
  });
}

export type Activities = ReturnType<typeof createActivities>;
