// The body of POST /score: {"inputs": {"<name>": <nested array>}} or, for single-input models,
// {"data": <nested array>}. Outputs go back as nested arrays keyed by output name.
import type { ModelSignature } from '../model/model-loader.js';
import { elementToJson, type HostTensor } from '../model/tensor-types.js';
import type { Feeds } from './micro-batcher.js';
import { InputError, type InputLimits, tensorFromNested } from './tensor-input.js';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseScoreBody(body: unknown, signature: ModelSignature, limits: InputLimits): Feeds {
  const names = signature.inputs.map((spec) => spec.name);
  // Spelled out only for an error message: a valid request never needs it.
  const form = () => `{"inputs": {${names.map((name) => `"${name}": [...]`).join(', ')}}}`;
  if (!isPlainObject(body)) {
    throw new InputError(`the request body must be a JSON object such as ${form()}`);
  }
  const extra = Object.keys(body).filter((key) => key !== 'inputs' && key !== 'data');
  if (extra.length > 0) {
    throw new InputError(
      `unknown field${extra.length > 1 ? 's' : ''} ${extra.map((k) => `"${k}"`).join(', ')} in the request body; expected ${form()}`,
    );
  }
  let inputs: Record<string, unknown>;
  if ('data' in body) {
    if ('inputs' in body) throw new InputError('send either "inputs" or "data", not both');
    if (names.length !== 1) {
      throw new InputError(
        `"data" is only for single-input models; this model has inputs ${names.map((n) => `"${n}"`).join(', ')}: send ${form()}`,
      );
    }
    inputs = { [names[0]]: body.data };
  } else if (isPlainObject(body.inputs)) {
    inputs = body.inputs;
  } else {
    throw new InputError(`"inputs" must be an object of input name to nested array, such as ${form()}`);
  }
  const unknown = Object.keys(inputs).filter((name) => !names.includes(name));
  if (unknown.length > 0) {
    throw new InputError(
      `unknown input${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `"${n}"`).join(', ')}; the model's inputs are ${names.map((n) => `"${n}"`).join(', ')}`,
    );
  }
  const feeds: Feeds = {};
  for (const spec of signature.inputs) {
    if (!(spec.name in inputs))
      throw new InputError(
        `missing input "${spec.name}"; the model's inputs are ${names.map((n) => `"${n}"`).join(', ')}`,
      );
    feeds[spec.name] = tensorFromNested(spec, inputs[spec.name], limits);
  }
  checkSameRows(feeds, signature);
  return feeds;
}

/** Inputs with an open first dimension must agree on it, or the model cannot pair their rows. */
export function checkSameRows(feeds: Feeds, signature: ModelSignature): void {
  const entries = signature.inputs
    .filter((spec) => spec.dims[0] === null)
    .map((spec) => [spec.name, feeds[spec.name]] as const);
  if (entries.length < 2) return;
  const [firstName, first] = entries[0];
  for (const [name, tensor] of entries.slice(1)) {
    if (tensor.dims[0] !== first.dims[0]) {
      throw new InputError(
        `inputs "${firstName}" and "${name}" have ${first.dims[0]} and ${tensor.dims[0]} rows; every input needs the same number of rows`,
      );
    }
  }
}

/** A tensor as nested JSON arrays following its dims. */
export function toNested(tensor: HostTensor): unknown {
  let index = 0;
  const build = (depth: number): unknown => {
    if (depth === tensor.dims.length) return elementToJson(tensor.type, tensor.data, index++);
    const out = new Array<unknown>(tensor.dims[depth]);
    for (let i = 0; i < out.length; i++) out[i] = build(depth + 1);
    return out;
  };
  return build(0);
}

/** A tensor as one flat row-major array. */
export function toFlat(tensor: HostTensor): unknown[] {
  const out = new Array<unknown>(tensor.data.length);
  for (let i = 0; i < out.length; i++) out[i] = elementToJson(tensor.type, tensor.data, i);
  return out;
}
