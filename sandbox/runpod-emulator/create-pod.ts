// `POST /v2/pods`: validation, template and network-volume resolution, placement, then the new pod's record.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cloud } from './catalog.js';
import { placePod } from './capacity.js';
import type { Placement } from './capacity.js';
import type { PodRecord } from './model.js';
import type { PodContext } from './pod-api.js';
import { podLog } from './pods.js';
import { ProblemError, insufficientBalance, notFound, validationFailed } from './problems.js';
import { renderPod } from './render.js';
import { preparePodDir } from './sshd.js';
import { checkCreateCrossFields, validateCreateBody } from './validation.js';
import type { CreateBody } from './validation.js';

/** The container fields a template may fill in. */
interface ContainerSpec {
  image: string | undefined;
  env: Record<string, string>;
  ports: string[] | undefined;
  args: string | undefined;
  disk: number | undefined;
}

/** Creates the pod and starts its timeline. Returns the rendered pod (201). */
export async function createPod(ctx: PodContext, raw: unknown): Promise<Record<string, unknown>> {
  const { options: o, lifecycle, faults } = ctx;
  const body = validateCreateBody(raw, o.schemaMode);
  const { image, env, ports, args, disk } = resolveTemplate(ctx, body);
  if (image === undefined) throw validationFailed(["$: missing property 'image'"]);
  checkCreateCrossFields(body, o.catalog.cpuFlavors);

  const dataCenterIds = volumeDataCenters(ctx, body);
  // A 400 that is neither a capacity text nor a field error: a rule the request breaks.
  const rejection = faults.createRejection(body.gpu?.id);
  if (rejection !== null) throw new ProblemError(400, rejection);
  if (faults.insufficientBalance) throw insufficientBalance();
  const cloud: Cloud = body.cloud ?? 'SECURE';
  const placement: Placement = placePod({
    body,
    cloud,
    dataCenterIds,
    catalog: o.catalog,
    isRestricted: (id) => faults.isRestricted(id),
  });

  const id = lifecycle.newId();
  const dir = join(o.dataDir, 'pods', id);
  try {
    await preparePodDir({ dir, podId: id, sshKeygenPath: o.sshKeygenPath });
  } catch (err) {
    if (placement.cellKey && placement.gpu) o.catalog.release(placement.cellKey, placement.gpu.count);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  // startSsh injects the account's keys unless env already has PUBLIC_KEY; with no keys it does nothing.
  const accountKeys = ctx.accountSshKeys();
  if (body.startSsh && env.PUBLIC_KEY === undefined && accountKeys.length > 0) {
    env.PUBLIC_KEY = accountKeys.join('\n');
  }
  const now = Date.now();
  const pod: PodRecord = {
    seq: lifecycle.nextSeq(),
    id,
    name: body.name,
    image,
    args: args ?? '',
    entrypoint: body.entrypoint ?? [],
    cmd: body.cmd ?? [],
    disk: disk ?? o.defaultDiskGb,
    ports: [...new Set(ports ?? [])],
    env,
    registry: body.registry ?? null,
    mounts: body.mounts ?? {},
    locked: false,
    globalNetworking: body.globalNetworking ?? false,
    cloud,
    ...placement,
    holdsGpus: placement.gpu !== null,
    proxyUsername: `${id}-${ctx.random.hex(8)}`,
    createdAtMs: now,
    startedAtMs: null,
    status: 'PROVISIONING',
    runningSinceMs: null,
    runtimeVisible: false,
    published: null,
    sshd: null,
    dir,
    authorizedKeys: env.PUBLIC_KEY ?? '',
    faults: { noPorts: false, sshdRefuses: false, sftpBroken: false },
    unlistedUntilMs: 0,
    hostile: null,
    hostKeySwaps: 0,
    timers: new Set(),
    faultTimers: new Set(),
    generation: 0,
    logs: [],
    apiKey: `pod-${id}-${ctx.random.hex(24)}`,
  };
  lifecycle.add(pod);
  ctx.billing.open({ podId: id, name: pod.name, costPerHr: pod.costPerHr, createdAtMs: now });
  podLog(
    pod,
    'system',
    `pod created in ${pod.dataCenterId} (${pod.gpu ? `${pod.gpu.count}x ${pod.gpu.id}` : pod.cpu?.id})`,
  );
  faults.applyPodRules(pod.name, (effect, params) => ctx.podFaults.apply(pod, effect, params));
  lifecycle.runTimeline(pod, 'PROVISIONING');

  const failing = faults.takeCreate5xx();
  if (failing !== null) {
    o.log(`fault: pod ${id} created but answering ${failing}`);
    throw new ProblemError(failing, 'internal error');
  }
  return renderPod(pod, o);
}

/** The body's container fields over the template's; resolved once at create, so `template` stays null. */
function resolveTemplate(ctx: PodContext, body: CreateBody): ContainerSpec {
  const spec: ContainerSpec = {
    image: body.image,
    env: { ...(body.env ?? {}) },
    ports: body.ports,
    args: body.args,
    disk: body.disk,
  };
  if (body.templateId === undefined) return spec;
  const t = ctx.options.templates[body.templateId];
  if (!t) throw notFound('template');
  if (t.serverless) throw new ProblemError(422, `template ${body.templateId} is a serverless template`);
  // Body fields win; env merges per key.
  return {
    image: spec.image ?? t.image,
    env: { ...(t.env ?? {}), ...spec.env },
    ports: spec.ports ?? t.ports,
    args: spec.args ?? t.args,
    disk: spec.disk ?? t.disk,
  };
}

/** The data centers the pod may land in: the body's, narrowed to its network volume's. */
function volumeDataCenters(ctx: PodContext, body: CreateBody): string[] {
  const dataCenterIds = body.dataCenterIds ?? [];
  const volume = body.mounts?.network?.[0];
  if (!volume) return dataCenterIds;
  const v = ctx.options.networkVolumes.find((n) => n.id === volume.volumeId);
  if (!v) throw notFound('network volume');
  // UNCONFIRMED upstream: we reject a volume outside the listed DCs rather than move the pod to it.
  if (dataCenterIds.length > 0 && !dataCenterIds.includes(v.dataCenterId)) {
    throw new ProblemError(
      400,
      `network volume ${v.id} is in data center ${v.dataCenterId}, which is not in dataCenterIds`,
    );
  }
  return [v.dataCenterId];
}
