import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { BlobSASPermissions, BlobServiceClient, type ContainerClient } from '@azure/storage-blob';

import { type AzuriteServer, startAzurite } from '../support/azurite';
import { bundleTasks } from '../support/bundle';
import { type FaultProxy, startFaultProxy } from '../support/faultProxy';
import { makeTempDir } from '../support/paths';
import { describeRun, runTask, type RunTaskOptions, type TaskRun } from '../support/taskRunner';

/** FetchModel against Azurite, run as the agent runs it (bundled index.js, INPUT_* variables). */

const sha256 = (data: Buffer | string) => crypto.createHash('sha256').update(data).digest('hex');

/** Deterministic content, so each test knows every byte it should get back. */
function content(label: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = crypto.createHash('sha256').update(label).digest();
  for (let i = 0; i < size; i += block.length) {
    block.copy(out, i, 0, Math.min(block.length, size - i));
    block = crypto.createHash('sha256').update(block).digest();
  }
  return out;
}

/** The folder digest, computed independently of the task: sorted `sha256sum`-style lines, hashed. */
function folderDigest(files: Record<string, Buffer>): string {
  const lines = Object.keys(files)
    .sort()
    .map((p) => `${sha256(files[p])}  ${p}\n`)
    .join('');
  return sha256(lines);
}

function listFilesRecursively(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)).split(path.sep).join('/'))
    .sort();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('FetchModel against Azurite', function () {
  this.timeout(180_000);
  let azurite: AzuriteServer;
  let service: BlobServiceClient;
  let models: ContainerClient;
  const work = makeTempDir('fetch-model-test-');
  const churn: Record<string, Record<string, Buffer>> = {};

  async function putFolder(
    prefix: string,
    files: Record<string, Buffer>,
    opts: { metadata?: Record<string, string>; tags?: Record<string, string>; withSha?: boolean } = {},
  ) {
    for (const [rel, data] of Object.entries(files)) {
      await models.getBlockBlobClient(prefix + rel).uploadData(data, {
        metadata: { ...(opts.withSha === false ? {} : { sha256: sha256(data) }), ...(opts.metadata ?? {}) },
        tags: opts.tags,
      });
    }
  }

  before(async () => {
    bundleTasks('FetchModel');
    azurite = await startAzurite();
    service = BlobServiceClient.fromConnectionString(azurite.connectionString);
    models = service.getContainerClient('models');
    await models.create();
    await service.getContainerClient('other-stuff').create();
    // Versions uploaded oldest first: 1.2.0, 2.0.0-rc.1, 1.10.0, then 1.9.0 (the newest upload, not the highest version).
    for (const v of ['1.2.0', '2.0.0-rc.1', '1.10.0', '1.9.0']) {
      churn[v] = {
        'model.onnx': content(`churn ${v}`, 70_000),
        'config/labels.json': Buffer.from(JSON.stringify({ version: v, labels: ['stay', 'churn'] })),
      };
      await putFolder(`churn/${v}/`, churn[v], {
        metadata: { modelName: 'churn', modelVersion: v, ...(v === '1.2.0' ? { stage: 'production' } : {}) },
        tags: { stage: v === '1.10.0' ? 'production' : 'staging', model: 'churn' },
      });
      await sleep(1100); // Last-Modified has one-second resolution.
    }
    await models.getBlockBlobClient('single/churn.onnx').uploadData(content('single', 50_000), {
      blobHTTPHeaders: { blobContentMD5: crypto.createHash('md5').update(content('single', 50_000)).digest() },
    });
  });

  after(async () => {
    await azurite?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  function azureInputs(extra: Record<string, string | undefined>, endpoint = azurite.blobEndpoint): RunTaskOptions {
    return {
      inputs: {
        source: 'azureBlob',
        authenticationType: 'connectionString',
        connectionString: azurite.connectionString,
        container: 'models',
        blobEndpoint: endpoint,
        ...extra,
      },
      secretVariables: { StorageConnectionString: azurite.connectionString, StorageKey: azurite.accountKey },
    };
  }

  async function fetch(
    extra: Record<string, string | undefined>,
    opts: Partial<RunTaskOptions> & { endpoint?: string } = {},
  ): Promise<TaskRun> {
    const base = azureInputs(extra, opts.endpoint);
    return runTask('FetchModel', { ...base, ...opts, inputs: { ...base.inputs, ...(opts.inputs ?? {}) } });
  }

  it('fetches one blob by exact name, verified against its Content-MD5, with outputs, manifest and summary', async () => {
    const target = path.join(work, 'exact-single');
    const run = await fetch({ modelPath: 'single/churn.onnx', targetPath: target });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    const expected = content('single', 50_000);
    const file = path.join(target, 'churn.onnx');
    assert.ok(fs.readFileSync(file).equals(expected));
    assert.equal(run.outputs.ModelPath, file);
    assert.equal(run.outputs.ModelSha256, sha256(expected));
    assert.equal(run.outputs.ModelSizeBytes, '50000');
    assert.equal(run.outputs.ModelName, 'churn');
    assert.equal(run.outputs.ModelUri, `${azurite.blobEndpoint}/models/single/churn.onnx`);
    const manifest = JSON.parse(fs.readFileSync(path.join(target, 'model-manifest.json'), 'utf8'));
    assert.equal(manifest.schemaVersion, 1);
    assert.equal(manifest.layout, 'file');
    assert.equal(manifest.sha256, sha256(expected));
    assert.deepEqual(manifest.files, [{ path: 'churn.onnx', sizeBytes: 50_000, sha256: sha256(expected) }]);
    assert.equal(manifest.source.type, 'azureBlob');
    assert.equal(manifest.source.container, 'models');
    assert.match(manifest.source.etag, /^0x/);
    assert.match(run.summaries.join('\n'), /Content-MD5/);
    assert.deepEqual(listFilesRecursively(target), ['churn.onnx', 'model-manifest.json']);
  });

  it('fetches a folder model by exact prefix, structure kept, with the documented folder digest', async () => {
    const target = path.join(work, 'exact-folder');
    const run = await fetch({ modelPath: 'churn/1.2.0/', targetPath: target });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.deepEqual(listFilesRecursively(target), ['config/labels.json', 'model-manifest.json', 'model.onnx']);
    assert.ok(fs.readFileSync(path.join(target, 'model.onnx')).equals(churn['1.2.0']['model.onnx']));
    assert.equal(run.outputs.ModelSha256, folderDigest(churn['1.2.0']));
    assert.equal(run.outputs.ModelVersion, '1.2.0');
    assert.equal(run.outputs.ModelName, 'churn');
    assert.equal(run.outputs.ModelPath, target);
    assert.match(run.summaries.join('\n'), /sha256 metadata/);
  });

  it('latest: picks the newest upload (1.9.0), not the highest version', async () => {
    const run = await fetch(
      {
        modelPath: 'churn/',
        versionSelector: 'latest',
        targetPath: path.join(work, 'latest'),
        'System.Debug': undefined,
      },
      { variables: { 'System.Debug': 'true' } },
    );
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.equal(run.outputs.ModelVersion, '1.9.0');
    assert.equal(run.outputs.ModelSha256, folderDigest(churn['1.9.0']));
    // The debug log lists every candidate and why it lost.
    assert.match(run.stdout, /candidate churn\/1\.10\.0\/: older/);
  });

  it('semver: picks 1.10.0 over 1.9.0 (numeric, not lexical) and skips the prerelease unless asked', async () => {
    const run = await fetch({ modelPath: 'churn', versionSelector: 'semver', targetPath: path.join(work, 'semver') });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.equal(run.outputs.ModelVersion, '1.10.0');
    assert.match(run.summaries.join('\n'), /prerelease 2\.0\.0-rc\.1: skipped/);
    const pre = await fetch({
      modelPath: 'churn/',
      versionSelector: 'semver',
      includePrerelease: 'true',
      targetPath: path.join(work, 'semver-pre'),
    });
    assert.equal(pre.result, 'Succeeded', describeRun(pre));
    assert.equal(pre.outputs.ModelVersion, '2.0.0-rc.1');
  });

  it('metadata: picks the model whose every file has stage=production', async () => {
    const run = await fetch({
      modelPath: 'churn/',
      versionSelector: 'metadata',
      metadataFilter: 'stage=production',
      targetPath: path.join(work, 'metadata'),
    });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.equal(run.outputs.ModelVersion, '1.2.0');
    const none = await fetch({
      modelPath: 'churn/',
      versionSelector: 'metadata',
      metadataFilter: 'stage=archived',
      targetPath: path.join(work, 'metadata-none'),
    });
    assert.equal(none.result, 'Failed');
    assert.match(none.message, /No model under 'churn\/' has metadata stage=archived/);
    assert.match(none.message, /churn\/1\.9\.0\//);
  });

  it('tags: picks the model matching a blob index tag expression (Azurite Find Blobs by Tags)', async () => {
    const run = await fetch({
      modelPath: 'churn/',
      versionSelector: 'tags',
      tagFilter: `"stage" = 'production' AND "model" = 'churn'`,
      targetPath: path.join(work, 'tags'),
    });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.equal(run.outputs.ModelVersion, '1.10.0');
    assert.equal(run.outputs.ModelSha256, folderDigest(churn['1.10.0']));
  });

  it('snapshot: fetches the snapshot, not the blob as it is now', async () => {
    const blob = models.getBlockBlobClient('snap/model.onnx');
    const before = content('snap before', 30_000);
    await blob.uploadData(before);
    const { snapshot } = await blob.createSnapshot();
    await blob.uploadData(content('snap after', 31_000));
    const target = path.join(work, 'snapshot');
    const run = await fetch({
      modelPath: 'snap/model.onnx',
      versionSelector: 'snapshot',
      snapshot: snapshot!,
      targetPath: target,
    });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.ok(fs.readFileSync(path.join(target, 'model.onnx')).equals(before));
    const manifest = JSON.parse(fs.readFileSync(path.join(target, 'model-manifest.json'), 'utf8'));
    assert.equal(manifest.source.versionId, snapshot);
    assert.match(manifest.source.uri, /snapshot=/);
    // A snapshot that does not exist: the error lists the ones that do (Azurite lists snapshots).
    const missing = await fetch({
      modelPath: 'snap/model.onnx',
      versionSelector: 'snapshot',
      snapshot: '2020-01-01T00:00:00.0000000Z',
      targetPath: path.join(work, 'no-snapshot'),
    });
    assert.equal(missing.result, 'Failed');
    assert.match(
      missing.message,
      new RegExp(
        `'snap/model\\.onnx' has no snapshot 2020-01-01T00:00:00\\.0000000Z\\. Its snapshots: ${snapshot!.replace(/\./g, '\\.')} \\(30000 bytes, modified `,
      ),
    );
  });

  it('a missing blob or container fails with what exists', async () => {
    const blob = await fetch({ modelPath: 'churn/3.0.0/', targetPath: path.join(work, 'missing-blob') });
    assert.equal(blob.result, 'Failed');
    assert.match(blob.message, /nothing is stored under 'churn\/3\.0\.0\/'/);
    assert.match(blob.message, /churn\/1\.10\.0\/, churn\/1\.2\.0\/, churn\/1\.9\.0\/, churn\/2\.0\.0-rc\.1\//);
    const container = await fetch({
      container: 'modles',
      modelPath: 'churn/',
      versionSelector: 'latest',
      targetPath: path.join(work, 'missing-container'),
    });
    assert.equal(container.result, 'Failed');
    assert.match(container.message, /Container 'modles' does not exist/);
    assert.match(container.message, /models, other-stuff/);
  });

  it('a sha256 mismatch fails and leaves nothing in the target', async () => {
    const data = content('tampered', 40_000);
    await models
      .getBlockBlobClient('tampered/1.0.0/model.onnx')
      .uploadData(data, { metadata: { sha256: sha256('something else') } });
    const target = path.join(work, 'tampered');
    const run = await fetch({ modelPath: 'tampered/1.0.0/model.onnx', targetPath: target });
    assert.equal(run.result, 'Failed');
    assert.match(run.message, /Integrity check failed for 'tampered\/1\.0\.0\/model\.onnx'/);
    assert.deepEqual(fs.existsSync(target) ? fs.readdirSync(target) : [], []);
  });

  it('expectedSha256 pins the model: a different one fails and leaves nothing', async () => {
    const target = path.join(work, 'pinned');
    const run = await fetch({
      modelPath: 'churn/',
      versionSelector: 'latest',
      expectedSha256: folderDigest(churn['1.10.0']),
      targetPath: target,
    });
    assert.equal(run.result, 'Failed');
    assert.match(run.message, /expectedSha256 is [0-9a-f]{64} but the folder digest of the model is [0-9a-f]{64}/);
    assert.deepEqual(fs.existsSync(target) ? fs.readdirSync(target) : [], []);
    const ok = await fetch({
      modelPath: 'churn/1.10.0/',
      expectedSha256: folderDigest(churn['1.10.0']),
      targetPath: target,
    });
    assert.equal(ok.result, 'Succeeded', describeRun(ok));
    assert.match(ok.summaries.join('\n'), /expectedSha256/);
  });

  it('refuses blob names that would escape the target (leading /, backslash .., drive letter)', async () => {
    for (const [i, evil] of [
      'evil1/1.0.0//etc/cron.d/x',
      'evil2/1.0.0/..\\..\\outside.txt',
      'evil3/1.0.0/C:/Windows/x.dll',
    ].entries()) {
      await models.getBlockBlobClient(evil).uploadData(Buffer.from('payload'));
      const prefix = evil.split('/').slice(0, 2).join('/') + '/';
      const target = path.join(work, `evil-${i}`);
      const run = await fetch({ modelPath: prefix, targetPath: target });
      assert.equal(run.result, 'Failed', describeRun(run));
      assert.match(run.message, /Refusing '.*': its path .* would be written outside the target folder/);
      assert.deepEqual(fs.existsSync(target) ? fs.readdirSync(target) : [], []);
      assert.ok(!fs.existsSync(path.join(work, 'outside.txt')));
    }
  });

  it('url source: a SAS URL from a secret variable, never printed', async () => {
    const blob = models.getBlobClient('single/churn.onnx');
    const sasUrl = await blob.generateSasUrl({
      permissions: BlobSASPermissions.parse('r'),
      expiresOn: new Date(Date.now() + 3600_000),
    });
    const target = path.join(work, 'url');
    const run = await runTask('FetchModel', {
      inputs: { source: 'url', url: sasUrl, targetPath: target },
      secretVariables: { ModelUrl: sasUrl },
    });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.ok(fs.readFileSync(path.join(target, 'churn.onnx')).equals(content('single', 50_000)));
    assert.equal(run.outputs.ModelUri, `${azurite.blobEndpoint}/models/single/churn.onnx`);
    const printed = run.stdout
      .split('\n')
      .filter((l) => !l.startsWith('##vso[task.setsecret]'))
      .join('\n');
    assert.ok(!printed.includes(new URL(sasUrl).searchParams.get('sig')!), 'the SAS signature is never printed');
  });

  it('bad inputs name the input and say what to fix', async () => {
    const noConn = await runTask('FetchModel', {
      inputs: {
        source: 'azureBlob',
        authenticationType: 'connectionString',
        container: 'models',
        modelPath: 'x',
        targetPath: path.join(work, 'bad'),
      },
    });
    assert.equal(noConn.result, 'Failed');
    assert.match(noConn.message, /Input required: connectionString/);
    const badSha = await fetch({ modelPath: 'x', expectedSha256: 'abc', targetPath: path.join(work, 'bad') });
    assert.match(badSha.message, /Input 'expectedSha256': 'abc' is not a SHA-256/);
    const http = await runTask('FetchModel', {
      inputs: { source: 'url', url: 'http://models.example.com/m.onnx', targetPath: path.join(work, 'bad') },
    });
    assert.match(http.message, /Input 'url': use https:\/\//);
  });

  describe('large blob through the fault proxy', () => {
    const size = 200 * 1024 * 1024;
    let big: Buffer;
    let proxy: FaultProxy;
    before(async () => {
      big = content('large model', size);
      await models
        .getBlockBlobClient('large/1.0.0/model.bin')
        .uploadData(big, { blockSize: 8 << 20, concurrency: 4, metadata: { sha256: sha256(big) } });
      proxy = await startFaultProxy({ target: `http://127.0.0.1:${azurite.port}` });
    });
    after(async () => {
      await proxy?.stop();
    });
    const proxied = () => `${proxy.url}/devstoreaccount1`;

    it('downloads 200 MiB in parallel ranges, byte-exact, under Node 24', async () => {
      const target = path.join(work, 'large');
      proxy.resetStats();
      const run = await fetch(
        { modelPath: 'large/1.0.0/model.bin', targetPath: target, blockSize: '4MiB', concurrency: '8' },
        { endpoint: proxied(), node: 'node24' },
      );
      assert.equal(run.result, 'Succeeded', describeRun(run));
      assert.equal(run.outputs.ModelSha256, sha256(big));
      const ranged = proxy.stats.requests.filter((r) => r.method === 'GET' && r.path.includes('large/1.0.0/model.bin'));
      assert.equal(ranged.length, 50, 'one request per 4 MiB range');
      assert.ok(fs.readFileSync(path.join(target, 'model.bin')).equals(big));
      assert.ok(run.progress.length > 0 || run.durationMs < 3000, 'progress reported on a long download');
    });

    it('a re-run with the model already in place downloads nothing (cache hit)', async () => {
      const target = path.join(work, 'large');
      proxy.resetStats();
      const run = await fetch({ modelPath: 'large/1.0.0/model.bin', targetPath: target }, { endpoint: proxied() });
      assert.equal(run.result, 'Succeeded', describeRun(run));
      assert.match(run.message, /already in .*nothing downloaded/);
      assert.equal(proxy.stats.requests.filter((r) => r.method === 'GET' && r.path.includes('model.bin')).length, 0);
      assert.ok(
        proxy.stats.bytesToClient < 20_000,
        `only metadata crossed the wire (${proxy.stats.bytesToClient} bytes)`,
      );
      assert.match(run.summaries.join('\n'), /cache hit/);
    });

    it('survives a connection reset every few MiB and a 503 with Retry-After: still byte-exact', async () => {
      const target = path.join(work, 'large-resets');
      proxy.resetStats();
      proxy.setFaults([
        { match: /^GET .*large\/1\.0\.0\/model\.bin/, status: 503, retryAfter: '1', times: 2 },
        { match: /^GET .*large\/1\.0\.0\/model\.bin/, resetAfterBytes: 3 * 1024 * 1024, every: 2 },
      ]);
      try {
        const run = await fetch(
          { modelPath: 'large/1.0.0/model.bin', targetPath: target, blockSize: '8MiB', concurrency: '4' },
          { endpoint: proxied() },
        );
        assert.equal(run.result, 'Succeeded', describeRun(run));
        assert.ok(proxy.stats.faultsInjected >= 10, `faults injected: ${proxy.stats.faultsInjected}`);
        assert.match(run.stdout, /resuming in/);
        assert.equal(run.outputs.ModelSha256, sha256(big));
        assert.equal(sha256(fs.readFileSync(path.join(target, 'model.bin'))), sha256(big));
        assert.deepEqual(fs.readdirSync(target).sort(), ['model-manifest.json', 'model.bin']);
      } finally {
        proxy.setFaults([]);
      }
    });

    it('a permanent 403 fails with a clear message and leaves nothing behind', async () => {
      const target = path.join(work, 'large-403');
      proxy.setFaults([{ match: /^GET .*large\/1\.0\.0\/model\.bin/, status: 403 }]);
      try {
        const run = await fetch({ modelPath: 'large/1.0.0/model.bin', targetPath: target }, { endpoint: proxied() });
        assert.equal(run.result, 'Failed');
        assert.match(run.message, /refused to download 'large\/1\.0\.0\/model\.bin'.*HTTP 403/);
        assert.deepEqual(fs.existsSync(target) ? fs.readdirSync(target) : [], []);
      } finally {
        proxy.setFaults([]);
      }
    });
  });
});
