// Turns request JSON into tensors checked against the model's signature. Every failure is an
// InputError (HTTP 400) whose message names the input, the expected shape and what came.
import {
  allocate,
  describeType,
  formatDims,
  type HostTensor,
  storeElement,
  type TensorSpec,
  toV2Datatype,
} from '../model/tensor-types.js';

export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

export interface InputLimits {
  /** The most rows (size of an open first dimension) one request may carry. */
  maxRows: number;
}

function expectation(spec: TensorSpec): string {
  return `expected shape ${formatDims(spec)} of ${spec.type}`;
}

/** Checks a concrete shape against the signature: rank, fixed dimensions, empty and row limits. */
export function checkShape(spec: TensorSpec, dims: number[], limits: InputLimits): void {
  const got = () => `[${dims.join(', ')}]`;
  if (dims.length !== spec.dims.length) {
    throw new InputError(
      `input "${spec.name}": ${expectation(spec)} (rank ${spec.dims.length}), got shape ${got()} (rank ${dims.length})`,
    );
  }
  for (let axis = 0; axis < dims.length; axis++) {
    const size = dims[axis];
    const fixed = spec.dims[axis];
    if (fixed !== null && size !== fixed) {
      throw new InputError(
        `input "${spec.name}": ${expectation(spec)}, got shape ${got()}: dimension ${axis} must be ${fixed}`,
      );
    }
    if (size === 0) {
      throw new InputError(
        `input "${spec.name}": ${expectation(spec)}, got shape ${got()}: dimension ${axis} is empty`,
      );
    }
  }
  if (spec.dims.length > 0 && spec.dims[0] === null && dims[0] > limits.maxRows) {
    throw new InputError(
      `input "${spec.name}": ${dims[0]} rows is more than the ${limits.maxRows} allowed in one request (MAX_ROWS_PER_REQUEST)`,
    );
  }
}

function elementCount(dims: number[]): number {
  return dims.reduce((product, size) => product * size, 1);
}

function badElement(spec: TensorSpec, where: string, value: unknown, problem: string): InputError {
  return new InputError(`input "${spec.name}": ${where} is ${describeType(value)}, expected ${problem}`);
}

/** A nested JSON array (e.g. [[1,2,3,4],[5,6,7,8]]) whose nesting gives the shape. */
export function tensorFromNested(spec: TensorSpec, value: unknown, limits: InputLimits): HostTensor {
  // The shape is read along the first elements; the fill below then checks every array against it.
  const dims: number[] = [];
  let probe = value;
  while (Array.isArray(probe) && dims.length <= spec.dims.length) {
    dims.push(probe.length);
    probe = probe[0];
  }
  if (dims.length === 0 && spec.dims.length > 0) {
    throw new InputError(`input "${spec.name}": ${expectation(spec)} as nested arrays, got ${describeType(value)}`);
  }
  if (dims.length > spec.dims.length) {
    throw new InputError(
      `input "${spec.name}": ${expectation(spec)} (rank ${spec.dims.length}), got arrays nested deeper than ${spec.dims.length} levels`,
    );
  }
  checkShape(spec, dims, limits);
  const tensor: HostTensor = { type: spec.type, dims, data: allocate(spec.type, elementCount(dims)) };
  let next = 0;
  const fill = (node: unknown, depth: number, path: number[]): void => {
    if (depth === dims.length) {
      const problem = storeElement(spec.type, tensor.data, next++, node);
      if (problem !== undefined)
        throw badElement(spec, `${spec.name}${path.map((i) => `[${i}]`).join('')}`, node, problem);
      return;
    }
    if (!Array.isArray(node) || node.length !== dims[depth]) {
      const at = `${spec.name}${path.map((i) => `[${i}]`).join('')}`;
      const what = Array.isArray(node) ? `${node.length} elements` : describeType(node);
      throw new InputError(
        `input "${spec.name}": ragged or malformed array: ${at} has ${what}, but shape [${dims.join(', ')}] needs ${dims[depth]} elements there (${expectation(spec)})`,
      );
    }
    for (let i = 0; i < node.length; i++) {
      path.push(i);
      fill(node[i], depth + 1, path);
      path.pop();
    }
  };
  fill(value, 0, []);
  return tensor;
}

/** An Open Inference Protocol tensor: explicit shape and datatype, data flat in row-major order (or nested). */
export function tensorFromV2(spec: TensorSpec, input: Record<string, unknown>, limits: InputLimits): HostTensor {
  const { shape, datatype, data } = input;
  const expectedDatatype = toV2Datatype(spec.type);
  if (datatype !== expectedDatatype) {
    throw new InputError(`input "${spec.name}": datatype must be ${expectedDatatype}, got ${describeType(datatype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((size) => Number.isSafeInteger(size) && size >= 0)) {
    throw new InputError(
      `input "${spec.name}": "shape" must be an array of non-negative integers, such as [1, ${spec.dims.slice(1).join(', ')}]`,
    );
  }
  const dims = shape as number[];
  checkShape(spec, dims, limits);
  if (!Array.isArray(data)) {
    throw new InputError(
      `input "${spec.name}": "data" must be an array of ${elementCount(dims)} elements in row-major order, got ${describeType(data)}`,
    );
  }
  const flat = data.some(Array.isArray) ? flattenBounded(data, dims.length) : data;
  if (flat?.length !== elementCount(dims)) {
    throw new InputError(
      `input "${spec.name}": shape [${dims.join(', ')}] needs ${elementCount(dims)} elements, got ${flat === undefined ? 'arrays nested deeper than the shape' : flat.length}`,
    );
  }
  const tensor: HostTensor = { type: spec.type, dims, data: allocate(spec.type, flat.length) };
  for (let i = 0; i < flat.length; i++) {
    const problem = storeElement(spec.type, tensor.data, i, flat[i]);
    if (problem !== undefined) throw badElement(spec, `data[${i}]`, flat[i], problem);
  }
  return tensor;
}

/** Flattens arrays nested at most maxDepth deep; undefined when deeper (so hostile nesting costs little). */
function flattenBounded(data: unknown[], maxDepth: number): unknown[] | undefined {
  const out: unknown[] = [];
  const walk = (node: unknown[], depth: number): boolean => {
    if (depth > maxDepth) return false;
    for (const item of node) {
      if (Array.isArray(item)) {
        if (!walk(item, depth + 1)) return false;
      } else {
        out.push(item);
      }
    }
    return true;
  };
  return walk(data, 1) ? out : undefined;
}
