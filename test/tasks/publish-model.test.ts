import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';

import { type AzuriteServer, startAzurite } from '../support/azurite';
import { bundleTasks } from '../support/bundle';
import { makeTempDir } from '../support/paths';
import { describeRun, runTask, type TaskRun } from '../support/taskRunner';

/** PublishModel against Azurite, then FetchModel reading what it published: the demo's path. */

const sha256 = (data: Buffer | string) => crypto.createHash('sha256').update(data).digest('hex');

describe('PublishModel against Azurite, then FetchModel', function () {
  this.timeout(120_000);
  let azurite: AzuriteServer;
  let models: ContainerClient;
  const work = makeTempDir('publish-model-test-');
  const folder = path.join(work, 'churn-model');
  const files: Record<string, Buffer> = {
    'model.onnx': crypto.randomBytes(300_000),
    'tokenizer/vocab.txt': Buffer.from('stay\nchurn\n'),
    'tokenizer/config.json': Buffer.from('{"lower":true}'),
  };

  before(async () => {
    bundleTasks('PublishModel', 'FetchModel');
    azurite = await startAzurite();
    const service = BlobServiceClient.fromConnectionString(azurite.connectionString);
    models = service.getContainerClient('models');
    await models.create();
    for (const [rel, data] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(folder, rel)), { recursive: true });
      fs.writeFileSync(path.join(folder, rel), data);
    }
  });
  after(async () => {
    await azurite?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const storage = () => ({
    authenticationType: 'connectionString',
    connectionString: azurite.connectionString,
    container: 'models',
    blobEndpoint: azurite.blobEndpoint,
  });
  const publish = (inputs: Record<string, string>, node: 'node20' | 'node24' = 'node20'): Promise<TaskRun> =>
    runTask('PublishModel', {
      inputs: { destination: 'azureBlob', ...storage(), ...inputs },
      secretVariables: { StorageConnectionString: azurite.connectionString, StorageKey: azurite.accountKey },
      node,
    });
  const fetchModel = (inputs: Record<string, string>, node: 'node20' | 'node24' = 'node20'): Promise<TaskRun> =>
    runTask('FetchModel', {
      inputs: { source: 'azureBlob', ...storage(), ...inputs },
      secretVariables: { StorageConnectionString: azurite.connectionString, StorageKey: azurite.accountKey },
      node,
    });

  it('publishes a folder under <prefix><name>/<version>/ with sha256, name, version metadata and index tags', async () => {
    const run = await publish(
      {
        modelPath: folder,
        modelName: 'churn',
        modelVersion: '1.4.2',
        pathPrefix: 'models',
        tags: 'stage=staging\nteam=ds',
      },
      'node24',
    );
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.equal(run.outputs.ModelUri, `${azurite.blobEndpoint}/models/models/churn/1.4.2/`);
    assert.equal(run.outputs.ModelPath, 'models/churn/1.4.2/');
    const names: string[] = [];
    for await (const b of models.listBlobsFlat({
      prefix: 'models/churn/1.4.2/',
      includeMetadata: true,
      includeTags: true,
    })) {
      names.push(b.name);
      const rel = b.name.slice('models/churn/1.4.2/'.length);
      assert.equal(b.metadata?.sha256, sha256(files[rel]));
      assert.equal(b.metadata?.modelName ?? b.metadata?.modelname, 'churn');
      assert.equal(b.metadata?.modelVersion ?? b.metadata?.modelversion, '1.4.2');
      const tags = await models.getBlobClient(b.name).getTags();
      assert.deepEqual(tags.tags, { stage: 'staging', team: 'ds' });
    }
    assert.deepEqual(
      names.sort(),
      Object.keys(files)
        .map((r) => `models/churn/1.4.2/${r}`)
        .sort(),
    );
  });

  it('FetchModel picks it up by tag and by semver, and its digest matches what PublishModel reported', async () => {
    const published = await publish({
      modelPath: path.join(folder, 'model.onnx'),
      modelName: 'churn',
      modelVersion: '1.3.0',
      pathPrefix: 'models',
    });
    assert.equal(published.result, 'Succeeded', describeRun(published));
    assert.equal(published.outputs.ModelSha256, sha256(files['model.onnx']));
    const byTag = await fetchModel(
      {
        modelPath: 'models/churn/',
        versionSelector: 'tags',
        tagFilter: `"stage" = 'staging' AND "team" = 'ds'`,
        targetPath: path.join(work, 'by-tag'),
      },
      'node24',
    );
    assert.equal(byTag.result, 'Succeeded', describeRun(byTag));
    assert.equal(byTag.outputs.ModelVersion, '1.4.2');
    const first = await publish({
      modelPath: folder,
      modelName: 'churn',
      modelVersion: '1.4.2',
      pathPrefix: 'models',
      overwrite: 'true',
    });
    assert.equal(byTag.outputs.ModelSha256, first.outputs.ModelSha256);
    const bySemver = await fetchModel({
      modelPath: 'models/churn/',
      versionSelector: 'semver',
      targetPath: path.join(work, 'by-semver'),
    });
    assert.equal(bySemver.outputs.ModelVersion, '1.4.2');
    assert.equal(bySemver.outputs.ModelName, 'churn');
    assert.match(bySemver.summaries.join('\n'), /sha256 metadata/);
    for (const [rel, data] of Object.entries(files))
      assert.ok(fs.readFileSync(path.join(work, 'by-semver', rel)).equals(data), rel);
  });

  it('refuses to overwrite a published version unless asked; overwrite replaces it and removes files it no longer has', async () => {
    const again = await publish({ modelPath: folder, modelName: 'churn', modelVersion: '1.4.2', pathPrefix: 'models' });
    assert.equal(again.result, 'Failed');
    assert.match(
      again.message,
      /churn 1\.4\.2 is already published at .*models\/churn\/1\.4\.2\/ \(model\.onnx, tokenizer\/config\.json, tokenizer\/vocab\.txt\)\. Published versions are immutable/,
    );
    const smaller = path.join(work, 'smaller');
    fs.mkdirSync(smaller);
    fs.writeFileSync(path.join(smaller, 'model.onnx'), 'v2');
    const replaced = await publish({
      modelPath: smaller,
      modelName: 'churn',
      modelVersion: '1.4.2',
      pathPrefix: 'models',
      overwrite: 'true',
    });
    assert.equal(replaced.result, 'Succeeded', describeRun(replaced));
    const names: string[] = [];
    for await (const b of models.listBlobsFlat({ prefix: 'models/churn/1.4.2/' })) names.push(b.name);
    assert.deepEqual(names, ['models/churn/1.4.2/model.onnx']);
  });

  it('bad inputs name the input', async () => {
    const run = await publish({ modelPath: folder, modelName: 'churn/evil', modelVersion: '1.0.0' });
    assert.match(run.message, /Input 'modelName': 'churn\/evil' is not a model name/);
    const missing = await publish({ modelPath: path.join(work, 'nope'), modelName: 'churn', modelVersion: '1.0.0' });
    assert.match(missing.message, /Input 'modelPath': .* does not exist on the agent/);
  });
});
