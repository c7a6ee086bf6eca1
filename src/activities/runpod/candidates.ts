// GPU candidates as the reserve step uses them: the create body for one, its label, the attempt log, and mapping a
// pod back to the candidate it came from. Pure functions.
import type { GpuCandidate, RunPodTarget } from '../../study/schema.js';
import type { CreatePodRequest, Pod } from './schemas.js';
import type { CandidateAttempt, PodRef } from './types.js';

/** Env label on every pod we create: which candidate it was, so an adopted pod maps back to its candidate. */
const CANDIDATE_ENV = 'GPUSTUDY_CANDIDATE';

/** The create body for one candidate. Only fields valid in both the 2.9 and the newest schema. */
export function createRequest(
  podName: string,
  target: RunPodTarget,
  c: GpuCandidate,
  publicKey: string,
  candidateIndex = 0,
): CreatePodRequest {
  return {
    name: podName,
    image: target.image,
    cloud: c.cloud,
    gpu: { id: c.gpuTypeId, count: c.gpuCount },
    ...(c.dataCenterIds.length ? { dataCenterIds: c.dataCenterIds } : {}),
    disk: target.containerDiskGb,
    mounts: { persistent: { size: target.volumeGb, path: target.volumeMountPath } },
    ports: ['22/tcp'],
    // The name token doubles as an env label, so a pod can be traced to its workflow from the console too.
    env: { PUBLIC_KEY: publicKey, GPUSTUDY_POD_NAME: podName, [CANDIDATE_ENV]: String(candidateIndex) },
  };
}

/** `1x NVIDIA H100 80GB HBM3 in US-KS-2,US-TX-3 (SECURE)`. */
export function candidateLabel(c: GpuCandidate): string {
  return `${c.gpuCount}x ${c.gpuTypeId} in ${c.dataCenterIds.join(',') || 'any DC'} (${c.cloud})`;
}

/** One line per attempt, for failure messages and the Web UI. */
export function describeAttempts(attempts: CandidateAttempt[]): string {
  return attempts
    .map(
      (a) =>
        `#${a.index} ${a.candidate.gpuTypeId} [${a.candidate.dataCenterIds.join(',') || 'any DC'}]: ${a.outcome}` +
        (a.detail ? ` (${a.detail})` : ''),
    )
    .join('; ');
}

/** Which candidate an adopted pod came from: our env label, else the first candidate it fits. */
export function candidateOf(pod: Pod, candidates: GpuCandidate[]): number {
  const labelled = Number(pod.env?.[CANDIDATE_ENV]);
  if (Number.isInteger(labelled) && candidates[labelled]?.gpuTypeId === pod.gpu?.id) return labelled;
  const fits = candidates.findIndex(
    (c) =>
      c.gpuTypeId === pod.gpu?.id &&
      (c.dataCenterIds.length === 0 || c.dataCenterIds.includes(pod.dataCenterId ?? '')) &&
      (!pod.cloud || c.cloud === pod.cloud),
  );
  return Math.max(0, fits);
}

/** What the workflow keeps of a reserved pod. */
export function toPodRef(pod: Pod, index: number, candidate: GpuCandidate): PodRef {
  return {
    podId: pod.id,
    name: pod.name,
    candidateIndex: index,
    candidate,
    dataCenterId: pod.dataCenterId ?? null,
    cloud: pod.cloud ?? candidate.cloud,
    costPerHr: pod.cost ?? 0,
    createdAt: pod.createdAt ?? new Date().toISOString(),
  };
}
