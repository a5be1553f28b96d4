import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

import type { ModelManifest } from '../../tasks/common/model/modelManifest';
import { bakeThrough, committedBlobsThrough, failed, registryEndpoint, succeeded } from '../support/bakeRuns';
import { type FaultProxy, startFaultProxy } from '../support/faultProxy';
import {
  listLayer,
  makeBaseImage,
  type PushedBaseImage,
  readLayoutImage,
  skopeoCopyToLayout,
  skopeoInspect,
  unpackLayers,
} from '../support/images';
import { makeTempDir } from '../support/paths';
import { startRegistry, type TestRegistry } from '../support/registry';
import { runTask, type RunTaskOptions } from '../support/taskRunner';

const run = promisify(execFile);

/**
 * BakeModelImage run as the agent runs it, against a real distribution registry (htpasswd)
 * behind the fault proxy, with skopeo and GNU tar as the independent readers of the result.
 */
describe('BakeModelImage task (real registry, skopeo as verifier)', function () {
  this.timeout(180_000);
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let host: string;
  let work: string;
  let ociBase: PushedBaseImage;

  const endpoint = () => registryEndpoint('acr-push', proxy, registry);

  const bake = (inputs: Record<string, string | undefined>, opts: Partial<RunTaskOptions> = {}) =>
    bakeThrough(endpoint(), inputs, opts);

  /** A model file with FetchModel's manifest beside it, as FetchModel leaves it. */
  function fetchedModelFile(dir: string, name: string, version: string, bytes: Buffer): string {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'model.onnx');
    fs.writeFileSync(file, bytes);
    const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
    const manifest: ModelManifest = {
      schemaVersion: 1,
      name,
      version,
      layout: 'file',
      source: {
        type: 'azureBlob',
        uri: `https://models.blob.core.windows.net/models/${name}/${version}/model.onnx`,
        container: 'models',
        etag: '0x8DC',
        lastModified: '2026-11-01T00:00:00Z',
      },
      sha256,
      sizeBytes: bytes.length,
      files: [{ path: 'model.onnx', sizeBytes: bytes.length, sha256 }],
      fetchedAt: new Date().toISOString(),
    };
    fs.writeFileSync(path.join(dir, 'model-manifest.json'), JSON.stringify(manifest));
    return file;
  }

  function randomBytes(n: number, seed: string): Buffer {
    const out = Buffer.alloc(n);
    let block = crypto.createHash('sha256').update(seed).digest();
    for (let i = 0; i < n; i += 32) {
      block.copy(out, i);
      block = crypto.createHash('sha256').update(block).digest();
    }
    return out;
  }

  const committedBlobs = () => committedBlobsThrough(proxy);

  function blobBytesSent(): number {
    return proxy.stats.requests
      .filter((r) => /\/blobs\/uploads\//.test(r.path) && (r.method === 'PATCH' || r.method === 'PUT'))
      .reduce((n, r) => n + r.bytesIn, 0);
  }

  before(async () => {
    registry = await startRegistry();
    proxy = await startFaultProxy({ target: registry.url });
    host = `127.0.0.1:${proxy.port}`;
    work = makeTempDir('bake-test-');
    ociBase = await makeBaseImage(registry, {
      repository: 'apps/scoring-app',
      tag: '1.0',
      files: { 'app/main.js': 'console.log("app")\n', 'etc/os-release': 'ID=test\n' },
      config: { Cmd: ['node', '/app/main.js'], WorkingDir: '/app' },
    });
  });

  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  beforeEach(() => {
    proxy.setFaults([]);
    proxy.resetStats();
  });

  it('bakes a model onto an OCI base: skopeo accepts it, the layer holds the model bytes, labels and env are set (node24)', async () => {
    const model = randomBytes(300_000, 'churn-1.4.2');
    const modelFile = fetchedModelFile(path.join(work, 'm1'), 'churn', '1.4.2', model);
    const r = succeeded(
      await bake(
        { repository: `${host}/scoring`, baseImage: `${host}/apps/scoring-app:1.0`, modelPath: modelFile },
        { node: 'node24', variables: { 'Build.BuildId': '101' } },
      ),
    );
    const digest = r.outputs.ImageDigest;
    assert.match(digest, /^sha256:[a-f0-9]{64}$/);
    assert.equal(r.outputs.ImageRef, `${host}/scoring@${digest}`);
    assert.equal(r.outputs.ImageTags, '101,1.4.2');
    assert.match(r.summaries[0], /Bake model image/);
    assert.match(r.summaries[0], new RegExp(digest));

    const inspect = await skopeoInspect(registry, `${registry.host}/scoring:1.4.2`);
    assert.equal(inspect.Digest, digest);
    assert.deepEqual([...inspect.RepoTags].sort(), ['1.4.2', '101']);
    assert.equal(inspect.Labels['org.modeldelivery.model.name'], 'churn');
    assert.equal(inspect.Labels['org.modeldelivery.model.version'], '1.4.2');
    assert.equal(
      inspect.Labels['org.modeldelivery.model.sha256'],
      crypto.createHash('sha256').update(model).digest('hex'),
    );
    assert.equal(
      inspect.Labels['org.modeldelivery.model.source'],
      'https://models.blob.core.windows.net/models/churn/1.4.2/model.onnx',
    );
    assert.equal(inspect.Labels['org.opencontainers.image.base.digest'], ociBase.digest);
    assert.equal(inspect.Labels['org.opencontainers.image.base.name'], `${host}/apps/scoring-app:1.0`);
    assert.equal(inspect.Labels['org.opencontainers.image.revision'], '0123456789abcdef0123456789abcdef01234567');
    assert.equal(inspect.Labels['org.opencontainers.image.version'], '1.4.2');
    assert.equal(inspect.Labels['org.modeldelivery.pipeline.runId'], undefined, 'run labels only on request');
    assert.ok(inspect.Env.includes('MODEL_PATH=/models/churn/model.onnx'), inspect.Env.join('\n'));
    assert.ok(inspect.Env.includes('MODEL_NAME=churn'));
    assert.ok(inspect.Env.includes('MODEL_VERSION=1.4.2'));
    assert.ok(inspect.Env.includes(`MODEL_SHA256=${crypto.createHash('sha256').update(model).digest('hex')}`));
    assert.ok(inspect.Env.includes('PATH=/usr/local/bin:/usr/bin:/bin'), 'base env kept');
    const config = await skopeoInspect(registry, `${registry.host}/scoring:101`, 'config');
    assert.deepEqual(config.config.Cmd, ['node', '/app/main.js'], 'base command kept');
    assert.equal(config.created, '1970-01-01T00:00:00Z');
    assert.equal(config.history.at(-1).empty_layer, true);
    const raw = await skopeoInspect(registry, `${registry.host}/scoring@${digest}`, 'raw');
    assert.equal(raw.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(raw.annotations['org.modeldelivery.model.name'], 'churn');

    const layout = path.join(work, 'copied-1');
    await skopeoCopyToLayout(registry, `${registry.host}/scoring@${digest}`, layout);
    const image = readLayoutImage(layout);
    assert.equal(image.manifest.layers.length, 2);
    const modelLayer = image.blob(image.manifest.layers[1].digest);
    const listing = await listLayer(modelLayer);
    assert.deepEqual(
      listing.map((l) => l.replace(/\s+/g, ' ')),
      [
        'drwxr-xr-x 0/0 0 1970-01-01 00:00:00 models/',
        'drwxr-xr-x 0/0 0 1970-01-01 00:00:00 models/churn/',
        `-rw-r--r-- 0/0 ${model.length} 1970-01-01 00:00:00 models/churn/model.onnx`,
      ],
    );
    const rootfs = path.join(work, 'rootfs-1');
    await unpackLayers(
      image.manifest.layers.map((l: { digest: string }) => image.blob(l.digest)),
      rootfs,
    );
    assert.ok(
      fs.readFileSync(path.join(rootfs, 'models/churn/model.onnx')).equals(model),
      'model bytes in the image equal the source',
    );
    assert.equal(
      fs.readFileSync(path.join(rootfs, 'app/main.js'), 'utf8'),
      'console.log("app")\n',
      'base layer under it',
    );
  });

  it('gives the same digest on a re-bake (node20 and node24) and uploads 0 blob bytes; a new model uploads only its layer and the config', async () => {
    const modelDir = path.join(work, 'm2');
    const modelFile = fetchedModelFile(modelDir, 'fraud', '7', randomBytes(1_500_000, 'fraud-7'));
    const inputs = {
      repository: `${host}/repro`,
      baseImage: `${host}/apps/scoring-app:1.0`,
      modelPath: modelFile,
      compression: 'none',
      uploadChunkSize: '512KiB',
    };
    const first = succeeded(await bake(inputs));
    assert.ok(Number(first.outputs.BytesUploaded) > 1_500_000);

    proxy.resetStats();
    // FetchModel rewrites its manifest (fetchedAt) on every run; the digest must not move.
    const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'model-manifest.json'), 'utf8'));
    fs.writeFileSync(
      path.join(modelDir, 'model-manifest.json'),
      JSON.stringify({ ...manifest, fetchedAt: '2030-01-01T00:00:00Z' }),
    );
    fs.utimesSync(modelFile, new Date(), new Date());
    const second = succeeded(await bake(inputs, { node: 'node24' }));
    assert.equal(second.outputs.ImageDigest, first.outputs.ImageDigest);
    assert.equal(second.outputs.BytesUploaded, '0');
    assert.deepEqual(committedBlobs(), []);
    assert.equal(blobBytesSent(), 0, 'no blob bytes crossed the wire');

    proxy.resetStats();
    const newModel = fetchedModelFile(path.join(work, 'm2b'), 'fraud', '8', randomBytes(1_000_000, 'fraud-8'));
    const third = succeeded(await bake({ ...inputs, modelPath: newModel }));
    assert.notEqual(third.outputs.ImageDigest, first.outputs.ImageDigest);
    const raw = await skopeoInspect(registry, `${registry.host}/repro@${third.outputs.ImageDigest}`, 'raw');
    const modelLayer = raw.layers.at(-1);
    assert.deepEqual(
      committedBlobs().sort(),
      [modelLayer.digest, raw.config.digest].sort(),
      'only the model layer and the config were uploaded',
    );
    assert.equal(blobBytesSent(), modelLayer.size + raw.config.size);
    assert.equal(Number(third.outputs.BytesUploaded), modelLayer.size + raw.config.size);
    const manifestPuts = proxy.stats.requests.filter((r) => r.method === 'PUT' && /\/manifests\//.test(r.path));
    assert.deepEqual(manifestPuts.map((r) => r.path.split('/manifests/')[1]).sort(), ['42', '8']);
  });

  it('survives resets and 503s during upload with the same digest as a clean push', async () => {
    const modelFile = fetchedModelFile(path.join(work, 'm3'), 'vision', '2.0', randomBytes(2_000_000, 'vision'));
    // The title label defaults to the repository name; pin it so both repositories get one image.
    const inputs = {
      baseImage: `${host}/apps/scoring-app:1.0`,
      modelPath: modelFile,
      compression: 'none',
      uploadChunkSize: '256KiB',
      labels: 'org.opencontainers.image.title=vision',
    };
    const clean = succeeded(await bake({ ...inputs, repository: `${host}/clean` }));
    proxy.resetStats();
    proxy.setFaults([
      { match: /^PATCH .*\/blobs\/uploads\//, every: 3, times: 2, resetAfterBytes: 100_000, direction: 'request' },
      { match: /^PATCH .*\/blobs\/uploads\//, status: 503, retryAfter: '0', times: 1 },
      { match: /^PUT .*\/blobs\/uploads\//, status: 503, times: 1 },
      { match: /^PUT .*\/manifests\//, status: 503, retryAfter: '0', times: 1 },
      { match: /^HEAD /, resetAfterBytes: 0, times: 1 },
    ]);
    const faulty = succeeded(await bake({ ...inputs, repository: `${host}/faulty` }));
    assert.ok(proxy.stats.faultsInjected >= 5, `faults injected: ${proxy.stats.faultsInjected}`);
    assert.equal(faulty.outputs.ImageDigest, clean.outputs.ImageDigest);
    assert.ok(
      faulty.logLines.some((l) => /retrying/.test(l)),
      'the retries are logged',
    );
    proxy.setFaults([]);
    const inspect = await skopeoInspect(registry, `${registry.host}/faulty@${faulty.outputs.ImageDigest}`);
    assert.equal(inspect.Digest, clean.outputs.ImageDigest);
    await skopeoCopyToLayout(
      registry,
      `${registry.host}/faulty@${faulty.outputs.ImageDigest}`,
      path.join(work, 'copied-faulty'),
    );
  });

  it('bakes a folder model and an app directory (with .dockerignore) onto a plain runtime base, uncompressed, with entrypoint and workdir', async () => {
    const modelDir = path.join(work, 'm4');
    fs.mkdirSync(path.join(modelDir, 'tokenizer'), { recursive: true });
    fs.writeFileSync(path.join(modelDir, 'model.onnx'), randomBytes(50_000, 'folder-model'));
    fs.writeFileSync(path.join(modelDir, 'tokenizer', 'vocab.txt'), 'a\nb\n');
    const app = path.join(work, 'app4');
    fs.mkdirSync(path.join(app, 'dist'), { recursive: true });
    fs.mkdirSync(path.join(app, 'test'), { recursive: true });
    fs.mkdirSync(path.join(app, 'node_modules', 'dep'), { recursive: true });
    fs.writeFileSync(path.join(app, 'dist', 'main.js'), 'require("dep")\n');
    fs.writeFileSync(path.join(app, 'dist', 'main.js.map'), '{}');
    fs.writeFileSync(path.join(app, 'start.sh'), '#!/bin/sh\nexec node dist/main.js\n', { mode: 0o700 });
    fs.writeFileSync(path.join(app, 'test', 'a.test.js'), '');
    fs.writeFileSync(path.join(app, 'node_modules', 'dep', 'index.js'), 'module.exports = 1\n');
    fs.writeFileSync(path.join(app, 'secret.env'), 'X=1');
    fs.symlinkSync('dist/main.js', path.join(app, 'entry.js'));
    fs.writeFileSync(path.join(app, '.dockerignore'), '# local only\ntest\n*.env\n');
    await makeBaseImage(registry, {
      repository: 'runtimes/node',
      tag: '20',
      files: { 'usr/local/bin/node': '#!/bin/sh\n' },
      config: { Cmd: ['node'] },
    });
    const layoutDir = path.join(work, 'layout-4');
    const r = succeeded(
      await bake({
        repository: `${host}/folder-app`,
        baseImage: `${host}/runtimes/node:20`,
        modelPath: modelDir,
        modelName: 'ranker',
        modelVersion: '2024.05 rc1',
        appDirectory: app,
        appTargetPath: '/srv/app',
        appExclude: '**/*.map',
        entrypoint: '["/srv/app/start.sh"]',
        workingDir: '/srv/app',
        user: '1000',
        exposedPorts: '3000',
        env: 'LOG_LEVEL=debug\nPORT=3000',
        labels: 'team=ml',
        compression: 'none',
        includeRunLabels: 'true',
        outputLayout: layoutDir,
      }),
    );
    assert.equal(r.outputs.ImageTags, '42,2024.05-rc1');
    const config = await skopeoInspect(registry, `${registry.host}/folder-app:42`, 'config');
    assert.deepEqual(config.config.Entrypoint, ['/srv/app/start.sh']);
    assert.equal(config.config.Cmd ?? null, null, 'a new entrypoint drops the base command, as a Dockerfile does');
    assert.equal(config.config.WorkingDir, '/srv/app');
    assert.equal(config.config.User, '1000');
    assert.deepEqual(config.config.ExposedPorts, { '3000/tcp': {} });
    assert.ok(config.config.Env.includes('MODEL_PATH=/models/ranker'));
    // No model-manifest.json: the folder digest is hashed as FetchModel defines it (sorted `sha256sum` lines).
    const sum = (f: string) =>
      crypto
        .createHash('sha256')
        .update(fs.readFileSync(path.join(modelDir, f)))
        .digest('hex');
    const folderDigest = crypto
      .createHash('sha256')
      .update(`${sum('model.onnx')}  model.onnx\n${sum('tokenizer/vocab.txt')}  tokenizer/vocab.txt\n`)
      .digest('hex');
    assert.ok(config.config.Env.includes(`MODEL_SHA256=${folderDigest}`), config.config.Env.join('\n'));
    assert.ok(config.config.Env.includes('LOG_LEVEL=debug'));
    assert.equal(config.config.Labels.team, 'ml');
    assert.equal(config.config.Labels['org.modeldelivery.pipeline.runId'], '42');
    assert.equal(config.config.Labels['org.modeldelivery.pipeline.project'], 'ml-platform');
    assert.equal(config.history.length, 4);
    const raw = await skopeoInspect(registry, `${registry.host}/folder-app:42`, 'raw');
    assert.deepEqual(
      raw.layers.map((l: { mediaType: string }) => l.mediaType),
      [
        'application/vnd.oci.image.layer.v1.tar+gzip',
        'application/vnd.oci.image.layer.v1.tar',
        'application/vnd.oci.image.layer.v1.tar',
      ],
    );

    // The OCI layout written beside the push is the same image, and skopeo reads it.
    const { stdout } = await run('skopeo', ['inspect', `oci:${layoutDir}:42`]);
    assert.equal(JSON.parse(stdout).Digest, r.outputs.ImageDigest);
    const image = readLayoutImage(layoutDir, '42');
    const appListing = (await listLayer(image.blob(image.manifest.layers[1].digest))).map((l) =>
      l.replace(/\s+/g, ' '),
    );
    assert.deepEqual(
      appListing.map((l) => l.split(' ').slice(5).join(' ')),
      [
        'srv/',
        'srv/app/',
        'srv/app/.dockerignore',
        'srv/app/dist/',
        'srv/app/dist/main.js',
        'srv/app/entry.js -> dist/main.js',
        'srv/app/node_modules/',
        'srv/app/node_modules/dep/',
        'srv/app/node_modules/dep/index.js',
        'srv/app/start.sh',
      ],
    );
    assert.ok(
      appListing.find((l) => l.endsWith('srv/app/start.sh'))!.startsWith('-rwxr-xr-x 0/0'),
      'executables are 0755',
    );
    const modelListing = (await listLayer(image.blob(image.manifest.layers[2].digest))).map((l) =>
      l.split(/\s+/).slice(5).join(' '),
    );
    assert.deepEqual(modelListing, [
      'models/',
      'models/ranker/',
      'models/ranker/model.onnx',
      'models/ranker/tokenizer/',
      'models/ranker/tokenizer/vocab.txt',
    ]);
  });

  it('resolves a multi-platform index to the platform asked for', async () => {
    const multi = await makeBaseImage(registry, {
      repository: 'apps/multi',
      tag: 'v1',
      platforms: [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64', variant: 'v8' },
      ],
    });
    const modelFile = fetchedModelFile(path.join(work, 'm5'), 'multi', '1', randomBytes(10_000, 'multi'));
    const r = succeeded(
      await bake({
        repository: `${host}/multi-out`,
        baseImage: `${host}/apps/multi:v1`,
        modelPath: modelFile,
        platform: 'linux/arm64',
      }),
    );
    const config = await skopeoInspect(registry, `${registry.host}/multi-out@${r.outputs.ImageDigest}`, 'config');
    assert.equal(config.architecture, 'arm64');
    assert.equal(config.rootfs.diff_ids[0], multi.layerDiffIds['linux/arm64']);
    const raw = await skopeoInspect(registry, `${registry.host}/multi-out@${r.outputs.ImageDigest}`, 'raw');
    assert.equal(
      raw.mediaType,
      'application/vnd.oci.image.manifest.v1+json',
      'the output is the platform image, not an index',
    );
    const missing = failed(
      await bake({
        repository: `${host}/multi-out`,
        baseImage: `${host}/apps/multi:v1`,
        modelPath: modelFile,
        platform: 'windows/amd64',
      }),
    );
    assert.match(missing.message, /baseImage/);
    assert.match(missing.message, /no windows\/amd64 variant; it has linux\/amd64, linux\/arm64\/v8/);
  });

  it('keeps a Docker v2 base a Docker v2 image', async () => {
    await makeBaseImage(registry, { repository: 'apps/docker-style', tag: '3', format: 'v2s2' });
    const modelFile = fetchedModelFile(path.join(work, 'm6'), 'dock', '1', randomBytes(20_000, 'dock'));
    const layoutDir = path.join(work, 'layout-6');
    const r = succeeded(
      await bake({
        repository: `${host}/docker-out`,
        baseImage: `${host}/apps/docker-style:3`,
        modelPath: modelFile,
        compressionLevel: '9',
        outputLayout: layoutDir,
        tags: 'v2',
      }),
    );
    const raw = await skopeoInspect(registry, `${registry.host}/docker-out@${r.outputs.ImageDigest}`, 'raw');
    assert.equal(raw.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(raw.config.mediaType, 'application/vnd.docker.container.image.v1+json');
    assert.deepEqual(
      raw.layers.map((l: { mediaType: string }) => l.mediaType),
      ['application/vnd.docker.image.rootfs.diff.tar.gzip', 'application/vnd.docker.image.rootfs.diff.tar.gzip'],
    );
    assert.equal(raw.annotations, undefined, 'Docker v2 manifests carry no annotations');
    await skopeoCopyToLayout(
      registry,
      `${registry.host}/docker-out@${r.outputs.ImageDigest}`,
      path.join(work, 'copied-6'),
    );
    // An OCI layout holds OCI manifests only: the same blobs under OCI media types.
    const layoutManifest = JSON.parse((await run('skopeo', ['inspect', '--raw', `oci:${layoutDir}:v2`])).stdout);
    assert.equal(layoutManifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(
      layoutManifest.layers.map((l: { digest: string }) => l.digest),
      raw.layers.map((l: { digest: string }) => l.digest),
    );
    assert.equal(layoutManifest.config.digest, raw.config.digest);
  });

  it('copies the base layers across registries when the base is on another one', async () => {
    const modelFile = fetchedModelFile(path.join(work, 'm9'), 'cross', '1', randomBytes(8_000, 'cross'));
    // The base is addressed on the registry itself, the target through the proxy: two registries to the task.
    const r = succeeded(
      await runTask('BakeModelImage', {
        inputs: {
          connectionType: 'dockerRegistry',
          dockerRegistryServiceConnection: 'acr-push',
          repository: `${host}/cross`,
          baseImage: `${registry.host}/apps/scoring-app:1.0`,
          baseRegistryConnection: 'base-reg',
          modelPath: modelFile,
        },
        endpoints: [
          endpoint(),
          {
            id: 'base-reg',
            scheme: 'UsernamePassword',
            auth: { username: registry.username, password: registry.password, registry: registry.url },
          },
        ],
      }),
    );
    const raw = await skopeoInspect(registry, `${registry.host}/cross@${r.outputs.ImageDigest}`, 'raw');
    assert.ok(committedBlobs().includes(raw.layers[0].digest), 'the base layer was uploaded to the target');
    await skopeoCopyToLayout(registry, `${registry.host}/cross@${r.outputs.ImageDigest}`, path.join(work, 'copied-9'));
  });

  it('writes only an OCI layout with connection type none', async () => {
    const modelFile = fetchedModelFile(path.join(work, 'm7'), 'offline', '5', randomBytes(5_000, 'offline'));
    const layoutDir = path.join(work, 'layout-7');
    const r = await runTask('BakeModelImage', {
      inputs: {
        connectionType: 'none',
        baseImage: `${host}/apps/scoring-app:1.0`,
        baseRegistryConnection: 'base-reg',
        modelPath: modelFile,
        outputLayout: layoutDir,
        tags: 'offline',
      },
      // The base is private: it is read with the base registry connection.
      endpoints: [{ ...endpoint(), id: 'base-reg' }],
    }).then(succeeded);
    assert.equal(r.outputs.ImageRef, `oci:${layoutDir}:offline`);
    assert.equal(r.outputs.BytesUploaded, '0');
    const { stdout } = await run('skopeo', ['inspect', `oci:${layoutDir}:offline`]);
    const inspect = JSON.parse(stdout);
    assert.equal(inspect.Digest, r.outputs.ImageDigest);
    assert.equal(inspect.Labels['org.modeldelivery.model.name'], 'offline');
    assert.equal(inspect.Layers.length, 2);
  }).timeout(60_000);

  it('fails clearly: wrong password names the connection, missing tag and bad references name the input, no secret printed', async () => {
    const modelFile = fetchedModelFile(path.join(work, 'm8'), 'bad', '1', randomBytes(1000, 'bad'));
    const wrong = await runTask('BakeModelImage', {
      inputs: {
        connectionType: 'dockerRegistry',
        dockerRegistryServiceConnection: 'acr-push',
        repository: `${host}/scoring`,
        baseImage: `${host}/apps/scoring-app:1.0`,
        modelPath: modelFile,
      },
      endpoints: [
        { ...endpoint(), auth: { username: registry.username, password: 'not-the-password-123', registry: proxy.url } },
      ],
    }).then(failed);
    assert.match(wrong.message, /401/);
    assert.match(wrong.message, /service connection 'acr-push'/);
    assert.doesNotMatch(wrong.logLines.join('\n') + wrong.message + wrong.stderr, /not-the-password-123/);

    const missing = failed(
      await bake({
        repository: `${host}/scoring`,
        baseImage: `${host}/apps/scoring-app:no-such-tag`,
        modelPath: modelFile,
      }),
    );
    assert.match(missing.message, /^Input 'baseImage': /);
    assert.match(missing.message, /no tag 'no-such-tag'/);

    const bad = failed(
      await bake({ repository: `${host}/scoring`, baseImage: 'Not A/Valid::ref', modelPath: modelFile }),
    );
    assert.match(bad.message, /^Input 'baseImage': /);
    const badRepo = failed(
      await bake({
        repository: `${host}/Scoring:tag`,
        baseImage: `${host}/apps/scoring-app:1.0`,
        modelPath: modelFile,
      }),
    );
    assert.match(badRepo.message, /^Input 'repository': /);
    const badTag = failed(
      await bake({
        repository: `${host}/scoring`,
        baseImage: `${host}/apps/scoring-app:1.0`,
        modelPath: modelFile,
        tags: 'ok\n-bad',
      }),
    );
    assert.match(badTag.message, /^Input 'tags': '-bad'/);
    const noModel = failed(
      await bake({
        repository: `${host}/scoring`,
        baseImage: `${host}/apps/scoring-app:1.0`,
        modelPath: path.join(work, 'nope.onnx'),
      }),
    );
    assert.match(noModel.message, /^Input 'modelPath': /);
    const otherRegistry = failed(
      await bake({
        repository: `other.example.com/scoring`,
        baseImage: `${host}/apps/scoring-app:1.0`,
        modelPath: modelFile,
      }),
    );
    assert.match(
      otherRegistry.message,
      /^Input 'repository': 'other.example.com' is not the registry of service connection 'acr-push'/,
    );
    for (const r of [wrong, missing, bad, badRepo, badTag, noModel, otherRegistry])
      assert.doesNotMatch(r.logLines.join('\n') + r.message + r.stderr, new RegExp(registry.password));
  });
});
