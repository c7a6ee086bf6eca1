// Catalog (GPU types, data centers, CPU flavors) and the capacity model that placement and
// `/v2/catalog/*` availability are both derived from.
import { ProblemError, noCapacity, notFound, validationFailed } from './problems.js';

export type Cloud = 'SECURE' | 'COMMUNITY';
export type Availability = 'NONE' | 'LOW' | 'MEDIUM' | 'HIGH';

export interface GpuTypeSpec {
  id: string;
  name: string;
  pool: string | null;
  manufacturer: 'NVIDIA' | 'AMD' | 'UNKNOWN';
  /** VRAM per GPU, GB. */
  memoryGb: number;
  /** USD per hour for ONE GPU. 0 with maxCount 0 means "not offered on that cloud". */
  price: { secure: number; community: number; serverless?: number };
  maxCount: { secure: number; community: number };
  /** Host RAM and vCPUs that come with each GPU (returned as gpu.memory / gpu.vcpuCount pod totals). */
  hostRamPerGpuGb?: number;
  hostVcpuPerGpu?: number;
  /** CUDA version the hosts report; null for types without CUDA (AMD). */
  cudaVersion?: string | null;
}

export interface DataCenterSpec {
  id: string;
  name: string;
  region: string;
  /** ISO 3166 alpha-2, for the catalog's `countryCodes` filter. */
  countryCode: string;
  globalNetwork: boolean;
  networkVolumeTypes: string[];
  compliance: string[];
}

export interface CpuFlavorSpec {
  id: string;
  name: string;
  group: string;
  vcpu: { min: number; max: number };
  ramGbPerVcpu: number;
  price: { securePerVcpu: number; serverlessPerVcpu: number };
}

/** Free GPUs of one type in one data center and cloud. */
export interface CapacityCell {
  gpuTypeId: string;
  dataCenterId: string;
  cloud: Cloud;
  freeGpus: number;
  cudaVersion?: string | null;
  ramPerGpuGb?: number;
  vcpuPerGpu?: number;
}

interface Cell {
  gpuTypeId: string;
  dataCenterId: string;
  cloud: Cloud;
  freeGpus: number;
  cudaVersion: string | null;
  ramPerGpuGb: number;
  vcpuPerGpu: number;
}

// Prices are illustrative, not RunPod's current list.
export const DEFAULT_GPU_TYPES: GpuTypeSpec[] = [
  gpu('NVIDIA H100 80GB HBM3', 'H100 SXM', 'HOPPER_80', 80, [2.69, 0], [8, 0], { ram: 125, vcpu: 20 }),
  gpu('NVIDIA H200', 'H200 SXM', 'HOPPER_141', 141, [3.59, 0], [8, 0], { ram: 188, vcpu: 24, cuda: '12.9' }),
  gpu('NVIDIA A100 80GB PCIe', 'A100 PCIe', 'AMPERE_80', 80, [1.64, 1.19], [8, 8], { ram: 117, vcpu: 8, cuda: '12.4' }),
  gpu('NVIDIA A100-SXM4-80GB', 'A100 SXM', 'AMPERE_80', 80, [1.74, 1.39], [8, 8], { ram: 125, vcpu: 16, cuda: '12.4' }),
  gpu('NVIDIA L40S', 'L40S', 'ADA_48_PRO', 48, [0.86, 0.79], [8, 8], { ram: 62, vcpu: 12 }),
  gpu('NVIDIA RTX A6000', 'RTX A6000', 'AMPERE_48', 48, [0.49, 0.33], [8, 8], { ram: 50, vcpu: 8, cuda: '12.4' }),
  gpu('NVIDIA GeForce RTX 4090', 'RTX 4090', 'ADA_24', 24, [0.69, 0.34], [8, 8], { ram: 41, vcpu: 6 }),
  gpu('NVIDIA RTX PRO 4500 Blackwell', 'RTX PRO 4500', null, 32, [0.54, 0], [8, 0], { ram: 62, vcpu: 8, cuda: '12.9' }),
  {
    id: 'AMD Instinct MI300X OAM',
    name: 'MI300X',
    pool: null,
    manufacturer: 'AMD',
    memoryGb: 192,
    price: { secure: 2.49, community: 0 },
    maxCount: { secure: 8, community: 0 },
    hostRamPerGpuGb: 283,
    hostVcpuPerGpu: 24,
    cudaVersion: null,
  },
];

export const DEFAULT_DATA_CENTERS: DataCenterSpec[] = [
  dc('US-KS-2', 'US Kansas 2', 'NORTH_AMERICA', 'US', true, ['STANDARD', 'HIGH_PERFORMANCE'], ['SOC_2_TYPE_2']),
  dc('US-GA-2', 'US Georgia 2', 'NORTH_AMERICA', 'US', true, ['STANDARD'], ['SOC_2_TYPE_2']),
  dc('US-TX-3', 'US Texas 3', 'NORTH_AMERICA', 'US', true, ['STANDARD'], []),
  dc('CA-MTL-3', 'CA Montreal 3', 'NORTH_AMERICA', 'CA', true, ['STANDARD'], ['RENEWABLE']),
  dc('EU-RO-1', 'EU Romania 1', 'EUROPE', 'RO', true, ['STANDARD'], ['GDPR']),
  dc('EU-SE-1', 'EU Sweden 1', 'EUROPE', 'SE', true, ['STANDARD', 'HIGH_PERFORMANCE'], ['GDPR', 'RENEWABLE']),
];

export const DEFAULT_CPU_FLAVORS: CpuFlavorSpec[] = [
  {
    id: 'cpu3c',
    name: 'Compute-Optimized',
    group: 'cpu3',
    vcpu: { min: 2, max: 32 },
    ramGbPerVcpu: 2,
    price: { securePerVcpu: 0.03, serverlessPerVcpu: 0.04 },
  },
  {
    id: 'cpu3g',
    name: 'General Purpose',
    group: 'cpu3',
    vcpu: { min: 2, max: 32 },
    ramGbPerVcpu: 4,
    price: { securePerVcpu: 0.04, serverlessPerVcpu: 0.05 },
  },
  {
    id: 'cpu5c',
    name: 'Compute-Optimized',
    group: 'cpu5',
    vcpu: { min: 2, max: 32 },
    ramGbPerVcpu: 2,
    price: { securePerVcpu: 0.05, serverlessPerVcpu: 0.06 },
  },
];

export const DEFAULT_CAPACITY: CapacityCell[] = [
  { gpuTypeId: 'NVIDIA H100 80GB HBM3', dataCenterId: 'US-KS-2', cloud: 'SECURE', freeGpus: 8 },
  { gpuTypeId: 'NVIDIA H100 80GB HBM3', dataCenterId: 'EU-RO-1', cloud: 'SECURE', freeGpus: 4 },
  { gpuTypeId: 'NVIDIA H200', dataCenterId: 'US-GA-2', cloud: 'SECURE', freeGpus: 8 },
  { gpuTypeId: 'NVIDIA H200', dataCenterId: 'EU-SE-1', cloud: 'SECURE', freeGpus: 8 },
  { gpuTypeId: 'NVIDIA A100 80GB PCIe', dataCenterId: 'US-KS-2', cloud: 'SECURE', freeGpus: 4 },
  { gpuTypeId: 'NVIDIA A100 80GB PCIe', dataCenterId: 'CA-MTL-3', cloud: 'COMMUNITY', freeGpus: 4 },
  { gpuTypeId: 'NVIDIA A100-SXM4-80GB', dataCenterId: 'US-TX-3', cloud: 'SECURE', freeGpus: 4 },
  { gpuTypeId: 'NVIDIA L40S', dataCenterId: 'EU-RO-1', cloud: 'SECURE', freeGpus: 8 },
  { gpuTypeId: 'NVIDIA L40S', dataCenterId: 'US-TX-3', cloud: 'SECURE', freeGpus: 4 },
  { gpuTypeId: 'NVIDIA RTX A6000', dataCenterId: 'US-TX-3', cloud: 'SECURE', freeGpus: 4 },
  { gpuTypeId: 'NVIDIA RTX A6000', dataCenterId: 'EU-SE-1', cloud: 'COMMUNITY', freeGpus: 4 },
  { gpuTypeId: 'NVIDIA GeForce RTX 4090', dataCenterId: 'EU-RO-1', cloud: 'COMMUNITY', freeGpus: 8 },
  { gpuTypeId: 'NVIDIA GeForce RTX 4090', dataCenterId: 'US-TX-3', cloud: 'SECURE', freeGpus: 4 },
  { gpuTypeId: 'NVIDIA RTX PRO 4500 Blackwell', dataCenterId: 'EU-RO-1', cloud: 'SECURE', freeGpus: 4 },
  { gpuTypeId: 'AMD Instinct MI300X OAM', dataCenterId: 'US-TX-3', cloud: 'SECURE', freeGpus: 8 },
];

/** What a GPU create asks of placement (already schema-valid). */
export interface GpuPlacementRequest {
  gpuTypeId: string;
  count: number;
  cloud: Cloud;
  dataCenterIds: string[];
  allowedCudaVersions?: string[] | undefined;
  minCudaVersion?: string | undefined;
  minRamPerGpu?: number | undefined;
  minVcpuCountPerGpu?: number | undefined;
  globalNetworking?: boolean | undefined;
}

export interface Placement {
  cellKey: string;
  gpuTypeId: string;
  dataCenterId: string;
  cloud: Cloud;
  count: number;
  cudaVersion: string | null;
  /** Pod totals. */
  vcpuCount: number;
  memoryGb: number;
  /** USD per hour for the pod: price x count. */
  costPerHr: number;
}

export interface CatalogOptions {
  gpuTypes?: GpuTypeSpec[] | undefined;
  dataCenters?: DataCenterSpec[] | undefined;
  cpuFlavors?: CpuFlavorSpec[] | undefined;
  capacity?: CapacityCell[] | undefined;
  /** An unknown gpu.id is the no-capacity 400 by default (UNCONFIRMED); 'validation' makes it a 422. */
  unknownGpu?: 'no-capacity' | 'validation' | undefined;
}

export class CapacityModel {
  readonly gpuTypes: Map<string, GpuTypeSpec>;
  readonly dataCenters: Map<string, DataCenterSpec>;
  readonly cpuFlavors: Map<string, CpuFlavorSpec>;
  readonly #cells = new Map<string, Cell>();
  readonly #unknownGpu: 'no-capacity' | 'validation';
  /** When set, the catalog reports HIGH everywhere while creates still use the real capacity. */
  staleCatalog = false;

  constructor(options: CatalogOptions = {}) {
    this.gpuTypes = new Map((options.gpuTypes ?? DEFAULT_GPU_TYPES).map((g) => [g.id, g]));
    this.dataCenters = new Map((options.dataCenters ?? DEFAULT_DATA_CENTERS).map((d) => [d.id, d]));
    this.cpuFlavors = new Map((options.cpuFlavors ?? DEFAULT_CPU_FLAVORS).map((c) => [c.id, c]));
    this.#unknownGpu = options.unknownGpu ?? 'no-capacity';
    this.setCapacity(options.capacity ?? DEFAULT_CAPACITY, { replace: true });
  }

  /**
   * Sets the free GPU count of each given cell (creating it). With `replace`, every other cell is dropped.
   * @throws Error naming an unknown GPU type or data center.
   */
  setCapacity(cells: CapacityCell[], opts: { replace?: boolean } = {}): void {
    this.checkCells(cells);
    if (opts.replace) this.#cells.clear();
    for (const c of cells) {
      const type = this.gpuTypes.get(c.gpuTypeId) as GpuTypeSpec;
      const key = cellKey(c.gpuTypeId, c.dataCenterId, c.cloud);
      const prev = this.#cells.get(key);
      this.#cells.set(key, {
        gpuTypeId: c.gpuTypeId,
        dataCenterId: c.dataCenterId,
        cloud: c.cloud,
        freeGpus: c.freeGpus,
        cudaVersion: c.cudaVersion !== undefined ? c.cudaVersion : (prev?.cudaVersion ?? defaultCuda(type)),
        ramPerGpuGb: c.ramPerGpuGb ?? prev?.ramPerGpuGb ?? type.hostRamPerGpuGb ?? Math.max(32, type.memoryGb),
        vcpuPerGpu: c.vcpuPerGpu ?? prev?.vcpuPerGpu ?? type.hostVcpuPerGpu ?? 8,
      });
    }
  }

  /** @throws Error naming an unknown GPU type or data center, or a bad free-GPU count. */
  checkCells(cells: CapacityCell[]): void {
    for (const c of cells) {
      if (!this.gpuTypes.has(c.gpuTypeId)) throw new Error(`unknown GPU type '${c.gpuTypeId}'`);
      if (!this.dataCenters.has(c.dataCenterId)) throw new Error(`unknown data center '${c.dataCenterId}'`);
      if (!Number.isInteger(c.freeGpus) || c.freeGpus < 0) throw new Error('freeGpus must be an integer >= 0');
    }
  }

  capacity(): CapacityCell[] {
    return [...this.#cells.values()].map((c) => ({ ...c }));
  }

  /**
   * Chooses exactly one cell for a GPU create, or throws the no-capacity 400. DCs are enforced, never
   * preferences; among the fitting cells the one with most free GPUs wins (ties: listed order, then catalog order).
   */
  placeGpu(req: GpuPlacementRequest): Placement {
    const type = this.gpuTypes.get(req.gpuTypeId);
    if (!type) {
      if (this.#unknownGpu === 'validation') throw validationFailed([`$.gpu.id: unknown GPU type '${req.gpuTypeId}'`]);
      throw noCapacity();
    }
    const maxCount = req.cloud === 'SECURE' ? type.maxCount.secure : type.maxCount.community;
    if (req.count > maxCount) throw noCapacity();
    const order = req.dataCenterIds.length > 0 ? req.dataCenterIds : [...this.dataCenters.keys()];
    const fits = [...this.#cells.values()].filter((c) => {
      if (c.gpuTypeId !== type.id || c.cloud !== req.cloud || c.freeGpus < req.count) return false;
      if (!order.includes(c.dataCenterId)) return false;
      if (req.globalNetworking && !this.dataCenters.get(c.dataCenterId)?.globalNetwork) return false;
      if (req.minRamPerGpu !== undefined && c.ramPerGpuGb < req.minRamPerGpu) return false;
      if (req.minVcpuCountPerGpu !== undefined && c.vcpuPerGpu < req.minVcpuCountPerGpu) return false;
      return cudaMatches(c.cudaVersion, req.allowedCudaVersions, req.minCudaVersion);
    });
    fits.sort((a, b) => b.freeGpus - a.freeGpus || order.indexOf(a.dataCenterId) - order.indexOf(b.dataCenterId));
    const cell = fits[0];
    if (!cell) throw noCapacity();
    cell.freeGpus -= req.count;
    const price = req.cloud === 'SECURE' ? type.price.secure : type.price.community;
    return {
      cellKey: cellKey(cell.gpuTypeId, cell.dataCenterId, cell.cloud),
      gpuTypeId: type.id,
      dataCenterId: cell.dataCenterId,
      cloud: cell.cloud,
      count: req.count,
      cudaVersion: cell.cudaVersion,
      vcpuCount: cell.vcpuPerGpu * req.count,
      memoryGb: cell.ramPerGpuGb * req.count,
      costPerHr: round6(price * req.count),
    };
  }

  /** Takes `count` GPUs from a cell again (start after stop: the pod is pinned to its host). */
  reacquire(key: string, count: number): boolean {
    const cell = this.#cells.get(key);
    if (!cell || cell.freeGpus < count) return false;
    cell.freeGpus -= count;
    return true;
  }

  release(key: string, count: number): void {
    const cell = this.#cells.get(key);
    if (cell) cell.freeGpus += count;
  }

  // ---- catalog rendering -------------------------------------------------------------------------

  /** `GET /v2/catalog/gpus[/{id}]`. */
  gpuCatalog(query: URLSearchParams, id?: string): unknown {
    const include = parseList(query.get('include'));
    const product = parseList(query.get('product'));
    const withAvailability = include.length > 0;
    for (const v of include) if (v !== 'AVAILABILITY') throw enumError('include', ['AVAILABILITY']);
    if (withAvailability && product.length === 0) {
      throw new ProblemError(400, 'include=AVAILABILITY requires the product parameter');
    }
    if (!withAvailability && product.length > 0) {
      throw new ProblemError(400, 'product is only valid together with include=AVAILABILITY');
    }
    for (const v of product)
      if (!['POD', 'CLUSTER', 'SERVERLESS'].includes(v)) throw enumError('product', ['POD', 'CLUSTER', 'SERVERLESS']);
    const countries = parseList(query.get('countryCodes'));
    if (countries.length > 0 && !withAvailability) {
      throw new ProblemError(400, 'countryCodes is only valid together with include=AVAILABILITY');
    }
    for (const c of countries) {
      if (!/^[A-Z]{2}$/.test(c)) throw validationFailed([`$.countryCodes: '${c}' is not an ISO 3166 alpha-2 code`]);
    }
    const count = parsePositiveInt(query.get('count'), 'count') ?? 1;
    const cloud = parseCloud(query.get('cloud')) ?? 'SECURE';
    const cudaVersions = parseList(query.get('cudaVersions'));
    const minCuda = query.get('minCudaVersion') ?? undefined;
    if (cudaVersions.length > 0 && minCuda !== undefined) {
      throw new ProblemError(400, 'cudaVersions and minCudaVersion are mutually exclusive');
    }
    for (const v of cudaVersions)
      if (!/^\d+(\.\d+)?$/.test(v)) throw validationFailed([`$.cudaVersions: '${v}' is not a CUDA version`]);
    if (minCuda !== undefined && !/^\d+(\.\d+)?$/.test(minCuda)) {
      throw validationFailed([`$.minCudaVersion: '${minCuda}' is not a CUDA version`]);
    }

    const render = (type: GpuTypeSpec): Record<string, unknown> => {
      const base: Record<string, unknown> = {
        id: type.id,
        name: type.name,
        pool: type.pool,
        manufacturer: type.manufacturer,
        memory: type.memoryGb,
        secure: type.maxCount.secure > 0,
        community: type.maxCount.community > 0,
        price: { ...type.price },
        maxCount: { ...type.maxCount },
      };
      if (!withAvailability) return base;
      return { ...base, ...this.#gpuAvailability(type, { count, cloud, countries, cudaVersions, minCuda }) };
    };
    if (id !== undefined) {
      const type = this.gpuTypes.get(id);
      if (!type) throw notFound('gpu type');
      return render(type);
    }
    return { gpus: [...this.gpuTypes.values()].map(render) };
  }

  #gpuAvailability(
    type: GpuTypeSpec,
    f: { count: number; cloud: Cloud; countries: string[]; cudaVersions: string[]; minCuda: string | undefined },
  ): Record<string, unknown> {
    const maxCount = f.cloud === 'SECURE' ? type.maxCount.secure : type.maxCount.community;
    const dcOk = (id: string): boolean => {
      const d = this.dataCenters.get(id);
      return d !== undefined && (f.countries.length === 0 || f.countries.includes(d.countryCode));
    };
    const cells = [...this.#cells.values()].filter(
      (c) => c.gpuTypeId === type.id && c.cloud === f.cloud && dcOk(c.dataCenterId),
    );
    const cudaOk = (v: string | null): boolean =>
      cudaMatches(v, f.cudaVersions.length > 0 ? f.cudaVersions : undefined, f.minCuda);
    const bucketOf = (free: number): Availability =>
      this.staleCatalog ? 'HIGH' : f.count > maxCount ? 'NONE' : bucket(Math.floor(free / f.count));
    const perDc = new Map<string, number>();
    for (const c of cells) {
      if (!cudaOk(c.cudaVersion)) continue;
      perDc.set(c.dataCenterId, (perDc.get(c.dataCenterId) ?? 0) + c.freeGpus);
    }
    const dataCenters = [...perDc.entries()]
      .map(([id, free]) => ({ id, name: this.dataCenters.get(id)?.name ?? id, availability: bucketOf(free) }))
      .filter((d) => d.availability !== 'NONE');
    const order: Availability[] = ['NONE', 'LOW', 'MEDIUM', 'HIGH'];
    const best = dataCenters.reduce<Availability>(
      (acc, d) => (order.indexOf(d.availability) > order.indexOf(acc) ? d.availability : acc),
      this.staleCatalog ? 'HIGH' : 'NONE',
    );
    const out: Record<string, unknown> = { availability: best };
    // Omitted entirely when the type is unavailable everywhere.
    if (dataCenters.length > 0) out.dataCenters = dataCenters;
    if (type.manufacturer === 'NVIDIA') {
      const versions = new Set<string>();
      for (const c of this.#cells.values()) if (c.gpuTypeId === type.id && c.cudaVersion) versions.add(c.cudaVersion);
      out.cudaVersions = [...versions].sort(compareCuda).map((version) => ({
        version,
        available:
          this.staleCatalog ||
          cells.some((c) => c.cudaVersion === version && c.freeGpus >= f.count && f.count <= maxCount),
      }));
    }
    return out;
  }

  /** `GET /v2/catalog/datacenters[/{id}]`. */
  dataCenterCatalog(query: URLSearchParams, id?: string): unknown {
    const include = parseList(query.get('include'));
    for (const v of include) {
      if (!['GPU_AVAILABILITY', 'CPU_AVAILABILITY'].includes(v)) {
        throw enumError('include', ['GPU_AVAILABILITY', 'CPU_AVAILABILITY']);
      }
    }
    const regions = parseList(query.get('regions'));
    const volumeTypes = parseList(query.get('networkVolumeTypes'));
    const compliance = parseList(query.get('compliance'));
    const globalNetwork = query.get('globalNetwork');
    if (globalNetwork !== null && globalNetwork !== 'true' && globalNetwork !== 'false') {
      throw validationFailed([`$.globalNetwork: expected boolean, but got '${globalNetwork}'`]);
    }
    const render = (d: DataCenterSpec): Record<string, unknown> => {
      const out: Record<string, unknown> = {
        id: d.id,
        name: d.name,
        region: d.region,
        globalNetwork: d.globalNetwork,
        networkVolumeTypes: [...d.networkVolumeTypes],
        compliance: [...d.compliance],
      };
      if (include.includes('GPU_AVAILABILITY')) {
        const gpus = [...this.gpuTypes.values()]
          .map((t) => {
            const free = [...this.#cells.values()]
              .filter((c) => c.gpuTypeId === t.id && c.dataCenterId === d.id)
              .reduce((n, c) => n + c.freeGpus, 0);
            return { id: t.id, name: t.name, availability: this.staleCatalog ? 'HIGH' : bucket(free) };
          })
          .filter((g) => g.availability !== 'NONE');
        if (gpus.length > 0) out.gpuAvailability = gpus;
      }
      if (include.includes('CPU_AVAILABILITY') && this.cpuFlavors.size > 0) {
        out.cpuAvailability = [...this.cpuFlavors.values()].map((c) => ({
          id: c.id,
          name: c.name,
          availability: 'HIGH',
        }));
      }
      return out;
    };
    if (id !== undefined) {
      const d = this.dataCenters.get(id);
      if (!d) throw notFound('data center');
      return render(d);
    }
    const list = [...this.dataCenters.values()].filter(
      (d) =>
        (regions.length === 0 || regions.includes(d.region)) &&
        volumeTypes.every((v) => d.networkVolumeTypes.includes(v)) &&
        compliance.every((c) => d.compliance.includes(c)) &&
        (globalNetwork === null || String(d.globalNetwork) === globalNetwork),
    );
    return { dataCenters: list.map(render) };
  }

  /** `GET /v2/catalog/cpus[/{id}]`. CPU capacity is unlimited in the emulator. */
  cpuCatalog(query: URLSearchParams, id?: string): unknown {
    const include = parseList(query.get('include'));
    const product = parseList(query.get('product'));
    for (const v of include) if (v !== 'AVAILABILITY') throw enumError('include', ['AVAILABILITY']);
    if (include.length > 0 && product.length === 0)
      throw new ProblemError(400, 'include=AVAILABILITY requires the product parameter');
    if (include.length === 0 && product.length > 0) {
      throw new ProblemError(400, 'product is only valid together with include=AVAILABILITY');
    }
    const vcpu = parsePositiveInt(query.get('vcpuCount'), 'vcpuCount');
    if (vcpu !== undefined && !isPowerOfTwo(vcpu))
      throw validationFailed([`$.vcpuCount: ${vcpu} is not a power of two`]);
    const render = (c: CpuFlavorSpec): Record<string, unknown> => ({
      id: c.id,
      name: c.name,
      group: c.group,
      vcpu: { ...c.vcpu },
      ramGbPerVcpu: c.ramGbPerVcpu,
      price: { ...c.price },
      ...(include.length > 0
        ? {
            availability: 'HIGH',
            dataCenters: [...this.dataCenters.values()].map((d) => ({ id: d.id, name: d.name, availability: 'HIGH' })),
          }
        : {}),
    });
    if (id !== undefined) {
      const c = this.cpuFlavors.get(id);
      if (!c) throw notFound('cpu type');
      return render(c);
    }
    const list = [...this.cpuFlavors.values()].filter(
      (c) => vcpu === undefined || (vcpu >= c.vcpu.min && vcpu <= c.vcpu.max),
    );
    return { cpus: list.map(render) };
  }
}

export function cellKey(gpuTypeId: string, dataCenterId: string, cloud: Cloud): string {
  return `${gpuTypeId}|${dataCenterId}|${cloud}`;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Numeric CUDA comparison: 12.11 > 12.2. */
export function compareCuda(a: string, b: string): number {
  const [am = 0, an = 0] = a.split('.').map(Number);
  const [bm = 0, bn = 0] = b.split('.').map(Number);
  return am - bm || an - bn;
}

function cudaMatches(version: string | null, allowed: string[] | undefined, min: string | undefined): boolean {
  if (allowed && allowed.length > 0) return version !== null && allowed.includes(version);
  if (min !== undefined) return version !== null && compareCuda(version, min) >= 0;
  return true;
}

function bucket(units: number): Availability {
  if (units <= 0) return 'NONE';
  if (units === 1) return 'LOW';
  if (units <= 3) return 'MEDIUM';
  return 'HIGH';
}

function parseList(v: string | null): string[] {
  return v === null
    ? []
    : v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
}

function parsePositiveInt(v: string | null, name: string): number | undefined {
  if (v === null) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw validationFailed([`$.${name}: must be an integer >= 1 but found '${v}'`]);
  return n;
}

function parseCloud(v: string | null): Cloud | undefined {
  if (v === null) return undefined;
  if (v !== 'SECURE' && v !== 'COMMUNITY') throw enumError('cloud', ['SECURE', 'COMMUNITY']);
  return v;
}

function enumError(param: string, values: string[]): ProblemError {
  return validationFailed([`$.${param}: value must be one of ${values.map((v) => `'${v}'`).join(', ')}`]);
}

function defaultCuda(type: GpuTypeSpec): string | null {
  if (type.cudaVersion !== undefined) return type.cudaVersion;
  return type.manufacturer === 'NVIDIA' ? '12.8' : null;
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

function gpu(
  id: string,
  name: string,
  pool: string | null,
  memoryGb: number,
  [secure, community]: [number, number],
  [maxSecure, maxCommunity]: [number, number],
  host: { ram: number; vcpu: number; cuda?: string },
): GpuTypeSpec {
  return {
    id,
    name,
    pool,
    manufacturer: 'NVIDIA',
    memoryGb,
    price: { secure, community },
    maxCount: { secure: maxSecure, community: maxCommunity },
    hostRamPerGpuGb: host.ram,
    hostVcpuPerGpu: host.vcpu,
    cudaVersion: host.cuda ?? '12.8',
  };
}

function dc(
  id: string,
  name: string,
  region: string,
  countryCode: string,
  globalNetwork: boolean,
  networkVolumeTypes: string[],
  compliance: string[],
): DataCenterSpec {
  return { id, name, region, countryCode, globalNetwork, networkVolumeTypes, compliance };
}
