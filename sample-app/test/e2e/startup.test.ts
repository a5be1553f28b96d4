// The service refuses to start, with a clear message and exit code 1, on bad config or an unusable model.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { getJson, runToExit, SAMPLE_MODEL_DIR, startApp } from '../support/app-process.js';

describe('start-up checks', function () {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'scoring-startup-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function refuses(env: Record<string, string>, message: RegExp): Promise<void> {
    const { code, logs, output } = await runToExit(env);
    assert.equal(code, 1, output);
    const fatal = logs.find((line) => line.level === 'fatal');
    assert.ok(fatal, `no fatal log line in:\n${output}`);
    assert.match(fatal.msg, /^refusing to start: /);
    assert.match(fatal.msg, message);
  }

  it('without MODEL_PATH', () => refuses({}, /MODEL_PATH is required/));
  it('with bad settings, naming each', () =>
    refuses(
      { MODEL_PATH: SAMPLE_MODEL_DIR, PORT: 'http', BATCH_MAX_ROWS: '0' },
      /PORT must be an integer from 0 to 65535 \(got "http"\).*BATCH_MAX_ROWS must be an integer from 1/,
    ));
  it('with a model path that does not exist', () =>
    refuses({ MODEL_PATH: path.join(dir, 'missing.onnx') }, /MODEL_PATH ".*missing.onnx" cannot be read/));
  it('with a folder holding no model', () => {
    mkdirSync(path.join(dir, 'empty'));
    return refuses({ MODEL_PATH: path.join(dir, 'empty') }, /is a folder with no .onnx file/);
  });
  it('with a file that is not an ONNX model', () => {
    writeFileSync(path.join(dir, 'broken.onnx'), 'this is not protobuf');
    return refuses({ MODEL_PATH: path.join(dir, 'broken.onnx') }, /is not a model onnxruntime can load/);
  });
  it('with a model whose digest is not MODEL_SHA256', () =>
    refuses(
      { MODEL_PATH: SAMPLE_MODEL_DIR, MODEL_SHA256: '0'.repeat(64) },
      /has sha256 [0-9a-f]{64} and its folder's digest is [0-9a-f]{64}, but MODEL_SHA256 says 0{64}/,
    ));

  it('starts when MODEL_SHA256 is the folder digest FetchModel gives a folder model (sorted sha256sum lines)', async () => {
    const lines = execFileSync(
      'sh',
      ['-c', 'find . -type f ! -name model-manifest.json | sed "s|^./||" | LC_ALL=C sort | xargs sha256sum'],
      { cwd: SAMPLE_MODEL_DIR, encoding: 'utf8' },
    );
    const digest = createHash('sha256').update(lines).digest('hex');
    const app = await startApp({ env: { MODEL_PATH: SAMPLE_MODEL_DIR, MODEL_SHA256: digest } });
    try {
      assert.deepEqual(await getJson(`${app.url}/readyz`), { status: 'ready' });
    } finally {
      await app.stop();
    }
  });
  it('with a model.json that is not JSON', () => {
    mkdirSync(path.join(dir, 'badjson'));
    copyFileSync(path.join(SAMPLE_MODEL_DIR, 'model.onnx'), path.join(dir, 'badjson', 'model.onnx'));
    writeFileSync(path.join(dir, 'badjson', 'model.json'), '{name:');
    return refuses({ MODEL_PATH: path.join(dir, 'badjson') }, /model.json is not a valid JSON object/);
  });

  it('takes name and version from env over model.json, and serves a bare .onnx file by its file name', async () => {
    mkdirSync(path.join(dir, 'bare'));
    copyFileSync(path.join(SAMPLE_MODEL_DIR, 'model.onnx'), path.join(dir, 'bare', 'iris.onnx'));
    const bare = await startApp({ env: { MODEL_PATH: path.join(dir, 'bare', 'iris.onnx') } });
    try {
      assert.deepEqual(
        [(await getJson(`${bare.url}/model`)).name, (await getJson(`${bare.url}/model`)).version],
        ['iris', '1'],
      );
    } finally {
      await bare.stop();
    }
    const named = await startApp({ env: { MODEL_NAME: 'fraud-detector', MODEL_VERSION: '2024.06.1' } });
    try {
      const model = await getJson(`${named.url}/model`);
      assert.deepEqual([model.name, model.version], ['fraud-detector', '2024.06.1']);
      assert.equal((await fetch(`${named.url}/v2/models/fraud-detector/versions/2024.06.1/ready`)).status, 200);
    } finally {
      await named.stop();
    }
  });
});
