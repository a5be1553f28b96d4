// Loads an ONNX model: finds the file, checks its digest, reads name and version, opens an onnxruntime
// session and reads the signature from that session (nothing about the model is hard-coded).
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

import ort from 'onnxruntime-node';

import type { AppConfig } from '../config/app-config.js';
import { allocate, type HostTensor, isElementType, type TensorSpec } from './tensor-types.js';

export class ModelLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelLoadError';
  }
}

export interface ModelSignature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

export interface LoadedModel {
  name: string;
  version: string;
  description?: string;
  filePath: string;
  sizeBytes: number;
  sha256: string;
  signature: ModelSignature;
  /** True when every input and output has an open first dimension, so requests can be joined along it. */
  batchable: boolean;
  session: ort.InferenceSession;
}

interface ModelJson {
  name?: unknown;
  version?: unknown;
  description?: unknown;
}

/** MODEL_PATH is a file, or a folder holding model.onnx (or exactly one .onnx file). */
export async function resolveModelFile(modelPath: string): Promise<string> {
  let info;
  try {
    info = await stat(modelPath);
  } catch (error) {
    throw new ModelLoadError(`MODEL_PATH "${modelPath}" cannot be read: ${(error as Error).message}`);
  }
  if (info.isFile()) return modelPath;
  if (!info.isDirectory()) throw new ModelLoadError(`MODEL_PATH "${modelPath}" is neither a file nor a folder`);
  const onnxFiles = (await readdir(modelPath)).filter((file) => file.endsWith('.onnx'));
  if (onnxFiles.includes('model.onnx')) return path.join(modelPath, 'model.onnx');
  if (onnxFiles.length === 1) return path.join(modelPath, onnxFiles[0]);
  throw new ModelLoadError(
    onnxFiles.length === 0
      ? `MODEL_PATH "${modelPath}" is a folder with no .onnx file: put the model there as model.onnx`
      : `MODEL_PATH "${modelPath}" holds several .onnx files (${onnxFiles.join(', ')}): name the one to serve model.onnx or point MODEL_PATH at it`,
  );
}

async function readModelJson(modelFile: string): Promise<ModelJson> {
  const file = path.join(path.dirname(modelFile), 'model.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return {};
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed;
  } catch (error) {
    throw new ModelLoadError(`${file} is not a valid JSON object (${(error as Error).message}): fix or remove it`);
  }
}

function toSpec(metadata: ort.InferenceSession.ValueMetadata, role: string): TensorSpec {
  if (!metadata.isTensor) {
    throw new ModelLoadError(
      `the model's ${role} "${metadata.name}" is not a tensor (sequence or map); the scoring API serves tensor inputs and outputs only`,
    );
  }
  if (!isElementType(metadata.type)) {
    throw new ModelLoadError(
      `the model's ${role} "${metadata.name}" has element type ${metadata.type}, which the scoring API does not support`,
    );
  }
  return {
    name: metadata.name,
    type: metadata.type,
    dims: metadata.shape.map((dim) => (typeof dim === 'number' && dim >= 0 ? dim : null)),
    dimNames: metadata.shape.map((dim) => (typeof dim === 'string' && dim !== '' ? dim : null)),
  };
}

/**
 * The digest of a folder model, as FetchModel's model-manifest.json defines it: SHA-256 of one
 * line per file, sorted by path in byte order, each "<sha256 hex>  <path>\n" (sha256sum's format).
 * The manifest FetchModel writes beside the files is not part of the model.
 */
export async function folderSha256(dir: string): Promise<string> {
  const files: Array<{ path: string; sha256: string }> = [];
  const walk = async (relative: string): Promise<void> => {
    for (const entry of await readdir(path.join(dir, relative), { withFileTypes: true })) {
      const rel = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(rel);
      else if (entry.isFile() && rel !== 'model-manifest.json') {
        files.push({
          path: rel,
          sha256: createHash('sha256')
            .update(await readFile(path.join(dir, rel)))
            .digest('hex'),
        });
      }
    }
  };
  await walk('');
  files.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  return createHash('sha256')
    .update(files.map((f) => `${f.sha256}  ${f.path}\n`).join(''))
    .digest('hex');
}

export async function loadModel(config: AppConfig): Promise<LoadedModel> {
  const filePath = await resolveModelFile(config.modelPath);
  let bytes: Buffer;
  try {
    bytes = await readFile(filePath);
  } catch (error) {
    throw new ModelLoadError(`model file "${filePath}" cannot be read: ${(error as Error).message}`);
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (config.modelSha256 !== undefined && config.modelSha256 !== sha256) {
    // A folder model (what FetchModel and BakeModelImage deliver for a multi-file model) is
    // pinned by its folder digest; a single-file model by the file's own.
    const folder = (await stat(config.modelPath)).isDirectory() ? await folderSha256(config.modelPath) : undefined;
    if (folder !== config.modelSha256) {
      throw new ModelLoadError(
        `model file "${filePath}" has sha256 ${sha256}${folder ? ` and its folder's digest is ${folder}` : ''}, but MODEL_SHA256 says ${config.modelSha256}: the file is not the model this deployment expects`,
      );
    }
  }
  const modelJson = await readModelJson(filePath);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      graphOptimizationLevel: 'all',
      ...(config.intraOpThreads > 0 ? { intraOpNumThreads: config.intraOpThreads } : {}),
      ...(config.interOpThreads > 0 ? { interOpNumThreads: config.interOpThreads } : {}),
    });
  } catch (error) {
    throw new ModelLoadError(
      `model file "${filePath}" is not a model onnxruntime can load: ${(error as Error).message}`,
    );
  }
  const signature: ModelSignature = {
    inputs: session.inputMetadata.map((m) => toSpec(m, 'input')),
    outputs: session.outputMetadata.map((m) => toSpec(m, 'output')),
  };
  const openFirstDim = (spec: TensorSpec) => spec.dims.length > 0 && spec.dims[0] === null;
  return {
    name: config.modelName ?? (typeof modelJson.name === 'string' ? modelJson.name : path.basename(filePath, '.onnx')),
    version: config.modelVersion ?? (typeof modelJson.version === 'string' ? modelJson.version : '1'),
    description: typeof modelJson.description === 'string' ? modelJson.description : undefined,
    filePath: path.resolve(filePath),
    sizeBytes: bytes.byteLength,
    sha256,
    signature,
    batchable: signature.inputs.every(openFirstDim) && signature.outputs.every(openFirstDim),
    session,
  };
}

/** One session.run on host tensors; outputs come back as host tensors. */
export async function runSession(
  session: ort.InferenceSession,
  feeds: Record<string, HostTensor>,
): Promise<Record<string, HostTensor>> {
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(feeds)) {
    ortFeeds[name] = new ort.Tensor(tensor.type, tensor.data, tensor.dims);
  }
  const results = await session.run(ortFeeds);
  const outputs: Record<string, HostTensor> = {};
  for (const [name, tensor] of Object.entries(results)) {
    outputs[name] = { type: tensor.type as HostTensor['type'], dims: [...tensor.dims], data: tensor.data };
  }
  return outputs;
}

/** Zeros (or empty strings) with every open dimension set to 1: enough to exercise the whole graph once. */
export function warmUpFeeds(signature: ModelSignature): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const spec of signature.inputs) {
    const dims = spec.dims.map((dim) => dim ?? 1);
    const length = dims.reduce((a, b) => a * b, 1);
    feeds[spec.name] = { type: spec.type, dims, data: allocate(spec.type, length) };
  }
  return feeds;
}
