// The Open Inference Protocol (KServe v2) inference request: {"id"?, "inputs": [{"name", "shape",
// "datatype", "data"}], "outputs"?: [{"name"}]}, checked against the model's signature.
import type { ModelSignature } from '../model/model-loader.js';
import { type HostTensor, toV2Datatype } from '../model/tensor-types.js';
import type { Feeds } from '../scoring/micro-batcher.js';
import { checkSameRows, toFlat } from '../scoring/score-request.js';
import { InputError, type InputLimits, tensorFromV2 } from '../scoring/tensor-input.js';

export interface InferRequest {
  id?: string;
  feeds: Feeds;
  outputNames: string[];
}

export interface InferOutputTensor {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseInferRequest(body: unknown, signature: ModelSignature, limits: InputLimits): InferRequest {
  const names = signature.inputs.map((spec) => spec.name);
  const example = `{"inputs": [{"name": "${names[0]}", "shape": [...], "datatype": "${toV2Datatype(signature.inputs[0].type)}", "data": [...]}]}`;
  if (!isPlainObject(body)) throw new InputError(`the request body must be a JSON object such as ${example}`);
  if (body.id !== undefined && typeof body.id !== 'string') throw new InputError('"id" must be a string');
  if (!Array.isArray(body.inputs) || body.inputs.length === 0) {
    throw new InputError(`"inputs" must be a non-empty array of tensors such as ${example}`);
  }
  const given = new Map<string, Record<string, unknown>>();
  body.inputs.forEach((input: unknown, index: number) => {
    if (!isPlainObject(input) || typeof input.name !== 'string')
      throw new InputError(`inputs[${index}] must be an object with a string "name"`);
    if (!names.includes(input.name)) {
      throw new InputError(
        `unknown input "${input.name}"; the model's inputs are ${names.map((n) => `"${n}"`).join(', ')}`,
      );
    }
    if (given.has(input.name)) throw new InputError(`input "${input.name}" is given twice`);
    given.set(input.name, input);
  });
  const feeds: Feeds = {};
  for (const spec of signature.inputs) {
    const input = given.get(spec.name);
    if (input === undefined)
      throw new InputError(
        `missing input "${spec.name}"; the model's inputs are ${names.map((n) => `"${n}"`).join(', ')}`,
      );
    feeds[spec.name] = tensorFromV2(spec, input, limits);
  }
  checkSameRows(feeds, signature);
  const outputNames = signature.outputs.map((spec) => spec.name);
  let requested = outputNames;
  if (body.outputs !== undefined) {
    if (
      !Array.isArray(body.outputs) ||
      !body.outputs.every((o: unknown) => isPlainObject(o) && typeof o.name === 'string')
    ) {
      throw new InputError('"outputs" must be an array of objects with a string "name"');
    }
    requested = body.outputs.map((o: Record<string, unknown>) => o.name as string);
    const unknown = requested.filter((name) => !outputNames.includes(name));
    if (unknown.length > 0) {
      throw new InputError(
        `unknown output ${unknown.map((n) => `"${n}"`).join(', ')}; the model's outputs are ${outputNames.map((n) => `"${n}"`).join(', ')}`,
      );
    }
  }
  return { id: body.id, feeds, outputNames: requested };
}

export function toInferOutput(name: string, tensor: HostTensor): InferOutputTensor {
  return { name, datatype: toV2Datatype(tensor.type), shape: tensor.dims, data: toFlat(tensor) };
}
