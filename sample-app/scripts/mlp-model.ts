// Builds a multilayer-perceptron classifier as an ONNX ModelProto with no Python, and computes its
// outputs in plain TypeScript arithmetic so tests can check onnxruntime against an independent result.
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export interface MlpSpec {
  name: string;
  version: string;
  description: string;
  inputSize: number;
  hiddenSizes: number[];
  classCount: number;
  seed: number;
}

/** One Gemm layer: y = x · weightᵀ + bias, weight stored row-major as [outSize, inSize]. */
export interface DenseLayer {
  inSize: number;
  outSize: number;
  weight: Float32Array;
  bias: Float32Array;
}

export interface ClassifierOutputs {
  probabilities: number[][];
  label: number[];
}

export const INPUT_NAME = 'features';
export const PROBABILITIES_NAME = 'probabilities';
export const LABEL_NAME = 'label';
export const BATCH_DIM = 'batch';

/** mulberry32: a small seeded generator, so the same seed always gives the same weights. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Glorot-uniform weights and small biases, drawn from the seeded generator. */
export function makeLayers(spec: MlpSpec): DenseLayer[] {
  const random = seededRandom(spec.seed);
  const sizes = [spec.inputSize, ...spec.hiddenSizes, spec.classCount];
  const layers: DenseLayer[] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    const inSize = sizes[i];
    const outSize = sizes[i + 1];
    const limit = Math.sqrt(6 / (inSize + outSize));
    const weight = new Float32Array(inSize * outSize);
    for (let j = 0; j < weight.length; j++) weight[j] = (random() * 2 - 1) * limit;
    const bias = new Float32Array(outSize);
    for (let j = 0; j < bias.length; j++) bias[j] = (random() * 2 - 1) * 0.1;
    layers.push({ inSize, outSize, weight, bias });
  }
  return layers;
}

function floatTensor(name: string, dims: number[], values: Float32Array): onnxProto.onnx.ITensorProto {
  const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  return { name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: bytes };
}

function valueInfo(name: string, elemType: number, dims: Array<number | string>): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Gemm → Relu → … → Gemm → Softmax, plus ArgMax for the label. Opset 13. */
export function encodeMlpModel(spec: MlpSpec, layers: DenseLayer[]): Uint8Array {
  const nodes: onnxProto.onnx.INodeProto[] = [];
  const initializers: onnxProto.onnx.ITensorProto[] = [];
  let current = INPUT_NAME;
  layers.forEach((layer, index) => {
    const weightName = `dense${index}.weight`;
    const biasName = `dense${index}.bias`;
    initializers.push(floatTensor(weightName, [layer.outSize, layer.inSize], layer.weight));
    initializers.push(floatTensor(biasName, [layer.outSize], layer.bias));
    const gemmOut = index === layers.length - 1 ? 'logits' : `dense${index}.out`;
    nodes.push({
      name: `dense${index}`,
      opType: 'Gemm',
      input: [current, weightName, biasName],
      output: [gemmOut],
      attribute: [{ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
    });
    current = gemmOut;
    if (index < layers.length - 1) {
      const reluOut = `relu${index}.out`;
      nodes.push({ name: `relu${index}`, opType: 'Relu', input: [current], output: [reluOut] });
      current = reluOut;
    }
  });
  nodes.push({
    name: 'softmax',
    opType: 'Softmax',
    input: [current],
    output: [PROBABILITIES_NAME],
    attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
  });
  nodes.push({
    name: 'argmax',
    opType: 'ArgMax',
    input: [PROBABILITIES_NAME],
    output: [LABEL_NAME],
    attribute: [
      { name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 },
      { name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 },
    ],
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'onnx-scoring-service/make-model',
    producerVersion: '1',
    modelVersion: 1,
    docString: spec.description,
    opsetImport: [{ domain: '', version: 13 }],
    metadataProps: [
      { key: 'name', value: spec.name },
      { key: 'version', value: spec.version },
    ],
    graph: {
      name: spec.name,
      node: nodes,
      initializer: initializers,
      input: [valueInfo(INPUT_NAME, onnx.TensorProto.DataType.FLOAT, [BATCH_DIM, spec.inputSize])],
      output: [
        valueInfo(PROBABILITIES_NAME, onnx.TensorProto.DataType.FLOAT, [BATCH_DIM, spec.classCount]),
        valueInfo(LABEL_NAME, onnx.TensorProto.DataType.INT64, [BATCH_DIM]),
      ],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Reads the dense layers back out of an encoded model, so tests compute from the very bytes served. */
export function decodeMlpLayers(modelBytes: Uint8Array): DenseLayer[] {
  const model = onnx.ModelProto.decode(modelBytes);
  const byName = new Map<string, Float32Array>();
  const dimsByName = new Map<string, number[]>();
  for (const tensor of model.graph?.initializer ?? []) {
    const raw = tensor.rawData as Uint8Array;
    const copy = new Uint8Array(raw); // aligned copy for the Float32Array view
    byName.set(tensor.name ?? '', new Float32Array(copy.buffer, 0, copy.byteLength / 4));
    dimsByName.set(tensor.name ?? '', (tensor.dims ?? []).map(Number));
  }
  const layers: DenseLayer[] = [];
  for (let index = 0; byName.has(`dense${index}.weight`); index++) {
    const [outSize, inSize] = dimsByName.get(`dense${index}.weight`)!;
    layers.push({
      inSize,
      outSize,
      weight: byName.get(`dense${index}.weight`)!,
      bias: byName.get(`dense${index}.bias`)!,
    });
  }
  return layers;
}

/** The forward pass in float64 arithmetic, independent of onnxruntime. */
export function referenceForward(layers: DenseLayer[], rows: number[][]): ClassifierOutputs {
  const probabilities: number[][] = [];
  const label: number[] = [];
  for (const row of rows) {
    let activations = row.map((v) => Math.fround(v));
    layers.forEach((layer, index) => {
      const next = new Array<number>(layer.outSize);
      for (let o = 0; o < layer.outSize; o++) {
        let sum = layer.bias[o];
        const base = o * layer.inSize;
        for (let i = 0; i < layer.inSize; i++) sum += activations[i] * layer.weight[base + i];
        next[o] = index < layers.length - 1 ? Math.max(0, sum) : sum;
      }
      activations = next;
    });
    const max = Math.max(...activations);
    const exps = activations.map((v) => Math.exp(v - max));
    const total = exps.reduce((a, b) => a + b, 0);
    const probs = exps.map((v) => v / total);
    probabilities.push(probs);
    label.push(probs.indexOf(Math.max(...probs)));
  }
  return { probabilities, label };
}

/** Random feature rows from the seeded generator, in roughly the range of iris measurements. */
export function sampleRows(count: number, width: number, seed: number): number[][] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () =>
    Array.from({ length: width }, () => Math.round((random() * 8 - 1) * 100) / 100),
  );
}
