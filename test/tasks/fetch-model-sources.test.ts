import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startDevOpsServer, type FakeDevOps } from '../support/devopsServer';
import { makeTempDir, repoRoot } from '../support/paths';
import { startS3rver, type S3Server } from '../support/s3rver';
import { describeRun, runTask } from '../support/taskRunner';

/** FetchModel's other sources: S3 (s3rver), another pipeline's artifact (Azure DevOps REST stand-in); PublishModel to S3. */

const sha256 = (data: Buffer | string) => crypto.createHash('sha256').update(data).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('FetchModel from S3 (s3rver) and PublishModel to S3', function () {
  this.timeout(120_000);
  let s3: S3Server;
  let client: S3Client;
  const work = makeTempDir('fetch-model-s3-');
  const v = (version: string) => crypto.createHash('sha512').update(`s3 ${version}`).digest();

  before(async () => {
    execFileSync(process.execPath, [path.join(repoRoot, 'build', 'bundle.mjs'), 'FetchModel', 'PublishModel'], { stdio: 'inherit' });
    s3 = await startS3rver();
    client = new S3Client({ region: s3.region, endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    await client.send(new CreateBucketCommand({ Bucket: 'models' }));
    for (const version of ['0.9.0', '0.10.0', '0.2.0']) {
      await client.send(new PutObjectCommand({ Bucket: 'models', Key: `fraud/fraud-${version}.onnx`, Body: v(version), Metadata: { stage: version === '0.2.0' ? 'production' : 'dev' } }));
      await sleep(1100);
    }
    await client.send(new PutObjectCommand({ Bucket: 'models', Key: 'bad/model.onnx', Body: Buffer.from('real bytes'), Metadata: { sha256: sha256('other bytes') } }));
  });
  after(async () => {
    await s3?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const s3Inputs = () => ({ s3AuthenticationType: 'accessKey', awsAccessKeyId: s3.accessKeyId, awsSecretAccessKey: s3.secretAccessKey, bucket: 'models', s3Endpoint: s3.endpoint });
  const fetch = (inputs: Record<string, string>) => runTask('FetchModel', { inputs: { source: 's3', ...s3Inputs(), ...inputs }, secretVariables: { AwsSecretAccessKey: s3.secretAccessKey } });

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
    const latest = await fetch({ modelPath: 'fraud', versionSelector: 'latest', targetPath: path.join(work, 'latest') });
    assert.equal(latest.outputs.ModelVersion, '0.2.0', describeRun(latest));
    const meta = await fetch({ modelPath: 'fraud/', versionSelector: 'metadata', metadataFilter: 'stage=production', targetPath: path.join(work, 'meta') });
    assert.equal(meta.result, 'Succeeded', describeRun(meta));
    assert.ok(fs.readFileSync(path.join(work, 'meta', 'fraud-0.2.0.onnx')).equals(v('0.2.0')));
  });

  it('sha256 metadata mismatch fails with nothing left; a missing bucket names the buckets there', async () => {
    const bad = await fetch({ modelPath: 'bad/model.onnx', targetPath: path.join(work, 'bad') });
    assert.equal(bad.result, 'Failed');
    assert.match(bad.message, /Integrity check failed for 'bad\/model\.onnx'/);
    assert.deepEqual(fs.existsSync(path.join(work, 'bad')) ? fs.readdirSync(path.join(work, 'bad')) : [], []);
    const bucket = await fetch({ bucket: 'modelz', modelPath: 'fraud/', versionSelector: 'latest', targetPath: path.join(work, 'nob') });
    assert.equal(bucket.result, 'Failed');
    assert.match(bucket.message, /Bucket 'modelz' does not exist.*Buckets visible to this key: models/);
  });

  it('PublishModel to S3 (multipart for a large file) then FetchModel verifies it by sha256 metadata', async () => {
    const folder = path.join(work, 'to-publish');
    fs.mkdirSync(folder);
    const big = crypto.randomBytes(12 * 1024 * 1024);
    fs.writeFileSync(path.join(folder, 'model.onnx'), big);
    fs.writeFileSync(path.join(folder, 'labels.txt'), 'a\nb\n');
    const pub = await runTask('PublishModel', { inputs: { destination: 's3', ...s3Inputs(), modelPath: folder, modelName: 'fraud-nn', modelVersion: '2.0.0', blockSize: '5MiB', tags: 'stage=staging' }, secretVariables: { AwsSecretAccessKey: s3.secretAccessKey } });
    assert.equal(pub.result, 'Succeeded', describeRun(pub));
    const again = await runTask('PublishModel', { inputs: { destination: 's3', ...s3Inputs(), modelPath: folder, modelName: 'fraud-nn', modelVersion: '2.0.0' } });
    assert.match(again.message, /already published/);
    const run = await fetch({ modelPath: pub.outputs.ModelPath, targetPath: path.join(work, 'roundtrip'), expectedSha256: pub.outputs.ModelSha256 });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.match(run.summaries.join('\n'), /sha256 metadata, expectedSha256/);
    assert.ok(fs.readFileSync(path.join(work, 'roundtrip', 'model.onnx')).equals(big));
  });
});

describe('FetchModel from another pipeline\'s artifact (Azure DevOps REST 7.1 stand-in)', function () {
  this.timeout(60_000);
  let devops: FakeDevOps;
  const work = makeTempDir('fetch-model-artifact-');
  const model = (label: string) => crypto.createHash('sha512').update(label).digest();

  before(async () => {
    execFileSync(process.execPath, [path.join(repoRoot, 'build', 'bundle.mjs'), 'FetchModel'], { stdio: 'inherit' });
    devops = await startDevOpsServer({
      project: 'ml-platform',
      pipelines: [
        {
          id: 7,
          name: 'churn-training',
          runs: [
            { id: 101, buildNumber: '20261120.1', result: 'succeeded', sourceBranch: 'refs/heads/main', finishTime: '2026-11-20T10:00:00Z', artifacts: { model: { 'churn/model.onnx': model('101'), 'churn/labels.json': Buffer.from('["a"]') } } },
            { id: 102, buildNumber: '20261121.1', result: 'succeeded', sourceBranch: 'refs/heads/experiment', finishTime: '2026-11-21T10:00:00Z', artifacts: { model: { 'churn/model.onnx': model('102'), 'churn/labels.json': Buffer.from('["b"]') } } },
            { id: 103, buildNumber: '20261122.1', result: 'failed', sourceBranch: 'refs/heads/main', finishTime: '2026-11-22T10:00:00Z', artifacts: { model: { 'churn/model.onnx': model('103') } } },
            { id: 104, buildNumber: '20261119.1', result: 'succeeded', sourceBranch: 'refs/heads/main', finishTime: '2026-11-19T10:00:00Z', artifacts: { drop: { 'model.onnx': model('104') } }, containerArtifacts: ['drop'] },
          ],
        },
      ],
    });
  });
  after(async () => {
    await devops?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const fetch = (inputs: Record<string, string>) =>
    runTask('FetchModel', {
      inputs: { source: 'pipelineArtifact', pipeline: 'churn-training', artifactName: 'model', ...inputs },
      variables: { 'System.CollectionUri': devops.url, 'System.TeamProject': 'ml-platform' },
      secretVariables: { 'System.AccessToken': devops.token },
      env: { SYSTEM_ACCESSTOKEN: devops.token },
    });

  it('the latest successful run on a branch: a folder inside the artifact', async () => {
    const target = path.join(work, 'main');
    const run = await fetch({ branch: 'main', modelPath: 'churn/', targetPath: target });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.ok(fs.readFileSync(path.join(target, 'model.onnx')).equals(model('101')));
    assert.deepEqual(fs.readdirSync(target).sort(), ['labels.json', 'model-manifest.json', 'model.onnx']);
    assert.ok(devops.requests.some((r) => r.includes('/_apis/build/builds?definitions=7&statusFilter=completed&resultFilter=succeeded') && r.includes('branchName=refs%2Fheads%2Fmain')));
  });

  it('a given run id, one file; the latest successful on any branch otherwise', async () => {
    const pinned = await fetch({ runId: '102', modelPath: 'churn/model.onnx', targetPath: path.join(work, 'pinned') });
    assert.equal(pinned.result, 'Succeeded', describeRun(pinned));
    assert.equal(pinned.outputs.ModelSha256, sha256(model('102')));
    const any = await fetch({ modelPath: 'churn/model.onnx', targetPath: path.join(work, 'any') });
    assert.equal(any.outputs.ModelSha256, sha256(model('102')), describeRun(any));
  });

  it('clear errors: unknown pipeline, missing artifact, build (Container) artifact, bad token', async () => {
    const noPipe = await fetch({ pipeline: 'nope', targetPath: path.join(work, 'e1') });
    assert.match(noPipe.message, /No pipeline named 'nope' in project 'ml-platform'. Pipelines there: churn-training/);
    const noArt = await fetch({ artifactName: 'weights', targetPath: path.join(work, 'e2') });
    assert.match(noArt.message, /has no artifact 'weights'. Its artifacts: model/);
    const container = await fetch({ runId: '104', artifactName: 'drop', targetPath: path.join(work, 'e3') });
    assert.match(container.message, /is a Container artifact/);
    const denied = await runTask('FetchModel', { inputs: { source: 'pipelineArtifact', pipeline: 'churn-training', artifactName: 'model', targetPath: path.join(work, 'e4') }, variables: { 'System.CollectionUri': devops.url, 'System.TeamProject': 'ml-platform' }, env: { SYSTEM_ACCESSTOKEN: 'wrong-token-value' } });
    assert.match(denied.message, /Azure DevOps refused to find pipeline 'churn-training' \(HTTP 401\)/);
  });
});
