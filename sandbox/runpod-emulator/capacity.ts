// Capacity on the state side: where a new pod lands (GPU cell or CPU data center) and scheduled capacity changes.
import type { CapacityCell, CapacityModel, Cloud } from './catalog.js';
import { round6 } from './billing.js';
import type { PodRecord } from './model.js';
import { ProblemError, noCapacity } from './problems.js';
import type { CreateBody } from './validation.js';

/** Where a pod runs and what it costs; spread into its record. */
export interface Placement {
  /** Capacity cell holding the GPUs (null for a CPU pod). */
  cellKey: string | null;
  dataCenterId: string;
  cudaVersion: string | null;
  costPerHr: number;
  gpu: PodRecord['gpu'];
  cpu: PodRecord['cpu'];
}

/**
 * Places a validated create body; a GPU placement holds its GPUs from now on.
 * @throws ProblemError 403 for a restricted GPU type, 400 (no capacity) when nothing fits.
 */
export function placePod(input: {
  body: CreateBody;
  cloud: Cloud;
  dataCenterIds: string[];
  catalog: CapacityModel;
  isRestricted: (gpuTypeId: string) => boolean;
}): Placement {
  const { body, catalog } = input;
  if (body.gpu) {
    if (input.isRestricted(body.gpu.id)) throw new ProblemError(403, 'Your account cannot access the requested pool');
    const p = catalog.placeGpu({
      gpuTypeId: body.gpu.id,
      count: body.gpu.count ?? 1,
      cloud: input.cloud,
      dataCenterIds: input.dataCenterIds,
      allowedCudaVersions: body.gpu.allowedCudaVersions,
      minCudaVersion: body.gpu.minCudaVersion,
      minRamPerGpu: body.gpu.minRamPerGpu,
      minVcpuCountPerGpu: body.gpu.minVcpuCountPerGpu,
      globalNetworking: body.globalNetworking,
    });
    return {
      cellKey: p.cellKey,
      dataCenterId: p.dataCenterId,
      cudaVersion: p.cudaVersion,
      costPerHr: p.costPerHr,
      gpu: { id: p.gpuTypeId, count: p.count, vcpuCount: p.vcpuCount, memory: p.memoryGb },
      cpu: null,
    };
  }
  const cpu = body.cpu as { id: string; vcpuCount: number };
  const flavor = catalog.cpuFlavors.get(cpu.id);
  const dcs = input.dataCenterIds.length > 0 ? input.dataCenterIds : [...catalog.dataCenters.keys()];
  const dc = dcs.find((d) => catalog.dataCenters.has(d));
  if (!flavor || !dc) throw noCapacity();
  return {
    cellKey: null,
    dataCenterId: dc,
    cudaVersion: null,
    costPerHr: round6(flavor.price.securePerVcpu * cpu.vcpuCount),
    gpu: null,
    cpu: { id: flavor.id, vcpuCount: cpu.vcpuCount, memory: flavor.ramGbPerVcpu * cpu.vcpuCount },
  };
}

/** `POST /_control/capacity`: changes now, or `afterMs` from now. */
export class ScheduledCapacity {
  readonly #catalog: CapacityModel;
  readonly #log: (line: string) => void;
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopped = false;

  constructor(catalog: CapacityModel, log: (line: string) => void) {
    this.#catalog = catalog;
    this.#log = log;
  }

  /** Cells are checked at once either way. @throws Error on an unknown GPU type or data center. */
  set(update: { cells: CapacityCell[]; replace: boolean; afterMs: number }): void {
    this.#catalog.checkCells(update.cells);
    if (update.afterMs <= 0) {
      this.#catalog.setCapacity(update.cells, { replace: update.replace });
      return;
    }
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.#stopped) return;
      this.#catalog.setCapacity(update.cells, { replace: update.replace });
      this.#log(`capacity changed (scheduled): ${update.cells.length} cell(s)`);
    }, update.afterMs);
    this.#timers.add(timer);
  }

  /** Cancels every scheduled change. */
  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
