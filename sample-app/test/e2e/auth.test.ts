import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { getJson, postJson, type RunningApp, startApp } from '../support/app-process.js';

const ENV_KEYS = ['env-key-current-0123456789', 'env-key-previous-0123456789'];
const FILE_KEY = 'file-key-from-secret-0123456789';
const ROTATED_KEY = 'file-key-rotated-0123456789ab';

describe('API key auth', function () {
  let app: RunningApp;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'scoring-keys-'));
    writeFileSync(path.join(dir, 'keys'), `${FILE_KEY}\n`);
    app = await startApp({
      env: {
        ACCESS_LOG: 'true',
        API_KEYS: ENV_KEYS.join(','),
        API_KEYS_FILE: path.join(dir, 'keys'),
        API_KEYS_RELOAD_MS: '200',
      },
    });
  });
  after(async () => {
    await app.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const score = (headers: Record<string, string>) => postJson(`${app.url}/score`, { data: [[1, 2, 3, 4]] }, headers);
  const infer = (headers: Record<string, string>) =>
    postJson(
      `${app.url}/v2/models/sample-classifier/infer`,
      { inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] },
      headers,
    );

  it('answers 401 without a key or with a wrong one, on scoring and inference routes', async () => {
    for (const call of [score, infer]) {
      const none = await call({});
      assert.equal(none.status, 401);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="scoring"');
      assert.match(JSON.stringify(none.body), /an API key is required/);
      assert.equal((await call({ authorization: 'Bearer not-a-valid-key-at-all' })).status, 401);
      assert.equal((await call({ 'api-key': `${ENV_KEYS[0]}x` })).status, 401);
      assert.equal((await call({ authorization: `Basic ${ENV_KEYS[0]}` })).status, 401);
    }
    assert.equal((await fetch(`${app.url}/v2/models/sample-classifier`)).status, 401);
    assert.equal((await fetch(`${app.url}/model`)).status, 401);
  });

  it('answers 200 with each rotated key, as a bearer token or an api-key header', async () => {
    for (const key of [...ENV_KEYS, FILE_KEY]) {
      assert.equal((await score({ authorization: `Bearer ${key}` })).status, 200, key);
      assert.equal((await score({ 'api-key': key })).status, 200, key);
      assert.equal((await infer({ authorization: `Bearer ${key}` })).status, 200, key);
    }
    assert.equal((await getJson(`${app.url}/model`, { 'api-key': FILE_KEY })).name, 'sample-classifier');
  });

  it('keeps health, readiness and metrics open', async () => {
    for (const route of [
      '/healthz',
      '/readyz',
      '/metrics',
      '/v2/health/live',
      '/v2/health/ready',
      '/v2/models/sample-classifier/ready',
    ]) {
      assert.equal((await fetch(`${app.url}${route}`)).status, 200, route);
    }
  });

  it('picks up a rotated key file without a restart', async () => {
    writeFileSync(path.join(dir, 'keys'), `${ROTATED_KEY}\n`);
    const deadline = Date.now() + 10_000;
    while ((await score({ authorization: `Bearer ${ROTATED_KEY}` })).status !== 200) {
      assert.ok(Date.now() < deadline, 'the rotated key was never accepted');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal((await score({ authorization: `Bearer ${FILE_KEY}` })).status, 401);
    assert.equal((await score({ authorization: `Bearer ${ENV_KEYS[1]}` })).status, 200);
  });

  it('never writes a key to the logs', () => {
    const output = app.output();
    assert.ok(output.includes('"status":401'), 'the access log shows the refused requests');
    for (const key of [...ENV_KEYS, FILE_KEY, ROTATED_KEY])
      assert.ok(!output.includes(key), 'a key appears in the logs');
  });
});
