import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

import { bakeThrough, committedBlobsThrough, failed, registryEndpoint, succeeded } from '../support/bakeRuns';
import { type FaultProxy, startFaultProxy } from '../support/faultProxy';
import {
  makeBaseImage,
  type PushedBaseImage,
  readLayoutImage,
  skopeoCopyToLayout,
  skopeoInspect,
  unpackLayers,
  writeBaseLayout,
} from '../support/images';
import { makeTempDir } from '../support/paths';
import { startRegistry, type TestRegistry } from '../support/registry';
import { runTask, type RunTaskOptions, type TaskRun } from '../support/taskRunner';

const run = promisify(execFile);

/**
 * BakeModelImage with its base read from an OCI image layout folder on the agent (`oci:<folder>[:<ref>]`):
 * layouts written by skopeo (the independent client) or by hand, pushed to a real distribution
 * registry behind the fault proxy, or written only to an output layout with no registry at all.
 */
describe('BakeModelImage task with a base from an OCI image layout', function () {
  this.timeout(180_000);
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let host: string;
  let work: string;
  let registryBase: PushedBaseImage;
  /** `skopeo copy docker://…/apps/scoring-app:1.0 oci:<skopeoLayout>:1.0`. */
  let skopeoLayout: string;

  const endpoint = () => registryEndpoint('reg', proxy, registry);

  const bake = (inputs: Record<string, string | undefined>, opts: Partial<RunTaskOptions> = {}) =>
    bakeThrough(endpoint(), inputs, opts);

  /** With connection type none: no endpoint, no registry anywhere. */
  function bakeOffline(
    inputs: Record<string, string | undefined>,
    opts: Partial<RunTaskOptions> = {},
  ): Promise<TaskRun> {
    return runTask('BakeModelImage', { inputs: { connectionType: 'none', ...inputs }, ...opts });
  }

  function modelFile(name: string, bytes: number): string {
    const dir = path.join(work, `model-${name}`);
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${name}.onnx`);
    fs.writeFileSync(
      file,
      crypto
        .createHash('sha512')
        .update(name)
        .digest()
        .toString('hex')
        .repeat(Math.ceil(bytes / 128))
        .slice(0, bytes),
    );
    return file;
  }

  const committedBlobs = () => committedBlobsThrough(proxy);

  before(async () => {
    registry = await startRegistry();
    proxy = await startFaultProxy({ target: registry.url });
    host = `127.0.0.1:${proxy.port}`;
    work = makeTempDir('bake-layout-test-');
    registryBase = await makeBaseImage(registry, {
      repository: 'apps/scoring-app',
      tag: '1.0',
      files: { 'app/main.js': 'console.log("app")\n' },
      config: { Cmd: ['node', '/app/main.js'] },
    });
    skopeoLayout = path.join(work, 'skopeo-layout');
    await skopeoCopyToLayout(registry, `${registry.host}/apps/scoring-app:1.0`, skopeoLayout, '1.0');
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

  it('bakes onto a layout skopeo wrote and pushes: the same image as from the registry base, at any folder path (node24)', async () => {
    const model = modelFile('churn', 40_000);
    // The title label defaults to the repository name; pin it so both repositories may hold one image.
    const common = { modelPath: model, tags: 'v1', labels: 'org.opencontainers.image.title=churn' };
    const fromRegistry = succeeded(
      await bake({ ...common, repository: `${host}/via-registry`, baseImage: `${host}/apps/scoring-app:1.0` }),
    );
    proxy.resetStats();
    const fromLayout = succeeded(
      await bake(
        { ...common, repository: `${host}/via-layout`, baseImage: `oci:${skopeoLayout}:1.0` },
        { node: 'node24' },
      ),
    );

    const inspect = await skopeoInspect(registry, `${registry.host}/via-layout:v1`);
    assert.equal(inspect.Digest, fromLayout.outputs.ImageDigest);
    assert.equal(fromLayout.outputs.ImageRef, `${host}/via-layout@${fromLayout.outputs.ImageDigest}`);
    // base.name is a reference: the registry's for one, the layout's ref name (never the folder) for the other.
    assert.equal(inspect.Labels['org.opencontainers.image.base.name'], 'oci:1.0');
    assert.equal(inspect.Labels['org.opencontainers.image.base.digest'], registryBase.digest);
    const viaRegistry = await skopeoInspect(registry, `${registry.host}/via-registry:v1`);
    assert.equal(viaRegistry.Labels['org.opencontainers.image.base.name'], `${host}/apps/scoring-app:1.0`);
    // So the digests differ by that label alone: layers and everything else in the config are equal.
    assert.notEqual(fromLayout.outputs.ImageDigest, fromRegistry.outputs.ImageDigest);
    assert.deepEqual(inspect.Layers, viaRegistry.Layers);
    const [layoutConfig, registryConfig] = await Promise.all([
      skopeoInspect(registry, `${registry.host}/via-layout:v1`, 'config'),
      skopeoInspect(registry, `${registry.host}/via-registry:v1`, 'config'),
    ]);
    delete layoutConfig.config.Labels['org.opencontainers.image.base.name'];
    delete registryConfig.config.Labels['org.opencontainers.image.base.name'];
    assert.deepEqual(layoutConfig, registryConfig);
    // The base layer was not in via-layout: it was uploaded from the layout (no mount from a folder).
    const raw = await skopeoInspect(registry, `${registry.host}/via-layout:v1`, 'raw');
    assert.ok(committedBlobs().includes(raw.layers[0].digest), 'the base layer was uploaded from the layout');
    assert.match(fromLayout.summaries[0], new RegExp(`oci:${skopeoLayout}:1.0`));
    await skopeoCopyToLayout(
      registry,
      `${registry.host}/via-layout@${fromLayout.outputs.ImageDigest}`,
      path.join(work, 'copied-1'),
    );

    // With base.name pinned, the two bakes are byte-identical.
    const pinned = `${common.labels}\norg.opencontainers.image.base.name=scoring-app:1.0`;
    const a = succeeded(
      await bake({
        ...common,
        labels: pinned,
        repository: `${host}/via-registry`,
        baseImage: `${host}/apps/scoring-app:1.0`,
      }),
    );
    const b = succeeded(
      await bake({ ...common, labels: pinned, repository: `${host}/via-layout`, baseImage: `oci:${skopeoLayout}:1.0` }),
    );
    assert.equal(a.outputs.ImageDigest, b.outputs.ImageDigest);

    // Another agent: the same layout at another path, named relative to the working directory. Same digest,
    // and now every blob is already in the repository: HEAD answers, nothing is uploaded.
    const otherAgent = path.join(work, 'agent-2');
    fs.mkdirSync(otherAgent, { recursive: true });
    fs.cpSync(skopeoLayout, path.join(otherAgent, 'base-layout'), { recursive: true });
    proxy.resetStats();
    const again = succeeded(
      await bake(
        { ...common, repository: `${host}/via-layout`, baseImage: 'oci:base-layout:1.0' },
        { cwd: otherAgent },
      ),
    );
    assert.equal(again.outputs.ImageDigest, fromLayout.outputs.ImageDigest);
    assert.deepEqual(committedBlobs(), []);
    assert.equal(again.outputs.BytesUploaded, '0');
    assert.ok(
      proxy.stats.requests.some((r) => r.method === 'HEAD' && r.path.endsWith(raw.layers[0].digest)),
      'the base layer was checked with HEAD',
    );
  });

  it('bakes fully offline: connection type none, base from a layout, output to a layout skopeo copies (Docker v2 media types in the base layout)', async () => {
    const baseDir = path.join(work, 'docker-layout');
    const written = await writeBaseLayout(baseDir, {
      tag: 'runtime',
      mediaTypes: 'docker',
      files: { 'usr/local/bin/node': '#!/bin/sh\n' },
      config: { Cmd: ['node'] },
    });
    const out = path.join(work, 'offline-out');
    const r = succeeded(
      await bakeOffline({
        baseImage: `oci:${baseDir}`,
        modelPath: modelFile('offline', 9_000),
        outputLayout: out,
        tags: 'offline',
      }),
    );
    assert.equal(r.outputs.ImageRef, `oci:${out}:offline`);
    assert.equal(r.outputs.BytesUploaded, '0');
    assert.match(r.logLines.join('\n'), /ref name runtime/);
    const { stdout } = await run('skopeo', ['inspect', `oci:${out}:offline`]);
    const inspect = JSON.parse(stdout);
    assert.equal(inspect.Labels['org.opencontainers.image.base.name'], 'oci:runtime');
    assert.equal(inspect.Labels['org.opencontainers.image.base.digest'], written.top.digest);
    assert.equal(inspect.Layers.length, 2);
    // skopeo copies it (reading and checking every blob) into another layout.
    await run('skopeo', ['copy', '--quiet', `oci:${out}:offline`, `oci:${path.join(work, 'offline-copy')}:x`]);
    const image = readLayoutImage(path.join(work, 'offline-copy'), 'x');
    assert.equal(image.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(image.config.rootfs.diff_ids[0], written.layerDiffIds['linux/amd64']);
    const rootfs = path.join(work, 'offline-rootfs');
    await unpackLayers(
      image.manifest.layers.map((l: { digest: string }) => image.blob(l.digest)),
      rootfs,
    );
    assert.ok(fs.existsSync(path.join(rootfs, 'usr/local/bin/node')));
    assert.equal(fs.readFileSync(path.join(rootfs, 'models/offline/offline.onnx')).length, 9_000);
    assert.equal(proxy.stats.requests.length, 0, 'no registry was asked anything');
  });

  it('resolves a multi-platform index inside a layout to the platform input; by digest too; the default is the image named latest', async () => {
    const dir = path.join(work, 'multi-layout');
    const multi = await writeBaseLayout(dir, {
      tag: 'multi',
      platforms: [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64', variant: 'v8' },
      ],
    });
    await writeBaseLayout(dir, { tag: 'latest', files: { 'etc/which': 'latest\n' } });
    const model = modelFile('multi', 5_000);
    const arm = succeeded(
      await bakeOffline({
        baseImage: `oci:${dir}:multi`,
        platform: 'linux/arm64',
        modelPath: model,
        outputLayout: path.join(work, 'multi-out'),
        tags: 'arm',
      }),
    );
    const armImage = readLayoutImage(path.join(work, 'multi-out'), 'arm');
    assert.equal(armImage.config.architecture, 'arm64');
    assert.equal(armImage.config.rootfs.diff_ids[0], multi.layerDiffIds['linux/arm64']);
    assert.equal(
      armImage.config.config.Labels['org.opencontainers.image.base.digest'],
      multi.manifestDigests['linux/arm64'],
    );
    assert.match(arm.logLines.join('\n'), /linux\/arm64 manifest sha256:/);

    const byDigest = succeeded(
      await bakeOffline({
        baseImage: `oci:${dir}@${multi.top.digest}`,
        modelPath: model,
        outputLayout: path.join(work, 'multi-out'),
        tags: 'amd',
      }),
    );
    const amdImage = readLayoutImage(path.join(work, 'multi-out'), 'amd');
    assert.equal(amdImage.config.rootfs.diff_ids[0], multi.layerDiffIds['linux/amd64']);
    assert.equal(
      amdImage.config.config.Labels['org.opencontainers.image.base.name'],
      'oci:multi',
      'the entry the digest names carries the ref name',
    );
    assert.ok(byDigest.outputs.ImageDigest);

    succeeded(
      await bakeOffline({
        baseImage: `oci:${dir}`,
        modelPath: model,
        outputLayout: path.join(work, 'multi-out'),
        tags: 'dflt',
      }),
    );
    assert.equal(
      readLayoutImage(path.join(work, 'multi-out'), 'dflt').config.config.Labels['org.opencontainers.image.base.name'],
      'oci:latest',
    );

    const missing = failed(
      await bakeOffline({
        baseImage: `oci:${dir}:multi`,
        platform: 'windows/amd64',
        modelPath: model,
        outputLayout: path.join(work, 'multi-out'),
      }),
    );
    assert.match(missing.message, /^Input 'baseImage': /);
    assert.match(missing.message, /no windows\/amd64 variant; it has linux\/amd64, linux\/arm64\/v8/);
  });

  it('fails clearly, naming baseImage: missing folder, not a layout, unknown ref (listing the refs), several images and no latest, a blob outside the folder', async () => {
    const model = modelFile('errors', 1_000);
    const out = path.join(work, 'errors-out');
    const attempt = async (baseImage: string) =>
      failed(await bakeOffline({ baseImage, modelPath: model, outputLayout: out }));

    const missing = await attempt(`oci:${path.join(work, 'no-such-folder')}:1.0`);
    assert.match(missing.message, /^Input 'baseImage': the OCI layout folder .*no-such-folder does not exist/);

    const notLayout = path.join(work, 'not-a-layout');
    fs.mkdirSync(notLayout, { recursive: true });
    fs.writeFileSync(path.join(notLayout, 'readme.txt'), 'hi');
    const bad = await attempt(`oci:${notLayout}`);
    assert.match(
      bad.message,
      /^Input 'baseImage': .*not-a-layout is not an OCI image layout: it has no oci-layout and no index\.json/,
    );

    const unknown = await attempt(`oci:${skopeoLayout}:2.0`);
    assert.match(unknown.message, /^Input 'baseImage': /);
    assert.match(unknown.message, /has no image named '2\.0'; it has ref names '1\.0'/);

    const several = path.join(work, 'several');
    await writeBaseLayout(several, { tag: 'a' });
    await writeBaseLayout(several, { tag: 'b', files: { 'etc/b': 'b\n' } });
    const noDefault = await attempt(`oci:${several}`);
    assert.match(
      noDefault.message,
      /^Input 'baseImage': .*none is named 'latest'; it has ref names 'a', 'b'.*oci:<folder>:<ref-name>/,
    );

    const syntax = await attempt('oci:/x:not valid');
    assert.match(syntax.message, /^Input 'baseImage': 'not valid' is not a valid ref name/);

    // A layer blob that is a symlink out of the layout is refused, not read.
    const escaping = path.join(work, 'escaping');
    fs.cpSync(skopeoLayout, escaping, { recursive: true });
    const layer = readLayoutImage(escaping, '1.0').manifest.layers[0].digest as string;
    const outside = path.join(work, 'outside-blob');
    fs.copyFileSync(path.join(escaping, 'blobs', 'sha256', layer.slice(7)), outside);
    fs.rmSync(path.join(escaping, 'blobs', 'sha256', layer.slice(7)));
    fs.symlinkSync(outside, path.join(escaping, 'blobs', 'sha256', layer.slice(7)));
    const escaped = await attempt(`oci:${escaping}:1.0`);
    assert.match(escaped.message, /^Input 'baseImage': .*blob sha256:[a-f0-9]{64} leads outside the folder/);
    assert.ok(!fs.existsSync(path.join(out, 'index.json')), 'no layout was written');
  });

  it('refuses a corrupted blob in the layout: digest mismatch, nothing pushed', async () => {
    const damaged = path.join(work, 'damaged');
    fs.cpSync(skopeoLayout, damaged, { recursive: true });
    const layer = readLayoutImage(damaged, '1.0').manifest.layers[0].digest as string;
    const file = path.join(damaged, 'blobs', 'sha256', layer.slice(7));
    const bytes = fs.readFileSync(file);
    bytes[bytes.length >> 1] ^= 0xff;
    fs.writeFileSync(file, bytes);
    const r = failed(
      await bake({
        repository: `${host}/damaged`,
        baseImage: `oci:${damaged}:1.0`,
        modelPath: modelFile('damaged', 2_000),
        tags: 'v1',
      }),
    );
    assert.match(
      r.message,
      /^Input 'baseImage': OCI layout .*damaged is damaged: blob sha256:[a-f0-9]{64} does not match its digest \(its bytes hash to sha256:[a-f0-9]{64}\)/,
    );
    assert.ok(r.message.includes(layer));
    assert.ok(!committedBlobs().includes(layer), 'the damaged layer was not committed');
    assert.equal(
      proxy.stats.requests.filter((q) => q.method === 'PUT' && /\/manifests\//.test(q.path)).length,
      0,
      'no manifest was put',
    );
    await assert.rejects(
      skopeoInspect(registry, `${registry.host}/damaged:v1`),
      /manifest unknown|not found|name unknown/i,
    );
  });
});
