import * as assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { ModelManifest } from '../../tasks/FetchModel/modelManifest';
import { credsOf, makeBaseImage, readLayoutImage, skopeoCopyToLayout, unpackLayers } from '../support/images';
import { buildNodeRuntimeRootfsTar, podmanUnusableReason, PODMAN_GLOBAL_ARGS, PODMAN_RUN_ARGS } from '../support/nodeRuntimeBase';
import { makeTempDir, repoRoot } from '../support/paths';
import { freePort } from '../support/ports';
import { startRegistry, type TestRegistry } from '../support/registry';
import { describeRun, runTask } from '../support/taskRunner';

const run = promisify(execFile);
const APP = path.join(repoRoot, 'sample-app');
const SAMPLE_MODEL = path.join(APP, 'models', 'sample-classifier');

/**
 * The whole scoring image with no Dockerfile and no daemon: a plain Node runtime base (host node
 * and its libraries), the built sample app as the app-directory layer, the sample model as the
 * model layer. Then the image is run (podman when it works here, else its layers unpacked and
 * started with the host's node) and scored over HTTP against the model's known answers.
 */
describe('BakeModelImage: the baked sample app serves its model', function () {
  this.timeout(600_000);
  let registry: TestRegistry;
  let work: string;
  let child: ChildProcess | undefined;
  let container: string | undefined;
  let pulled: string | undefined;

  before(function () {
    const missing = ['dist/main.js', 'node_modules/onnxruntime-node', 'node_modules/@nestjs/core'].filter((p) => !fs.existsSync(path.join(APP, p)));
    if (missing.length) {
      console.log(`    skipped: sample-app is not built yet (missing ${missing.join(', ')}); run npm ci && npm run build in sample-app/`);
      this.skip();
    }
  });

  after(async () => {
    child?.kill('SIGKILL');
    if (container) await run('podman', [...PODMAN_GLOBAL_ARGS, 'rm', '--force', '--ignore', container]).catch(() => undefined);
    if (pulled) await run('podman', [...PODMAN_GLOBAL_ARGS, 'rmi', '--force', pulled]).catch(() => undefined);
    await registry?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  async function waitReady(url: string, logs: () => string): Promise<void> {
    const deadline = Date.now() + 90_000;
    while ((await fetch(`${url}/readyz`).then((r) => r.status, () => 0)) !== 200) {
      if (Date.now() > deadline) throw new Error(`the app never became ready:\n${logs().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async function score(url: string): Promise<void> {
    const samples = JSON.parse(fs.readFileSync(path.join(SAMPLE_MODEL, 'samples.json'), 'utf8'));
    for (const sample of samples.requests) {
      const res = await fetch(`${url}/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(sample.body) });
      assert.equal(res.status, 200, `${sample.description}: ${await res.clone().text()}`);
      const body = (await res.json()) as { outputs: { probabilities: number[][]; label: unknown } };
      const expected = sample.expected.probabilities.flat() as number[];
      body.outputs.probabilities.flat().forEach((p, i) => assert.ok(Math.abs(p - expected[i]) <= samples.tolerance, `${sample.description}: ${p} vs ${expected[i]}`));
      assert.deepEqual(body.outputs.label, sample.expected.label);
    }
  }

  it('bakes runtime + app + model into one image that starts and scores', async () => {
    registry = await startRegistry();
    work = makeTempDir('bake-sample-app-');
    const runtime = await buildNodeRuntimeRootfsTar(path.join(work, 'runtime.tar'));
    await makeBaseImage(registry, { repository: 'runtimes/node', tag: '20-slim', rootfsTar: runtime.path, config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['node'] } });
    fs.rmSync(runtime.path);

    // The model as FetchModel leaves a single-file model: the file, its sidecar, and model-manifest.json.
    const modelDir = path.join(work, 'model');
    fs.cpSync(SAMPLE_MODEL, modelDir, { recursive: true });
    const onnx = fs.readFileSync(path.join(modelDir, 'model.onnx'));
    const sha256 = crypto.createHash('sha256').update(onnx).digest('hex');
    const manifest: ModelManifest = {
      schemaVersion: 1, name: 'sample-classifier', version: '1.0.0', layout: 'file',
      source: { type: 'azureBlob', uri: 'https://models.blob.core.windows.net/models/sample-classifier/1.0.0/model.onnx', etag: 'x', lastModified: '2026-11-01T00:00:00Z' },
      sha256, sizeBytes: onnx.length, files: [{ path: 'model.onnx', sizeBytes: onnx.length, sha256 }], fetchedAt: new Date().toISOString(),
    };
    fs.writeFileSync(path.join(modelDir, 'model-manifest.json'), JSON.stringify(manifest));

    const result = await runTask('BakeModelImage', {
      inputs: {
        connectionType: 'dockerRegistry', dockerRegistryServiceConnection: 'reg', repository: `${registry.host}/ml/scoring`,
        baseImage: `${registry.host}/runtimes/node:20-slim`, modelPath: modelDir,
        appDirectory: APP, appTargetPath: '/app',
        // The sample app's .dockerignore is for its Dockerfile, which builds dist and node_modules itself; here they are the build output.
        appExclude: ['!dist', '!node_modules', 'src', 'test', 'scripts', 'models', 'k8s', 'Dockerfile', '.test-build', 'tsconfig*.json', 'node_modules/typescript', 'node_modules/onnx-proto', 'node_modules/@esbuild', 'node_modules/esbuild', 'node_modules/tsx', 'node_modules/mocha', 'node_modules/@types', '**/*.map'].join('\n'),
        workingDir: '/app', cmd: '["node", "dist/main.js"]', user: '1000:1000', exposedPorts: '8080', env: 'NODE_ENV=production',
        compression: 'gzip', compressionLevel: '1', tags: 'e2e',
      },
      endpoints: [{ id: 'reg', scheme: 'UsernamePassword', auth: { username: registry.username, password: registry.password, registry: registry.url } }],
      timeoutMs: 300_000,
    });
    assert.equal(result.result, 'Succeeded', describeRun(result));
    const ref = `${registry.host}/ml/scoring@${result.outputs.ImageDigest}`;

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const reason = await podmanUnusableReason();
    if (!reason) {
      container = `bake-e2e-${crypto.randomBytes(4).toString('hex')}`;
      await run('podman', [...PODMAN_GLOBAL_ARGS, 'pull', '--tls-verify=false', ...credsOf(registry), `docker://${ref}`], { timeout: 300_000, maxBuffer: 16 << 20 });
      pulled = ref;
      await run('podman', [...PODMAN_GLOBAL_ARGS, 'run', '--detach', '--name', container, '--network', 'host', ...PODMAN_RUN_ARGS, '--env', `PORT=${port}`, '--env', 'HOST=127.0.0.1', ref], { timeout: 120_000 });
      let logs = '';
      await waitReady(url, () => logs).catch(async (err) => {
        logs = (await run('podman', [...PODMAN_GLOBAL_ARGS, 'logs', container!]).catch((e) => e)).stderr ?? '';
        throw new Error(`${(err as Error).message}\n${logs}`);
      });
      await score(url);
      const model = (await (await fetch(`${url}/model`)).json()) as { file: string };
      assert.equal(model.file, '/models/sample-classifier/model.onnx');
    } else {
      console.log(`    podman cannot run containers here (${reason}): unpacking the image and starting it with the host's node`);
      const layout = path.join(work, 'layout');
      await skopeoCopyToLayout(registry, ref, layout);
      const image = readLayoutImage(layout);
      const rootfs = path.join(work, 'rootfs');
      await unpackLayers(image.manifest.layers.map((l: { digest: string }) => image.blob(l.digest)), rootfs);
      const env: Record<string, string> = { PATH: process.env.PATH ?? '' };
      for (const line of image.config.config.Env as string[]) {
        const eq = line.indexOf('=');
        env[line.slice(0, eq)] = line.slice(eq + 1);
      }
      env.MODEL_PATH = path.join(rootfs, env.MODEL_PATH);
      let logs = '';
      child = spawn(process.execPath, [path.join(rootfs, 'app', 'dist', 'main.js')], { cwd: path.join(rootfs, 'app'), env: { ...env, PORT: String(port), HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout!.on('data', (c) => (logs += c));
      child.stderr!.on('data', (c) => (logs += c));
      await waitReady(url, () => logs);
      await score(url);
    }
  });
});
