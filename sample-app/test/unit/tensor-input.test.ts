import assert from 'node:assert/strict';

import { parseInferRequest } from '../../src/inference-protocol/v2-request.js';
import type { ModelSignature } from '../../src/model/model-loader.js';
import type { TensorSpec } from '../../src/model/tensor-types.js';
import { parseScoreBody, toNested } from '../../src/scoring/score-request.js';
import { InputError, tensorFromNested, tensorFromV2 } from '../../src/scoring/tensor-input.js';

const features: TensorSpec = { name: 'features', type: 'float32', dims: [null, 4], dimNames: ['batch', null] };
const ids: TensorSpec = { name: 'ids', type: 'int64', dims: [null], dimNames: ['batch'] };
const limits = { maxRows: 8 };
const signature: ModelSignature = {
  inputs: [features],
  outputs: [{ name: 'p', type: 'float32', dims: [null, 3], dimNames: ['batch', null] }],
};

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof InputError, `not an InputError: ${String(error)}`);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('tensor input validation', () => {
  it('reads nested arrays into a typed tensor with the shape they nest to', () => {
    const tensor = tensorFromNested(
      features,
      [
        [1, 2, 3, 4],
        [5, 6, 7, 8.5],
      ],
      limits,
    );
    assert.deepEqual(tensor.dims, [2, 4]);
    assert.ok(tensor.data instanceof Float32Array);
    assert.deepEqual(Array.from(tensor.data), [1, 2, 3, 4, 5, 6, 7, 8.5]);
    assert.deepEqual(toNested(tensor), [
      [1, 2, 3, 4],
      [5, 6, 7, 8.5],
    ]);
  });

  it('names the input, the expected shape and what came', () => {
    rejects(
      () => tensorFromNested(features, [[1, 2, 3]], limits),
      /input "features": expected shape \[batch, 4\] of float32, got shape \[1, 3\]: dimension 1 must be 4/,
    );
    rejects(
      () => tensorFromNested(features, [1, 2, 3, 4], limits),
      /expected shape \[batch, 4\] of float32 \(rank 2\), got shape \[4\] \(rank 1\)/,
    );
    rejects(() => tensorFromNested(features, [[[1], 2, 3, 4]], limits), /nested deeper than 2 levels/);
    rejects(() => tensorFromNested(features, 'abc', limits), /as nested arrays, got the string "abc"/);
    rejects(() => tensorFromNested(features, [], limits), /got shape \[0\]/);
  });

  it('finds ragged arrays and says where', () => {
    rejects(
      () =>
        tensorFromNested(
          features,
          [
            [1, 2, 3, 4],
            [1, 2, 3],
          ],
          limits,
        ),
      /features\[1\] has 3 elements, but shape \[2, 4\] needs 4/,
    );
    rejects(() => tensorFromNested(features, [[1, 2, 3, 4], 7], limits), /features\[1\] has number 7/);
  });

  it('checks element types, finiteness and ranges', () => {
    rejects(
      () => tensorFromNested(features, [[1, '2', 3, 4]], limits),
      /features\[0\]\[1\] is the string "2", expected a number \(float32\)/,
    );
    rejects(() => tensorFromNested(features, [[1, null, 3, 4]], limits), /features\[0\]\[1\] is null/);
    rejects(() => tensorFromNested(features, [[1, Infinity, 3, 4]], limits), /expected a finite number/);
    rejects(() => tensorFromNested(features, [[1, 1e39, 3, 4]], limits), /within the float32 range/);
    rejects(() => tensorFromNested(ids, [1, 2.5], limits), /ids\[1\] is number 2.5, expected an integer/);
    rejects(() => tensorFromNested(ids, [2 ** 60], limits), /expected an integer from/);
    const tensor = tensorFromNested(ids, [1, -2], limits);
    assert.deepEqual(Array.from(tensor.data as BigInt64Array), [1n, -2n]);
  });

  it('limits the rows of one request', () => {
    rejects(
      () =>
        tensorFromNested(
          features,
          Array.from({ length: 9 }, () => [1, 2, 3, 4]),
          limits,
        ),
      /9 rows is more than the 8 allowed/,
    );
  });

  it('parses Open Inference Protocol tensors, flat or nested', () => {
    const flat = tensorFromV2(
      features,
      { name: 'features', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6, 7, 8] },
      limits,
    );
    const nested = tensorFromV2(
      features,
      {
        name: 'features',
        shape: [2, 4],
        datatype: 'FP32',
        data: [
          [1, 2, 3, 4],
          [5, 6, 7, 8],
        ],
      },
      limits,
    );
    assert.deepEqual(Array.from(flat.data as Float32Array), Array.from(nested.data as Float32Array));
    rejects(
      () => tensorFromV2(features, { shape: [2, 4], datatype: 'FP64', data: [] }, limits),
      /datatype must be FP32, got the string "FP64"/,
    );
    rejects(
      () => tensorFromV2(features, { shape: [2, 4], datatype: 'FP32', data: [1, 2, 3] }, limits),
      /shape \[2, 4\] needs 8 elements, got 3/,
    );
    rejects(
      () => tensorFromV2(features, { shape: [2, 5], datatype: 'FP32', data: [] }, limits),
      /dimension 1 must be 4/,
    );
    rejects(
      () => tensorFromV2(features, { shape: '2x4', datatype: 'FP32', data: [] }, limits),
      /"shape" must be an array/,
    );
  });
});

describe('request bodies', () => {
  it('accepts {"inputs": {...}} and {"data": ...} for a single-input model', () => {
    const a = parseScoreBody({ inputs: { features: [[1, 2, 3, 4]] } }, signature, limits);
    const b = parseScoreBody({ data: [[1, 2, 3, 4]] }, signature, limits);
    assert.deepEqual(a, b);
  });

  it('rejects unknown, missing and conflicting fields by name', () => {
    rejects(() => parseScoreBody([1], signature, limits), /must be a JSON object/);
    rejects(
      () => parseScoreBody({ inputs: { features: [[1, 2, 3, 4]], extra: [1] } }, signature, limits),
      /unknown input "extra"; the model's inputs are "features"/,
    );
    rejects(() => parseScoreBody({ inputs: {} }, signature, limits), /missing input "features"/);
    rejects(() => parseScoreBody({ data: [[1, 2, 3, 4]], inputs: {} }, signature, limits), /either "inputs" or "data"/);
    rejects(() => parseScoreBody({ instances: [] }, signature, limits), /unknown field "instances"/);
  });

  it('requires the same rows in inputs that share the batch dimension', () => {
    const two: ModelSignature = { inputs: [features, ids], outputs: signature.outputs };
    rejects(
      () => parseScoreBody({ inputs: { features: [[1, 2, 3, 4]], ids: [1, 2] } }, two, limits),
      /have 1 and 2 rows/,
    );
    rejects(() => parseScoreBody({ data: [[1, 2, 3, 4]] }, two, limits), /"data" is only for single-input models/);
  });

  it('checks an inference request and its requested outputs', () => {
    const request = parseInferRequest(
      {
        id: 'r1',
        inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
        outputs: [{ name: 'p' }],
      },
      signature,
      limits,
    );
    assert.equal(request.id, 'r1');
    assert.deepEqual(request.outputNames, ['p']);
    rejects(() => parseInferRequest({ inputs: [] }, signature, limits), /"inputs" must be a non-empty array/);
    rejects(() => parseInferRequest({ inputs: [{ name: 'x' }] }, signature, limits), /unknown input "x"/);
    rejects(
      () =>
        parseInferRequest(
          {
            inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
            outputs: [{ name: 'q' }],
          },
          signature,
          limits,
        ),
      /unknown output "q"/,
    );
  });
});
