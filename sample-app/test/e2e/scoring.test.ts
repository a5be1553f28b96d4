// The service over real HTTP on a real port with the real model: scores against the independent
// computation, every bad-input case with its status and message, the v2 protocol, probes and metrics.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import path from 'node:path';

import { decodeMlpLayers, referenceForward, sampleRows } from '../../scripts/mlp-model.js';
import { getJson, postJson, type RunningApp, SAMPLE_MODEL_DIR, startApp } from '../support/app-process.js';

const samples = JSON.parse(readFileSync(path.join(SAMPLE_MODEL_DIR, 'samples.json'), 'utf8'));
const layers = decodeMlpLayers(readFileSync(path.join(SAMPLE_MODEL_DIR, 'model.onnx')));
const TOLERANCE = samples.tolerance as number;

function assertClose(actual: number[][], expected: number[][]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((row, i) =>
    row.forEach((value, j) => {
      assert.ok(Math.abs(value - expected[i][j]) <= TOLERANCE, `[${i}][${j}]: ${value} vs ${expected[i][j]}`);
    }),
  );
}

/** Sends raw bytes, for bodies fetch would not send as they are. */
export function rawPost(
  url: string,
  body: Buffer | string,
  headers: Record<string, string>,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers }, (res) => {
      let text = '';
      res.on('data', (chunk) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('scoring service over HTTP (sample model)', function () {
  let app: RunningApp;
  before(async () => {
    app = await startApp({
      env: {
        ACCESS_LOG: 'true',
        MAX_ROWS_PER_REQUEST: '100',
        BODY_LIMIT: '64kb',
        MODEL_SHA256: '',
        IMAGE_LABELS: '{"org.opencontainers.image.revision":"abc123"}',
      },
    });
  });
  after(async () => {
    assert.equal(await app.stop(), 0);
  });

  it('scores every sample request as the independent TypeScript computation does (within 1e-5)', async () => {
    for (const sample of samples.requests) {
      const { status, body } = await postJson(`${app.url}/score`, sample.body);
      assert.equal(status, 200, sample.description);
      assertClose(body.outputs.probabilities, sample.expected.probabilities);
      assert.deepEqual(body.outputs.label, sample.expected.label, sample.description);
      assert.deepEqual(body.model, { name: 'sample-classifier', version: '1.0.0' });
    }
  });

  it('scores random rows, computed from the weights in the served file', async () => {
    const rows = sampleRows(50, 4, 99);
    const { status, body } = await postJson(`${app.url}/score`, { inputs: { features: rows } });
    assert.equal(status, 200);
    const expected = referenceForward(layers, rows);
    assertClose(body.outputs.probabilities, expected.probabilities);
    assert.deepEqual(body.outputs.label, expected.label);
  });

  it('joins concurrent requests into batches and answers each correctly, bad ones with 400 only', async () => {
    const rows = sampleRows(120, 4, 7);
    const expected = referenceForward(layers, rows);
    const batchFigures = async () => {
      const metrics = await (await fetch(`${app.url}/metrics`)).text();
      return {
        count: Number(/^model_batch_requests_count (\d+)/m.exec(metrics)![1]),
        sum: Number(/^model_batch_requests_sum (\d+)/m.exec(metrics)![1]),
      };
    };
    // Whether two requests meet in one run depends on how the OS schedules the client and the
    // server; on a loaded machine one burst may go through one by one. Every burst's answers are
    // checked; batching must show within three bursts.
    let figures = { count: 0, sum: 0 };
    for (let burst = 0; burst < 3 && figures.sum <= figures.count; burst++) {
      const before = await batchFigures();
      const results = await Promise.all(
        rows.map((row, i) => postJson(`${app.url}/score`, { data: i % 10 === 3 ? [row.slice(0, 3)] : [row] })),
      );
      results.forEach((result, i) => {
        if (i % 10 === 3) {
          assert.equal(result.status, 400);
          assert.match(result.body.message, /input "features"/);
        } else {
          assert.equal(result.status, 200, JSON.stringify(result.body));
          assertClose(result.body.outputs.probabilities, [expected.probabilities[i]]);
        }
      });
      const after = await batchFigures();
      figures = { count: after.count - before.count, sum: after.sum - before.sum };
    }
    assert.ok(
      figures.sum > figures.count,
      `no batch joined more than one request in three bursts (last burst: runs ${figures.count}, requests ${figures.sum})`,
    );
  });

  const badInputs: Array<[string, unknown, RegExp]> = [
    [
      'unknown input name',
      { inputs: { feature: [[1, 2, 3, 4]] } },
      /unknown input "feature"; the model's inputs are "features"/,
    ],
    ['missing input', { inputs: {} }, /missing input "features"/],
    [
      'wrong rank',
      { data: [1, 2, 3, 4] },
      /input "features": expected shape \[batch, 4\] of float32 \(rank 2\), got shape \[4\]/,
    ],
    [
      'wrong fixed dimension',
      { data: [[1, 2, 3, 4, 5]] },
      /input "features": expected shape \[batch, 4\] of float32, got shape \[1, 5\]: dimension 1 must be 4/,
    ],
    [
      'wrong element type',
      { data: [[1, 2, 'three', 4]] },
      /input "features": features\[0\]\[2\] is the string "three", expected a number \(float32\)/,
    ],
    ['boolean element', { data: [[1, 2, true, 4]] }, /features\[0\]\[2\] is boolean true/],
    ['null element', { data: [[1, 2, null, 4]] }, /features\[0\]\[2\] is null/],
    [
      'ragged array',
      {
        data: [
          [1, 2, 3, 4],
          [1, 2],
        ],
      },
      /ragged or malformed array: features\[1\] has 2 elements/,
    ],
    [
      'too many rows',
      { data: Array.from({ length: 101 }, () => [1, 2, 3, 4]) },
      /101 rows is more than the 100 allowed/,
    ],
    ['empty batch', { data: [] }, /got shape \[0\]/],
    ['not an object', [1, 2, 3], /must be a JSON object/],
    ['unknown field', { instances: [[1, 2, 3, 4]] }, /unknown field "instances"/],
  ];
  for (const [name, body, message] of badInputs) {
    it(`answers 400 for ${name}`, async () => {
      const response = await postJson(`${app.url}/score`, body);
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.match(response.body.message, message);
      assert.equal(response.body.requestId, response.headers.get('x-request-id'));
    });
  }

  it('answers 400 for numbers JSON turns into Infinity, and for floats beyond float32', async () => {
    const huge = await rawPost(`${app.url}/score`, '{"data":[[1e999,1,1,1]]}', { 'content-type': 'application/json' });
    assert.equal(huge.status, 400);
    assert.match(JSON.parse(huge.text).message, /features\[0\]\[0\] is number Infinity, expected a finite number/);
    const big = await postJson(`${app.url}/score`, { data: [[1, 1e39, 1, 1]] });
    assert.equal(big.status, 400);
    assert.match(big.body.message, /within the float32 range/);
  });

  it('answers 400 for malformed JSON, 413 over the body limit, 415 for other media types', async () => {
    const malformed = await rawPost(`${app.url}/score`, '{"data": [[1, 2,', { 'content-type': 'application/json' });
    assert.equal(malformed.status, 400);
    assert.match(JSON.parse(malformed.text).message, /malformed JSON/);
    const empty = await rawPost(`${app.url}/score`, '', { 'content-type': 'application/json' });
    assert.equal(empty.status, 400);
    const tooLarge = await postJson(`${app.url}/score`, {
      data: Array.from({ length: 3000 }, () => [1.2345, 2.3456, 3.4567, 4.5678]),
    });
    assert.equal(tooLarge.status, 413);
    assert.match(tooLarge.body.message, /larger than the 65536-byte limit \(BODY_LIMIT\)/);
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      const response = await rawPost(`${app.url}/score`, '{"data":[[1,2,3,4]]}', { 'content-type': type });
      assert.equal(response.status, 415, type);
      assert.match(JSON.parse(response.text).message, /Content-Type: application\/json/);
    }
  });

  it('answers 404 with the usual error shape for unknown routes', async () => {
    const response = await fetch(`${app.url}/predict`, { method: 'POST' });
    assert.equal(response.status, 404);
    assert.equal(((await response.json()) as any).statusCode, 404);
  });

  it('echoes a sane X-Request-Id and makes one up otherwise', async () => {
    const given = await fetch(`${app.url}/healthz`, { headers: { 'x-request-id': 'pipeline-42.attempt-1' } });
    assert.equal(given.headers.get('x-request-id'), 'pipeline-42.attempt-1');
    const hostile = await fetch(`${app.url}/healthz`, { headers: { 'x-request-id': 'a b\tc<script>' } });
    assert.match(hostile.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  });

  it('speaks the Open Inference Protocol (KServe v2)', async () => {
    assert.deepEqual(await getJson(`${app.url}/v2/health/live`), { live: true });
    assert.deepEqual(await getJson(`${app.url}/v2/health/ready`), { ready: true });
    assert.equal((await fetch(`${app.url}/v2`)).status, 200);
    const metadata = await getJson(`${app.url}/v2/models/sample-classifier`);
    assert.deepEqual(metadata, {
      name: 'sample-classifier',
      versions: ['1.0.0'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [
        { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
        { name: 'label', datatype: 'INT64', shape: [-1] },
      ],
    });
    assert.deepEqual(await getJson(`${app.url}/v2/models/sample-classifier/ready`), {
      name: 'sample-classifier',
      version: '1.0.0',
      ready: true,
    });

    const rows = sampleRows(3, 4, 5);
    const expected = referenceForward(layers, rows);
    const infer = await postJson(`${app.url}/v2/models/sample-classifier/infer`, {
      id: 'req-1',
      inputs: [{ name: 'features', shape: [3, 4], datatype: 'FP32', data: rows.flat() }],
    });
    assert.equal(infer.status, 200);
    assert.equal(infer.body.model_name, 'sample-classifier');
    assert.equal(infer.body.model_version, '1.0.0');
    assert.equal(infer.body.id, 'req-1');
    const [probabilities, label] = infer.body.outputs;
    assert.deepEqual(
      [probabilities.name, probabilities.datatype, probabilities.shape],
      ['probabilities', 'FP32', [3, 3]],
    );
    assertClose([probabilities.data], [expected.probabilities.flat()]);
    assert.deepEqual(label, { name: 'label', datatype: 'INT64', shape: [3], data: expected.label });

    const onlyLabel = await postJson(`${app.url}/v2/models/sample-classifier/versions/1.0.0/infer`, {
      inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [rows[0]] }],
      outputs: [{ name: 'label' }],
    });
    assert.deepEqual(onlyLabel.body.outputs, [
      { name: 'label', datatype: 'INT64', shape: [1], data: [expected.label[0]] },
    ]);

    const wrongModel = await postJson(`${app.url}/v2/models/other/infer`, { inputs: [] });
    assert.equal(wrongModel.status, 404);
    assert.match(
      wrongModel.body.error,
      /model "other" is not served here; this server serves "sample-classifier" version "1.0.0"/,
    );
    const wrongType = await postJson(`${app.url}/v2/models/sample-classifier/infer`, {
      inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP64', data: [1, 2, 3, 4] }],
    });
    assert.equal(wrongType.status, 400);
    assert.match(wrongType.body.error, /input "features": datatype must be FP32/);
    const wrongCount = await postJson(`${app.url}/v2/models/sample-classifier/infer`, {
      inputs: [{ name: 'features', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
    });
    assert.equal(wrongCount.status, 400);
    assert.match(wrongCount.body.error, /shape \[2, 4\] needs 8 elements, got 4/);
  });

  it('answers probes and describes the model with its digest and image labels', async () => {
    assert.equal((await fetch(`${app.url}/healthz`)).status, 200);
    assert.deepEqual(await getJson(`${app.url}/readyz`), { status: 'ready' });
    const model = await getJson(`${app.url}/model`);
    const { createHash } = await import('node:crypto');
    const sha256 = createHash('sha256')
      .update(readFileSync(path.join(SAMPLE_MODEL_DIR, 'model.onnx')))
      .digest('hex');
    assert.equal(model.name, 'sample-classifier');
    assert.equal(model.version, '1.0.0');
    assert.equal(model.sha256, sha256);
    assert.deepEqual(model.signature.inputs, [
      { name: 'features', type: 'float32', dims: [null, 4], dimNames: ['batch', null] },
    ]);
    assert.deepEqual(model.imageLabels, { 'org.opencontainers.image.revision': 'abc123' });
    assert.ok(!Number.isNaN(Date.parse(model.loadedAt)));
  });

  it('exports Prometheus metrics that count requests by route and status', async () => {
    const scrape = async () => (await fetch(`${app.url}/metrics`)).text();
    const counter = (text: string, route: string, status: number) => {
      const match = new RegExp(
        `^http_requests_total\\{route="${route}",method="POST",status="${status}"\\} (\\d+)`,
        'm',
      ).exec(text);
      return match ? Number(match[1]) : 0;
    };
    const before = await scrape();
    await postJson(`${app.url}/score`, { data: [[1, 2, 3, 4]] });
    await postJson(`${app.url}/score`, { data: [[1, 2, 3, 4]] });
    await postJson(`${app.url}/score`, { data: [[1, 2, 3]] });
    const after = await scrape();
    assert.equal(counter(after, '/score', 200) - counter(before, '/score', 200), 2);
    assert.equal(counter(after, '/score', 400) - counter(before, '/score', 400), 1);
    const sha256 = (await getJson(`${app.url}/model`)).sha256;
    assert.match(
      after,
      new RegExp(`^model_info\\{name="sample-classifier",version="1.0.0",sha256="${sha256}"\\} 1$`, 'm'),
    );
    for (const name of [
      'http_request_duration_seconds_bucket',
      'model_inference_duration_seconds_count',
      'model_batch_size_bucket',
      'http_requests_in_flight',
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      assert.match(after, new RegExp(`^${name}`, 'm'), name);
    }
    assert.ok(Number(/^model_rows_scored_total (\d+)/m.exec(after)![1]) > 0);
  });

  it('writes one JSON access-log line per request, with its request id', async () => {
    await fetch(`${app.url}/healthz`, { headers: { 'x-request-id': 'log-check-1' } });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const line = app.logs.find((l) => l.requestId === 'log-check-1');
    assert.ok(line, 'no access-log line with the request id');
    assert.equal(line.msg, 'request');
    assert.equal(line.route, '/healthz');
    assert.equal(line.status, 200);
  });
});
