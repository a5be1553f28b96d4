import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

import { bundleTasks } from '../support/bundle';
import { makeTempDir } from '../support/paths';
import { type S3Server, startS3rver } from '../support/s3rver';
import { describeRun, runTask } from '../support/taskRunner';

/** FetchModel from S3 (s3rver) and PublishModel to S3; pipeline artifacts are in fetch-model-artifact.test.ts. */

const sha256 = (data: Buffer | string) => crypto.createHash('sha256').update(data).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('FetchModel from S3 (s3rver) and PublishModel to S3', function () {
  this.timeout(120_000);
  let s3: S3Server;
  let client: S3Client;
  const work = makeTempDir('fetch-model-s3-');
  const v = (version: string) => crypto.createHash('sha512').update(`s3 ${version}`).digest();

  before(async () => {
    bundleTasks('FetchModel', 'PublishModel');
    s3 = await startS3rver();
    client = new S3Client({
      region: s3.region,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await client.send(new CreateBucketCommand({ Bucket: 'models' }));
    for (const version of ['0.9.0', '0.10.0', '0.2.0']) {
      await client.send(
        new PutObjectCommand({
          Bucket: 'models',
          Key: `fraud/fraud-${version}.onnx`,
          Body: v(version),
          Metadata: { stage: version === '0.2.0' ? 'production' : 'dev' },
        }),
      );
      await sleep(1100);
    }
    await client.send(
      new PutObjectCommand({
        Bucket: 'models',
        Key: 'bad/model.onnx',
        Body: Buffer.from('real bytes'),
        Metadata: { sha256: sha256('other bytes') },
      }),
    );
  });
  after(async () => {
    await s3?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const s3Inputs = () => ({
    s3AuthenticationType: 'accessKey',
    awsAccessKeyId: s3.accessKeyId,
    awsSecretAccessKey: s3.secretAccessKey,
    bucket: 'models',
    s3Endpoint: s3.endpoint,
  });
  const fetch = (inputs: Record<string, string>) =>
    runTask('FetchModel', {
      inputs: { source: 's3', ...s3Inputs(), ...inputs },
      secretVariables: { AwsSecretAccessKey: s3.secretAccessKey },
    });

  it('semver picks fraud-0.10.0.onnx; exact verifies the single-part ETag (MD5)', async () => {
    const run = await fetch({ modelPath: 'fraud/', versionSelector: 'semver', targetPath: path.join(work, 'semver') });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.equal(run.outputs.ModelVersion, '0.10.0');
    assert.equal(run.outputs.ModelName, 'fraud');
    assert.equal(run.outputs.ModelSha256, sha256(v('0.10.0')));
    assert.match(run.summaries.join('\n'), /ETag \(MD5\)/);
    assert.equal(run.outputs.ModelUri, `${s3.endpoint}/models/fraud/fraud-0.10.0.onnx`);
  });

  it('latest and metadata selectors', async () => {
    const latest = await fetch({
      modelPath: 'fraud',
      versionSelector: 'latest',
      targetPath: path.join(work, 'latest'),
    });
    assert.equal(latest.outputs.ModelVersion, '0.2.0', describeRun(latest));
    const meta = await fetch({
      modelPath: 'fraud/',
      versionSelector: 'metadata',
      metadataFilter: 'stage=production',
      targetPath: path.join(work, 'meta'),
    });
    assert.equal(meta.result, 'Succeeded', describeRun(meta));
    assert.ok(fs.readFileSync(path.join(work, 'meta', 'fraud-0.2.0.onnx')).equals(v('0.2.0')));
  });

  it('sha256 metadata mismatch fails with nothing left; a missing bucket names the buckets there', async () => {
    const bad = await fetch({ modelPath: 'bad/model.onnx', targetPath: path.join(work, 'bad') });
    assert.equal(bad.result, 'Failed');
    assert.match(bad.message, /Integrity check failed for 'bad\/model\.onnx'/);
    assert.deepEqual(fs.existsSync(path.join(work, 'bad')) ? fs.readdirSync(path.join(work, 'bad')) : [], []);
    const bucket = await fetch({
      bucket: 'modelz',
      modelPath: 'fraud/',
      versionSelector: 'latest',
      targetPath: path.join(work, 'nob'),
    });
    assert.equal(bucket.result, 'Failed');
    assert.match(bucket.message, /Bucket 'modelz' does not exist.*Buckets visible to this key: models/);
  });

  it('PublishModel to S3 (multipart for a large file) then FetchModel verifies it by sha256 metadata', async () => {
    const folder = path.join(work, 'to-publish');
    fs.mkdirSync(folder);
    const big = crypto.randomBytes(12 * 1024 * 1024);
    fs.writeFileSync(path.join(folder, 'model.onnx'), big);
    fs.writeFileSync(path.join(folder, 'labels.txt'), 'a\nb\n');
    const pub = await runTask('PublishModel', {
      inputs: {
        destination: 's3',
        ...s3Inputs(),
        modelPath: folder,
        modelName: 'fraud-nn',
        modelVersion: '2.0.0',
        blockSize: '5MiB',
        tags: 'stage=staging',
      },
      secretVariables: { AwsSecretAccessKey: s3.secretAccessKey },
    });
    assert.equal(pub.result, 'Succeeded', describeRun(pub));
    const again = await runTask('PublishModel', {
      inputs: { destination: 's3', ...s3Inputs(), modelPath: folder, modelName: 'fraud-nn', modelVersion: '2.0.0' },
    });
    assert.match(again.message, /already published/);
    const run = await fetch({
      modelPath: pub.outputs.ModelPath,
      targetPath: path.join(work, 'roundtrip'),
      expectedSha256: pub.outputs.ModelSha256,
    });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.match(run.summaries.join('\n'), /sha256 metadata, expectedSha256/);
    assert.ok(fs.readFileSync(path.join(work, 'roundtrip', 'model.onnx')).equals(big));
  });
});
