// make-model: writes an MLP classifier as model.onnx, its model.json, and (for the sample model) sample
// requests whose expected outputs come from plain TypeScript arithmetic, not from onnxruntime.
//   npm run make-model                      → models/sample-classifier (4 → 16 → 3)
//   npm run make-model -- --out DIR --name heavy-mlp --inputs 64 --hidden 1024,1024,1024 --classes 8
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import {
  BATCH_DIM,
  encodeMlpModel,
  INPUT_NAME,
  LABEL_NAME,
  makeLayers,
  type MlpSpec,
  PROBABILITIES_NAME,
  referenceForward,
  sampleRows,
} from './mlp-model.js';

const appRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function writeAtomically(file: string, contents: string | Uint8Array): void {
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, contents);
  renameSync(temp, file);
}

export function makeModel(outDir: string, spec: MlpSpec, withSamples: boolean): void {
  mkdirSync(outDir, { recursive: true });
  const layers = makeLayers(spec);
  writeAtomically(path.join(outDir, 'model.onnx'), encodeMlpModel(spec, layers));
  const metadata = {
    name: spec.name,
    version: spec.version,
    description: spec.description,
    format: 'onnx',
    opset: 13,
    architecture: `MLP ${[spec.inputSize, ...spec.hiddenSizes, spec.classCount].join(' → ')} (Gemm, Relu, Softmax, ArgMax)`,
    seed: spec.seed,
    inputs: [{ name: INPUT_NAME, type: 'float32', shape: [BATCH_DIM, spec.inputSize] }],
    outputs: [
      { name: PROBABILITIES_NAME, type: 'float32', shape: [BATCH_DIM, spec.classCount] },
      { name: LABEL_NAME, type: 'int64', shape: [BATCH_DIM] },
    ],
  };
  writeAtomically(path.join(outDir, 'model.json'), `${JSON.stringify(metadata, null, 2)}\n`);
  if (!withSamples) return;
  const rows = sampleRows(8, spec.inputSize, spec.seed + 1);
  const requests = [
    { description: 'one row, named input', body: { inputs: { [INPUT_NAME]: [rows[0]] } }, rows: [rows[0]] },
    { description: 'one row, single-input shorthand', body: { data: [rows[1]] }, rows: [rows[1]] },
    { description: 'three rows', body: { inputs: { [INPUT_NAME]: rows.slice(2, 5) } }, rows: rows.slice(2, 5) },
    { description: 'integers are valid float32 values', body: { data: [[5, 3, 1, 0]] }, rows: [[5, 3, 1, 0]] },
    {
      description: 'negative and zero features',
      body: { data: [[-1, 0, 0.5, -0.25], rows[5]] },
      rows: [[-1, 0, 0.5, -0.25], rows[5]],
    },
  ].map(({ description, body, rows: requestRows }) => ({
    description,
    body,
    expected: referenceForward(layers, requestRows),
  }));
  const samples = {
    model: spec.name,
    note: 'expected outputs are computed in plain TypeScript float64 arithmetic (scripts/mlp-model.ts referenceForward)',
    tolerance: 1e-5,
    requests,
  };
  writeAtomically(path.join(outDir, 'samples.json'), `${JSON.stringify(samples, null, 2)}\n`);
}

function main(): void {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: path.join(appRoot, 'models', 'sample-classifier') },
      name: { type: 'string', default: 'sample-classifier' },
      version: { type: 'string', default: '1.0.0' },
      inputs: { type: 'string', default: '4' },
      hidden: { type: 'string', default: '16' },
      classes: { type: 'string', default: '3' },
      seed: { type: 'string', default: '20240601' },
      samples: { type: 'boolean' },
    },
  });
  const spec: MlpSpec = {
    name: values.name,
    version: values.version,
    description:
      'A multilayer-perceptron classifier with seeded (untrained) weights, made by make-model as a reference model for the scoring service.',
    inputSize: Number(values.inputs),
    hiddenSizes: values.hidden.split(',').map(Number),
    classCount: Number(values.classes),
    seed: Number(values.seed),
  };
  const sizes = [spec.inputSize, spec.classCount, spec.seed, ...spec.hiddenSizes];
  if (sizes.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error('make-model: --inputs, --hidden (comma-separated), --classes and --seed must be positive integers');
  }
  const withSamples = values.samples ?? values.name === 'sample-classifier';
  makeModel(path.resolve(values.out), spec, withSamples);
  console.log(`make-model: wrote ${spec.name} ${spec.version} to ${path.resolve(values.out)}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
