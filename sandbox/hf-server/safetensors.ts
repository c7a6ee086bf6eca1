// Build and check safetensors files: https://github.com/huggingface/safetensors#format
// Layout: 8-byte little-endian header length n, n bytes of JSON header, then the tensor data.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';

/** The only dtype the sandbox shards use (the Qwen3 checkpoints are BF16). */
export type SafetensorsDtype = 'BF16';

export interface SafetensorsTensorSpec {
  name: string;
  shape: readonly number[];
  dtype?: SafetensorsDtype;
}

export interface BuildSafetensorsShardOptions {
  tensors: readonly SafetensorsTensorSpec[];
  /** Seeds the deterministic pseudo-random tensor data; same seed, same bytes. */
  seed: string;
  /** Extra `__metadata__` entries; `format: pt` is always set, as transformers writes it. */
  metadata?: Record<string, string>;
}

export interface SafetensorsCheck {
  /** True when the file size equals 8 + headerBytes + the largest tensor end offset. */
  complete: boolean;
  actualBytes: number;
  /** The size a complete file would have; null when the header could not be read. */
  expectedBytes: number | null;
  headerBytes: number | null;
  tensorCount: number;
  /** Why the file is not complete; absent when it is. */
  reason?: string;
}

const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = { BF16: 2 };
const HEADER_LENGTH_BYTES = 8;
// huggingface_hub's SAFETENSORS_MAX_HEADER_LENGTH; anything larger is garbage, not a header.
const MAX_HEADER_BYTES = 25_000_000;
// The safetensors writer pads the header with spaces so tensor data starts 8-byte aligned.
const HEADER_ALIGNMENT_BYTES = 8;

/** Number of data bytes a tensor of this shape and dtype takes. */
export function tensorDataBytes(spec: SafetensorsTensorSpec): number {
  const elements = spec.shape.reduce((acc, dim) => acc * dim, 1);
  return elements * BYTES_PER_ELEMENT[spec.dtype ?? 'BF16'];
}

/** A structurally valid safetensors file with deterministic, finite BF16 values. */
export function buildSafetensorsShard(options: BuildSafetensorsShardOptions): Buffer {
  const header: Record<string, unknown> = { __metadata__: { ...options.metadata, format: 'pt' } };
  let offsetBytes = 0;
  for (const tensor of options.tensors) {
    const sizeBytes = tensorDataBytes(tensor);
    header[tensor.name] = {
      dtype: tensor.dtype ?? 'BF16',
      shape: [...tensor.shape],
      data_offsets: [offsetBytes, offsetBytes + sizeBytes],
    };
    offsetBytes += sizeBytes;
  }
  let headerJson = JSON.stringify(header);
  const headerLength = Buffer.byteLength(headerJson);
  headerJson += ' '.repeat((HEADER_ALIGNMENT_BYTES - (headerLength % HEADER_ALIGNMENT_BYTES)) % HEADER_ALIGNMENT_BYTES);
  const headerBuf = Buffer.from(headerJson, 'utf8');

  const out = Buffer.alloc(HEADER_LENGTH_BYTES + headerBuf.length + offsetBytes);
  out.writeBigUInt64LE(BigInt(headerBuf.length), 0);
  headerBuf.copy(out, HEADER_LENGTH_BYTES);
  fillBf16(out.subarray(HEADER_LENGTH_BYTES + headerBuf.length), options.seed);
  return out;
}

/**
 * The offline structural check from pod-side.md 1.6: a complete file has size == 8 + n + max(end offset).
 * Reads only the header when given a path, so it is cheap on multi-GB shards.
 */
export function checkSafetensorsComplete(source: Buffer | string): SafetensorsCheck {
  if (typeof source !== 'string') return checkHeader(source.length, (pos, len) => source.subarray(pos, pos + len));
  const fd = openSync(source, 'r');
  try {
    const { size } = fstatSync(fd);
    return checkHeader(size, (pos, len) => {
      const buf = Buffer.alloc(Math.max(0, Math.min(len, size - pos)));
      const read = readSync(fd, buf, 0, buf.length, pos);
      return buf.subarray(0, read);
    });
  } finally {
    closeSync(fd);
  }
}

function checkHeader(actualBytes: number, read: (pos: number, len: number) => Buffer): SafetensorsCheck {
  const fail = (reason: string, headerBytes: number | null = null): SafetensorsCheck => ({
    complete: false,
    actualBytes,
    expectedBytes: null,
    headerBytes,
    tensorCount: 0,
    reason,
  });
  if (actualBytes < HEADER_LENGTH_BYTES) return fail(`file is ${actualBytes} bytes, shorter than the length prefix`);
  const headerBytes = Number(read(0, HEADER_LENGTH_BYTES).readBigUInt64LE(0));
  if (headerBytes > MAX_HEADER_BYTES) return fail(`header length ${headerBytes} exceeds ${MAX_HEADER_BYTES}`);
  const headerBuf = read(HEADER_LENGTH_BYTES, headerBytes);
  if (headerBuf.length < headerBytes)
    return fail(`header cut short: ${headerBuf.length} of ${headerBytes}`, headerBytes);
  let header: unknown;
  try {
    header = JSON.parse(headerBuf.toString('utf8'));
  } catch {
    return fail('header is not valid JSON', headerBytes);
  }
  if (typeof header !== 'object' || header === null) return fail('header is not a JSON object', headerBytes);
  let maxEndBytes = 0;
  let tensorCount = 0;
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const offsets = (entry as { data_offsets?: unknown }).data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || typeof offsets[1] !== 'number') {
      return fail(`tensor ${name} has no data_offsets`, headerBytes);
    }
    maxEndBytes = Math.max(maxEndBytes, offsets[1]);
    tensorCount += 1;
  }
  const expectedBytes = HEADER_LENGTH_BYTES + headerBytes + maxEndBytes;
  const complete = actualBytes === expectedBytes;
  return {
    complete,
    actualBytes,
    expectedBytes,
    headerBytes,
    tensorCount,
    ...(complete ? {} : { reason: `size ${actualBytes} != expected ${expectedBytes}` }),
  };
}

// xorshift32 seeded from sha256(seed): fast, deterministic across platforms, good enough for filler bytes.
function fillBf16(data: Buffer, seed: string): void {
  let state = createHash('sha256').update(seed).digest().readUInt32LE(0) || 0x9e3779b9;
  for (let i = 0; i + 1 < data.length; i += 2) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    // Sign, exponent 117..124 (|x| roughly 2^-10..2^-3, like trained weights), 7 random mantissa bits.
    const sign = state & 0x1;
    const exponent = 117 + ((state >>> 1) & 0x7);
    const mantissa = (state >>> 4) & 0x7f;
    data.writeUInt16LE((sign << 15) | (exponent << 7) | mantissa, i);
  }
}
