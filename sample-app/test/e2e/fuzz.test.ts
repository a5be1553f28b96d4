// Bounded fuzzing: thousands of generated malformed requests (random JSON shapes, deep nesting, huge
// numbers, wrong types, truncated bytes, wrong content types). No answer may be a 5xx, the process must
// stay up, and it must still score correctly afterwards.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import path from 'node:path';

import { decodeMlpLayers, referenceForward } from '../../scripts/mlp-model.js';
import { postJson, type RunningApp, SAMPLE_MODEL_DIR, startApp } from '../support/app-process.js';

const REQUESTS = 6000;
const CONCURRENCY = 16;
const TIME_BUDGET_MILLIS = 60_000;

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 4294967296;
  };
}

interface FuzzCase {
  path: string;
  contentType: string | undefined;
  body: Buffer;
}

function makeGenerator(random: () => number) {
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
  const int = (max: number) => Math.floor(random() * max);
  const scalar = (): unknown =>
    pick<() => unknown>([
      () => random() * 10,
      () => -random() * 1e6,
      () => 1e308 * (random() < 0.5 ? 10 : 1),
      () => 3.5e38,
      () => 0,
      () => int(2 ** 53),
      () => 'NaN',
      () => 'Infinity',
      () => '1.5',
      () => '',
      () => null,
      () => true,
      () => ({}),
      () => [],
      () => '\u0000\uffff',
    ])();
  const value = (depth: number): unknown => {
    if (depth > 4 || random() < 0.35) return scalar();
    if (random() < 0.6) return Array.from({ length: int(6) }, () => value(depth + 1));
    const object: Record<string, unknown> = {};
    for (let i = 0; i < int(4); i++)
      object[pick(['data', 'inputs', 'features', '__proto__', 'constructor', 'name', 'shape', 'datatype', 'x'])] =
        value(depth + 1);
    return object;
  };
  const rows = () =>
    Array.from({ length: 1 + int(4) }, () =>
      Array.from({ length: pick([3, 4, 4, 4, 5]) }, () => (random() < 0.9 ? random() * 8 : scalar())),
    );
  const deep = (levels: number, open = '[', close = ']') => `${open.repeat(levels)}1${close.repeat(levels)}`;
  const scoreBody = (): string =>
    pick<() => string>([
      () => JSON.stringify(value(0)),
      () => JSON.stringify({ data: value(0) }),
      () => JSON.stringify({ inputs: { features: value(0) } }),
      () => JSON.stringify({ data: rows() }),
      () => JSON.stringify({ inputs: { features: rows(), extra: rows() } }),
      () => `{"data":${deep(1 + int(20000))}}`,
      () => `{"inputs":{"features":${deep(1 + int(5000), '{"a":', '}')}}}`,
      () => `{"data":[[${'9'.repeat(1 + int(400))},1,2,3]]}`,
      () => `{"data":[[1e${int(1000)},1,2,3]]}`,
      () => `{"data":[[-0,0.0e-999,1,2]]}`,
      () => JSON.stringify({ data: Array.from({ length: 1000 + int(2000) }, () => [1, 2, 3, 4]) }),
      () => `{"data": "${'x'.repeat(int(100000))}"}`,
      () => '{"__proto__":{"polluted":1},"data":[[1,2,3,4]]}',
      () => '{"constructor":{"prototype":{"x":1}}}',
    ])();
  const inferBody = (): string =>
    pick<() => string>([
      () =>
        JSON.stringify({
          inputs: [
            {
              name: 'features',
              shape: value(1),
              datatype: pick(['FP32', 'FP64', 'INT64', 'BYTES', 7]),
              data: value(1),
            },
          ],
        }),
      () => JSON.stringify({ inputs: value(0), outputs: value(0) }),
      () =>
        JSON.stringify({
          inputs: [
            {
              name: 'features',
              shape: [int(3), 4],
              datatype: 'FP32',
              data: Array.from({ length: int(12) }, () => scalar()),
            },
          ],
        }),
      () => JSON.stringify({ inputs: [{ name: 'features', shape: [1e12, 4], datatype: 'FP32', data: [] }] }),
      () => JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: deep(3000) }] }),
      () =>
        JSON.stringify({
          id: value(0),
          inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
          outputs: [{ name: value(0) }],
        }),
    ])();
  return (): FuzzCase => {
    const infer = random() < 0.3;
    let body = Buffer.from(infer ? inferBody() : scoreBody());
    const mutation = random();
    if (mutation < 0.15)
      body = body.subarray(0, int(body.length)); // truncated
    else if (mutation < 0.22)
      body = Buffer.from(Array.from({ length: int(200) }, () => int(256))); // random bytes
    else if (mutation < 0.26) body[int(body.length)] = int(256); // one corrupted byte
    const contentType = pick<string | undefined>([
      'application/json',
      'application/json',
      'application/json',
      'application/json; charset=utf-8',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      undefined,
      'application/json; charset=latin1',
    ]);
    const route = infer
      ? pick([
          '/v2/models/sample-classifier/infer',
          '/v2/models/sample-classifier/versions/1.0.0/infer',
          '/v2/models/x/infer',
        ])
      : pick(['/score', '/score', '/score?x=1', '/score/']);
    return { path: route, contentType, body };
  };
}

function send(url: string, agent: Agent, fuzz: FuzzCase): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'content-length': fuzz.body.length };
    if (fuzz.contentType !== undefined) headers['content-type'] = fuzz.contentType;
    const req = httpRequest(`${url}${fuzz.path}`, { method: 'POST', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(fuzz.body);
  });
}

describe('fuzzing the scoring routes', function () {
  this.timeout(TIME_BUDGET_MILLIS + 30_000);
  let app: RunningApp;
  before(async () => {
    app = await startApp({ env: { BODY_LIMIT: '64kb' } });
  });
  after(async () => {
    assert.equal(await app.stop(), 0);
  });

  it(`answers ${REQUESTS} malformed requests without a 5xx and keeps scoring correctly`, async () => {
    const next = makeGenerator(seeded(20240601));
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    const deadline = Date.now() + TIME_BUDGET_MILLIS;
    let sent = 0;
    const worker = async () => {
      while (sent < REQUESTS && Date.now() < deadline) {
        sent++;
        const fuzz = next();
        let status: number;
        try {
          status = await send(app.url, agent, fuzz);
        } catch (error) {
          // A socket the server closed after an error answer (e.g. 413) is fine; anything else is not.
          status = -1;
          if (!/ECONNRESET|socket hang up|EPIPE/.test((error as Error).message))
            failures.push(`${fuzz.path}: ${(error as Error).message}`);
        }
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status >= 500)
          failures.push(
            `${status} for ${fuzz.path} ${fuzz.contentType} ${fuzz.body.subarray(0, 200).toString('latin1')}`,
          );
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    agent.destroy();
    console.log(`      ${sent} requests; statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
    assert.deepEqual(failures.slice(0, 5), []);
    assert.ok(sent >= 1000, `only ${sent} requests in the time budget`);
    assert.equal(app.process.exitCode, null, 'the process exited');
    for (const status of statuses.keys())
      assert.ok([200, 400, 404, 413, 415, -1].includes(status), `unexpected status ${status}`);

    const layers = decodeMlpLayers(readFileSync(path.join(SAMPLE_MODEL_DIR, 'model.onnx')));
    const rows = [
      [5.1, 3.5, 1.4, 0.2],
      [6.7, 3.1, 4.4, 1.4],
    ];
    const { status, body } = await postJson(`${app.url}/score`, { data: rows });
    assert.equal(status, 200);
    const expected = referenceForward(layers, rows);
    body.outputs.probabilities
      .flat()
      .forEach((p: number, i: number) => assert.ok(Math.abs(p - expected.probabilities.flat()[i]) <= 1e-5));
    assert.ok(!('polluted' in {}), 'prototype pollution');
  });
});
