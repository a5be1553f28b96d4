import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { AZURITE_KEY } from '../support/azurite';
import { makeTempDir, repoRoot } from '../support/paths';

/**
 * The README's main job, end to end: PublishModel → FetchModel → BakeModelImage → DeployToAKS
 * (Kubernetes API test server) → scoring the baked image, each task run as the agent runs it with
 * output variables chained as a pipeline chains them (test/demo/run.ts). Run twice on one fresh
 * work folder: the second run must come from cache. Timings are printed, never asserted.
 */

interface DemoResult {
  outputs: { probabilities: number[][]; label: number[] };
  model: { name: string; version: string };
  imageRef: string;
  digest: string;
  seconds: number;
}

function runDemo(workDir: string, flags: string[] = []): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(repoRoot, 'test', 'demo', 'run.ts'), ...flags],
      {
        cwd: repoRoot,
        env: { ...process.env, MODEL_DELIVERY_DEMO_DIR: workDir, KUBECONFIG: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    const timer = setTimeout(() => child.kill('SIGINT'), 420_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

const samples = () =>
  JSON.parse(fs.readFileSync(path.join(repoRoot, 'sample-app', 'models', 'sample-classifier', 'samples.json'), 'utf8'));

function assertExpectedAnswer(result: DemoResult): void {
  const expected = samples().requests[0].expected;
  assert.deepEqual(result.model, { name: 'sample-classifier', version: '1.0.0' });
  assert.deepEqual(result.outputs.label, expected.label);
  result.outputs.probabilities[0].forEach((p, i) =>
    assert.ok(
      Math.abs(p - expected.probabilities[0][i]) < 1e-5,
      `probability ${i}: ${p} vs ${expected.probabilities[0][i]}`,
    ),
  );
}

function resultOf(output: string): DemoResult {
  const line = output.split('\n').find((l) => l.startsWith('DEMO_RESULT '));
  assert.ok(line, `the demo printed no result:\n${output.slice(-4000)}`);
  return JSON.parse(line.slice('DEMO_RESULT '.length)) as DemoResult;
}

describe('the whole flow, as the README runs it (npm start)', function () {
  this.timeout(900_000);
  const prerequisites = ['/usr/bin/docker-registry', path.join(repoRoot, 'sample-app', 'dist', 'main.js')].filter(
    (f) => !fs.existsSync(f),
  );
  let workDir: string;
  let first: { code: number | null; output: string };
  let second: { code: number | null; output: string };

  before(async function () {
    if (prerequisites.length) {
      console.log(`      skipped: ${prerequisites.join(', ')} missing (install docker-registry; npm run build)`);
      this.skip();
    }
    workDir = makeTempDir('demo-e2e-');
    first = await runDemo(workDir);
    second = await runDemo(workDir);
    console.log(
      `      first run ${resultOf(first.output).seconds.toFixed(1)} s, cached second run ${resultOf(second.output).seconds.toFixed(1)} s`,
    );
  });
  after(() => workDir && fs.rmSync(workDir, { recursive: true, force: true }));

  it('scores a request on the freshly baked image with the independently computed answer', () => {
    assert.equal(first.code, 0, first.output.slice(-4000));
    const result = resultOf(first.output);
    assertExpectedAnswer(result);
    assert.match(result.imageRef, /^127\.0\.0\.1:\d+\/ml\/sample-scoring@sha256:[0-9a-f]{64}$/);
    for (const stepTitle of [
      '[1/5] PublishModel',
      '[2/5] FetchModel',
      '[3/5] BakeModelImage',
      '[4/5]',
      '[5/5] scoring request',
    ])
      assert.ok(first.output.includes(stepTitle), stepTitle);
    assert.match(first.output, /DeployToAKS succeeded/);
    assert.match(first.output, /POST \/score: 200/, 'the deploy smoke test scored through the API server proxy');
  });

  it('runs again from cache: nothing downloaded, nothing uploaded, the same digest', () => {
    assert.equal(second.code, 0, second.output.slice(-4000));
    assert.equal(resultOf(second.output).digest, resultOf(first.output).digest);
    assert.match(second.output, /already published .*reusing it/);
    assert.match(second.output, /skipping the download/);
    assert.match(second.output, /uploaded 0 B, skipped/);
    assert.match(second.output, /app directory: cached/);
  });

  it('never prints a credential', () => {
    const password = fs.readFileSync(path.join(workDir, 'registry.password'), 'utf8').trim();
    for (const run of [first, second]) {
      assert.ok(!run.output.includes(password), 'the registry password leaked');
      assert.ok(!run.output.includes(AZURITE_KEY), 'the storage account key leaked');
    }
  });
});

describe('the whole flow on a machine without a registry or podman (npm start -- --no-registry --no-podman)', function () {
  this.timeout(600_000);
  let workDir: string;
  let run: { code: number | null; output: string };

  before(async function () {
    if (!fs.existsSync(path.join(repoRoot, 'sample-app', 'dist', 'main.js'))) this.skip();
    workDir = makeTempDir('demo-e2e-offline-');
    run = await runDemo(workDir, ['--no-registry', '--no-podman']);
  });
  after(() => workDir && fs.rmSync(workDir, { recursive: true, force: true }));

  it('bakes from and into OCI layouts, serves the unpacked layers with this node, and scores right', () => {
    assert.equal(run.code, 0, run.output.slice(-4000));
    const result = resultOf(run.output);
    assertExpectedAnswer(result);
    assert.match(result.imageRef, /^oci:.*image-layout:demo$/);
    assert.match(run.output, /baking from and into OCI image layout folders/);
    assert.match(run.output, /from the image's layers unpacked in/);
    assert.ok(!run.output.includes(AZURITE_KEY), 'the storage account key leaked');
  });
});
