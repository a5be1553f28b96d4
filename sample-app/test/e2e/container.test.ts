// Builds the Dockerfile with podman (bases made from local files by test/support/nodeRuntimeBase.ts,
// since no image can be pulled here) and scores against the running container.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { APP_ROOT, getJson, postJson, SAMPLE_MODEL_DIR } from '../support/app-process.js';

const run = promisify(execFile);

interface NodeRuntimeBase {
  buildNodeRuntimeRootfsTar(
    outPath: string,
    options?: { buildTools?: boolean },
  ): Promise<{ path: string; sha256: string; size: number }>;
  importNodeRuntimeImage(tar: string, tag: string): Promise<string>;
  podmanUnusableReason(): Promise<string | undefined>;
  PODMAN_GLOBAL_ARGS: string[];
  PODMAN_RUN_ARGS: string[];
}

const RUNTIME_TAG = 'localhost/node-runtime:20';
const BUILD_TAG = 'localhost/node-build:20';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

describe('container image (podman)', function () {
  this.timeout(15 * 60_000);
  let base: NodeRuntimeBase;
  let work: string;
  const suffix = `${process.pid}-${Date.now()}`;
  const appTag = `localhost/scoring-service-test:${suffix}`;
  const containerName = `scoring-service-test-${suffix}`;
  const imageIds: string[] = [];
  const podman = (args: string[], timeout = 600_000) =>
    run('podman', [...base.PODMAN_GLOBAL_ARGS, ...args], { timeout, maxBuffer: 64 * 1024 * 1024 });

  before(async function () {
    const { tsImport } = await import('tsx/esm/api');
    base = (await tsImport(
      path.join(APP_ROOT, '..', 'test', 'support', 'nodeRuntimeBase.ts'),
      import.meta.url,
    )) as NodeRuntimeBase;
    const reason = await base.podmanUnusableReason();
    if (reason !== undefined) {
      console.log(`      skipped: ${reason}`);
      this.skip();
    }
    work = mkdtempSync(path.join(tmpdir(), 'scoring-image-'));
  });

  after(async () => {
    if (base === undefined || work === undefined) return;
    await podman(['rm', '--force', '--ignore', containerName]).catch(() => undefined);
    for (const image of [appTag, ...imageIds]) await podman(['rmi', '--force', image]).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  });

  it('builds the Dockerfile on local Node bases and serves the model from the container', async () => {
    const runtimeTar = await base.buildNodeRuntimeRootfsTar(path.join(work, 'runtime.tar'));
    imageIds.push(await base.importNodeRuntimeImage(runtimeTar.path, RUNTIME_TAG));
    const buildTar = await base.buildNodeRuntimeRootfsTar(path.join(work, 'build.tar'), { buildTools: true });
    imageIds.push(await base.importNodeRuntimeImage(buildTar.path, BUILD_TAG));
    rmSync(runtimeTar.path);
    rmSync(buildTar.path);

    // The build stage runs npm ci with no network, from an npm cache this host fills by the same npm ci.
    const npmCache = path.join(work, 'npm-cache');
    const primer = path.join(work, 'npm-primer');
    mkdirSync(path.join(primer, 'scripts'), { recursive: true });
    for (const file of ['package.json', 'package-lock.json', '.npmrc'])
      copyFileSync(path.join(APP_ROOT, file), path.join(primer, file));
    await run('npm', ['ci', '--cache', npmCache, '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'], {
      cwd: primer,
      env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
      timeout: 600_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    rmSync(primer, { recursive: true, force: true });
    await podman([
      'build',
      '--pull=never',
      '--layers=false',
      '--format',
      'docker',
      '--network',
      'none',
      ...base.PODMAN_RUN_ARGS,
      '--volume',
      `${npmCache}:/root/.npm`,
      '--build-arg',
      `BUILD_IMAGE=${BUILD_TAG}`,
      '--build-arg',
      `RUNTIME_IMAGE=${RUNTIME_TAG}`,
      '--build-arg',
      'npm_config_offline=true',
      '--tag',
      appTag,
      APP_ROOT,
    ]);

    const [image] = JSON.parse((await podman(['image', 'inspect', appTag])).stdout);
    assert.equal(image.Config.User, '1000:1000');
    assert.deepEqual(image.Config.Cmd, ['node', 'dist/main.js']);
    assert.ok(image.Config.Env.includes('MODEL_PATH=/models'));
    const healthcheck = image.Config.Healthcheck ?? image.Healthcheck;
    assert.ok(
      healthcheck?.Test?.join(' ').includes('/healthz'),
      `no HEALTHCHECK in ${JSON.stringify(Object.keys(image))}`,
    );

    const port = await freePort();
    await podman([
      'run',
      '--detach',
      '--name',
      containerName,
      '--network',
      'host',
      ...base.PODMAN_RUN_ARGS,
      '--env',
      `PORT=${port}`,
      '--env',
      'HOST=127.0.0.1',
      '--env',
      'OCI_IMAGE_REVISION=test-revision',
      appTag,
    ]);
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 60_000;
    while (
      (await fetch(`${url}/readyz`).then(
        (r) => r.status,
        () => 0,
      )) !== 200
    ) {
      if (Date.now() > deadline)
        throw new Error(`the container never became ready:\n${(await podman(['logs', containerName])).stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const samples = JSON.parse(readFileSync(path.join(SAMPLE_MODEL_DIR, 'samples.json'), 'utf8'));
    for (const sample of samples.requests) {
      const { status, body } = await postJson(`${url}/score`, sample.body);
      assert.equal(status, 200);
      body.outputs.probabilities
        .flat()
        .forEach((p: number, i: number) => assert.ok(Math.abs(p - sample.expected.probabilities.flat()[i]) <= 1e-5));
      assert.deepEqual(body.outputs.label, sample.expected.label);
    }
    const model = await getJson(`${url}/model`);
    assert.equal(model.file, '/models/model.onnx');
    assert.deepEqual(model.imageLabels, { 'org.opencontainers.image.revision': 'test-revision' });

    // podman stop sends SIGTERM: the service drains and exits 0 well within the 10 s.
    await podman(['stop', '--time', '10', containerName]);
    const [container] = JSON.parse((await podman(['container', 'inspect', containerName])).stdout);
    assert.equal(container.State.ExitCode, 0);
    const { stdout: logs } = await podman(['logs', containerName]);
    assert.match(logs, /"msg":"drained; exiting"/);
  });
});
