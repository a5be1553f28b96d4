import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { ModelManifest } from '../../tasks/common/model/modelManifest';
import { makeBaseImage } from '../support/images';
import { buildNodeRuntimeRootfsTar } from '../support/nodeRuntimeBase';
import { makeTempDir, repoRoot } from '../support/paths';
import { startRegistry, type TestRegistry } from '../support/registry';
import { type ServedImage, serveImage } from '../support/serveImage';
import { describeRun, runTask } from '../support/taskRunner';

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
  let served: ServedImage | undefined;

  before(function () {
    const missing = ['dist/main.js', 'node_modules/onnxruntime-node', 'node_modules/@nestjs/core'].filter(
      (p) => !fs.existsSync(path.join(APP, p)),
    );
    if (missing.length) {
      console.log(
        `    skipped: sample-app is not built yet (missing ${missing.join(', ')}); run npm ci && npm run build in sample-app/`,
      );
      this.skip();
    }
  });

  after(async () => {
    await served?.stop();
    await registry?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  async function score(url: string): Promise<void> {
    const samples = JSON.parse(fs.readFileSync(path.join(SAMPLE_MODEL, 'samples.json'), 'utf8'));
    for (const sample of samples.requests) {
      const res = await fetch(`${url}/score`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(sample.body),
      });
      assert.equal(res.status, 200, `${sample.description}: ${await res.clone().text()}`);
      const body = (await res.json()) as { outputs: { probabilities: number[][]; label: unknown } };
      const expected = sample.expected.probabilities.flat() as number[];
      body.outputs.probabilities
        .flat()
        .forEach((p, i) =>
          assert.ok(Math.abs(p - expected[i]) <= samples.tolerance, `${sample.description}: ${p} vs ${expected[i]}`),
        );
      assert.deepEqual(body.outputs.label, sample.expected.label);
    }
  }

  it('bakes runtime + app + model into one image that starts and scores', async () => {
    registry = await startRegistry();
    work = makeTempDir('bake-sample-app-');
    const runtime = await buildNodeRuntimeRootfsTar(path.join(work, 'runtime.tar'));
    await makeBaseImage(registry, {
      repository: 'runtimes/node',
      tag: '20-slim',
      rootfsTar: runtime.path,
      config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['node'] },
    });
    fs.rmSync(runtime.path);

    // The model as FetchModel leaves a single-file model: the file, its sidecar, and model-manifest.json.
    const modelDir = path.join(work, 'model');
    fs.cpSync(SAMPLE_MODEL, modelDir, { recursive: true });
    const onnx = fs.readFileSync(path.join(modelDir, 'model.onnx'));
    const sha256 = crypto.createHash('sha256').update(onnx).digest('hex');
    const manifest: ModelManifest = {
      schemaVersion: 1,
      name: 'sample-classifier',
      version: '1.0.0',
      layout: 'file',
      source: {
        type: 'azureBlob',
        uri: 'https://models.blob.core.windows.net/models/sample-classifier/1.0.0/model.onnx',
        etag: 'x',
        lastModified: '2026-11-01T00:00:00Z',
      },
      sha256,
      sizeBytes: onnx.length,
      files: [{ path: 'model.onnx', sizeBytes: onnx.length, sha256 }],
      fetchedAt: new Date().toISOString(),
    };
    fs.writeFileSync(path.join(modelDir, 'model-manifest.json'), JSON.stringify(manifest));

    const result = await runTask('BakeModelImage', {
      inputs: {
        connectionType: 'dockerRegistry',
        dockerRegistryServiceConnection: 'reg',
        repository: `${registry.host}/ml/scoring`,
        baseImage: `${registry.host}/runtimes/node:20-slim`,
        modelPath: modelDir,
        appDirectory: APP,
        appTargetPath: '/app',
        // The sample app's .dockerignore is for its Dockerfile, which builds dist and node_modules itself; here they are the build output.
        appExclude: [
          '!dist',
          '!node_modules',
          'src',
          'test',
          'scripts',
          'models',
          'k8s',
          'Dockerfile',
          '.test-build',
          'tsconfig*.json',
          'node_modules/typescript',
          'node_modules/onnx-proto',
          'node_modules/@esbuild',
          'node_modules/esbuild',
          'node_modules/tsx',
          'node_modules/mocha',
          'node_modules/@types',
          '**/*.map',
        ].join('\n'),
        workingDir: '/app',
        cmd: '["node", "dist/main.js"]',
        user: '1000:1000',
        exposedPorts: '8080',
        env: 'NODE_ENV=production',
        compression: 'gzip',
        compressionLevel: '1',
        tags: 'e2e',
      },
      endpoints: [
        {
          id: 'reg',
          scheme: 'UsernamePassword',
          auth: { username: registry.username, password: registry.password, registry: registry.url },
        },
      ],
      timeoutMs: 300_000,
    });
    assert.equal(result.result, 'Succeeded', describeRun(result));
    const ref = `${registry.host}/ml/scoring@${result.outputs.ImageDigest}`;

    served = await serveImage({ registry, ref }, { workDir: work, say: console.log });
    await score(served.url);
    if (served.via === 'podman') {
      const model = (await (await fetch(`${served.url}/model`)).json()) as { file: string };
      assert.equal(model.file, '/models/sample-classifier/model.onnx');
    }
  });
});
