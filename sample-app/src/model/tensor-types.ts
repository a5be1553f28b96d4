// Element types the scoring API accepts, how JSON values map to them, and their Open Inference Protocol names.

export type ElementType =
  | 'float32'
  | 'float64'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'bool'
  | 'string';

export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | string[];

/** A dimension is a fixed size, or null when the model leaves it open (symbolic or unknown). */
export interface TensorSpec {
  name: string;
  type: ElementType;
  dims: Array<number | null>;
  /** The model's names for open dimensions (e.g. "batch"), for messages; null where it gave none. */
  dimNames: Array<string | null>;
}

/** A tensor in plain arrays, ready for onnxruntime. */
export interface HostTensor {
  type: ElementType;
  dims: number[];
  data: TensorData;
}

const V2_DATATYPES: Record<ElementType, string> = {
  float32: 'FP32',
  float64: 'FP64',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  bool: 'BOOL',
  string: 'BYTES',
};

export function toV2Datatype(type: ElementType): string {
  return V2_DATATYPES[type];
}

export function isElementType(type: string): type is ElementType {
  return Object.hasOwn(V2_DATATYPES, type);
}

const INTEGER_RANGES: Partial<Record<ElementType, [number, number]>> = {
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 4294967295],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
};

const FLOAT32_MAX = 3.4028234663852886e38;

export function allocate(type: ElementType, length: number): TensorData {
  switch (type) {
    case 'float32':
      return new Float32Array(length);
    case 'float64':
      return new Float64Array(length);
    case 'int8':
      return new Int8Array(length);
    case 'int16':
      return new Int16Array(length);
    case 'int32':
      return new Int32Array(length);
    case 'int64':
      return new BigInt64Array(length);
    case 'uint8':
      return new Uint8Array(length);
    case 'uint16':
      return new Uint16Array(length);
    case 'uint32':
      return new Uint32Array(length);
    case 'uint64':
      return new BigUint64Array(length);
    case 'bool':
      return new Uint8Array(length);
    case 'string':
      return new Array<string>(length).fill('');
  }
}

/**
 * Stores one JSON value into data[index], or returns why it cannot be stored (as "expected …").
 * Checked: finiteness, float32 range, integer-ness and range, booleans, strings.
 */
export function storeElement(type: ElementType, data: TensorData, index: number, value: unknown): string | undefined {
  switch (type) {
    case 'float32':
    case 'float64':
      if (typeof value !== 'number') return `a number (${type})`;
      if (!Number.isFinite(value)) return `a finite number (${type})`;
      if (type === 'float32' && Math.abs(value) > FLOAT32_MAX) return 'a number within the float32 range (±3.4e38)';
      (data as Float32Array)[index] = value;
      return undefined;
    case 'bool':
      if (typeof value !== 'boolean') return 'true or false (bool)';
      (data as Uint8Array)[index] = value ? 1 : 0;
      return undefined;
    case 'string':
      if (typeof value !== 'string') return 'a string';
      (data as string[])[index] = value;
      return undefined;
    default: {
      const [min, max] = INTEGER_RANGES[type]!;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
        return `an integer from ${min} to ${max} (${type})`;
      }
      if (type === 'int64' || type === 'uint64') (data as BigInt64Array)[index] = BigInt(value);
      else (data as Int32Array)[index] = value;
      return undefined;
    }
  }
}

/** One element as JSON: 64-bit integers as numbers while exact, as decimal strings beyond. */
export function elementToJson(type: ElementType, data: TensorData, index: number): number | boolean | string {
  const value = data[index];
  if (typeof value === 'bigint') {
    const asNumber = Number(value);
    return Number.isSafeInteger(asNumber) ? asNumber : value.toString();
  }
  if (type === 'bool') return value !== 0;
  return value;
}

export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 20 ? `${value.slice(0, 20)}…` : value)}`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean' || value === undefined)
    return `${typeof value} ${String(value)}`;
  return typeof value;
}

export function formatDims(spec: TensorSpec): string {
  return `[${spec.dims.map((dim, i) => dim ?? spec.dimNames[i] ?? '?').join(', ')}]`;
}
