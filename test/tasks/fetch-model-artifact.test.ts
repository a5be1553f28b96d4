import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { bundleTasks } from '../support/bundle';
import { type FakeDevOps, startDevOpsServer } from '../support/devopsServer';
import { type FaultProxy, startFaultProxy } from '../support/faultProxy';
import { makeTempDir } from '../support/paths';
import { describeRun, runTask, type RunTaskOptions } from '../support/taskRunner';

/**
 * FetchModel's pipelineArtifact source, run as the agent runs it, against a stand-in for the
 * Azure DevOps routes azure-devops-node-api calls (location discovery, Build definitions,
 * builds, artifacts, Get File), with a fault proxy in front for the resumed download.
 */

const sha256 = (data: Buffer | string) => crypto.createHash('sha256').update(data).digest('hex');
const model = (label: string) => crypto.createHash('sha512').update(label).digest();

/** Deterministic bytes of any size (SHAKE256 is an extendable-output hash). */
const bigContent = (label: string, size: number) =>
  crypto.createHash('shake256', { outputLength: size }).update(label).digest();

describe("FetchModel from another pipeline's artifact (azure-devops-node-api against an Azure DevOps stand-in)", function () {
  this.timeout(90_000);
  let devops: FakeDevOps;
  let proxy: FaultProxy;
  const work = makeTempDir('fetch-model-artifact-');
  const big = bigContent('big model', 6 * 1024 * 1024 + 123);

  before(async () => {
    bundleTasks('FetchModel');
    devops = await startDevOpsServer({
      project: 'ml-platform',
      pipelines: [
        {
          id: 7,
          name: 'churn-training',
          path: '\\ML',
          runs: [
            {
              id: 101,
              buildNumber: '20261120.1',
              result: 'succeeded',
              sourceBranch: 'refs/heads/main',
              finishTime: '2026-11-20T10:00:00Z',
              artifacts: {
                model: { 'churn/model.onnx': model('101'), 'churn/labels.json': Buffer.from('["a"]') },
                metrics: { 'auc.json': Buffer.from('{"auc":0.91}') },
              },
            },
            {
              id: 102,
              buildNumber: '20261121.1',
              result: 'succeeded',
              sourceBranch: 'refs/heads/experiment',
              finishTime: '2026-11-21T10:00:00Z',
              artifacts: { model: { 'churn/model.onnx': model('102'), 'churn/labels.json': Buffer.from('["b"]') } },
            },
            {
              id: 103,
              buildNumber: '20261122.1',
              result: 'failed',
              sourceBranch: 'refs/heads/main',
              finishTime: '2026-11-22T10:00:00Z',
              artifacts: { model: { 'churn/model.onnx': model('103') } },
            },
            {
              id: 104,
              buildNumber: '20261119.1',
              result: 'succeeded',
              sourceBranch: 'refs/heads/main',
              finishTime: '2026-11-19T10:00:00Z',
              artifacts: { drop: { 'model.onnx': model('104') } },
              containerArtifacts: ['drop'],
            },
          ],
        },
        {
          id: 20,
          name: 'scoring',
          path: '\\A',
          runs: [
            {
              id: 201,
              buildNumber: '1',
              result: 'succeeded',
              sourceBranch: 'refs/heads/main',
              finishTime: '2026-11-10T10:00:00Z',
              artifacts: { model: { 'm.onnx': model('201') } },
            },
          ],
        },
        {
          id: 21,
          name: 'scoring',
          path: '\\B',
          runs: [
            {
              id: 211,
              buildNumber: '1',
              result: 'succeeded',
              sourceBranch: 'refs/heads/main',
              finishTime: '2026-11-10T10:00:00Z',
              artifacts: { model: { 'm.onnx': model('211') } },
            },
          ],
        },
        {
          id: 30,
          name: 'big-training',
          runs: [
            {
              id: 301,
              buildNumber: '20261123.4',
              result: 'succeeded',
              sourceBranch: 'refs/heads/main',
              finishTime: '2026-11-23T10:00:00Z',
              artifacts: { model: { 'big.onnx': big } },
            },
          ],
        },
      ],
    });
    proxy = await startFaultProxy({ target: devops.url.replace(/\/$/, '') });
  });
  after(async () => {
    await proxy?.stop();
    await devops?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const agent = (collectionUri = devops.url, token = devops.token): Partial<RunTaskOptions> => ({
    variables: { 'System.CollectionUri': collectionUri, 'System.TeamProject': 'ml-platform' },
    secretVariables: { 'System.AccessToken': token },
    env: { SYSTEM_ACCESSTOKEN: token },
  });
  const fetch = (inputs: Record<string, string>, extra: Partial<RunTaskOptions> = {}) =>
    runTask('FetchModel', {
      inputs: { source: 'pipelineArtifact', pipeline: 'churn-training', artifactName: 'model', ...inputs },
      ...agent(),
      ...extra,
    });

  it('latest successful run on a branch, a folder inside the artifact, under Node 24; the library discovers its routes first', async () => {
    devops.requests.length = 0;
    const target = path.join(work, 'main');
    const run = await fetch({ branch: 'main', modelPath: 'churn/', targetPath: target }, { node: 'node24' });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.ok(fs.readFileSync(path.join(target, 'model.onnx')).equals(model('101')));
    assert.deepEqual(fs.readdirSync(target).sort(), ['labels.json', 'model-manifest.json', 'model.onnx']);
    assert.deepEqual(devops.requests.slice(0, 3), [
      'OPTIONS /_apis/Location api-version=',
      'GET /_apis/ResourceAreas api-version=7.2-preview.1',
      'OPTIONS /_apis/build api-version=',
    ]);
    // Completed (2), succeeded (2), newest finish first (3), on refs/heads/main.
    assert.ok(
      devops.requests.some((r) =>
        /^GET \/ml-platform\/_apis\/build\/Builds\?definitions=7&statusFilter=2&resultFilter=2&%24top=1&queryOrder=3&branchName=refs%2Fheads%2Fmain api-version=7\.2-preview\.7$/.test(
          r,
        ),
      ),
      devops.requests.join('\n'),
    );
    assert.match(run.outputs.ModelUri, /buildId=101/);
  });

  it('the latest successful on any branch (skipping a newer failed run); an explicit run id; one file inside the artifact', async () => {
    const any = await fetch({ modelPath: 'churn/model.onnx', targetPath: path.join(work, 'any') });
    assert.equal(any.result, 'Succeeded', describeRun(any));
    assert.equal(any.outputs.ModelSha256, sha256(model('102')));
    const pinned = await fetch({ runId: '101', modelPath: 'churn/model.onnx', targetPath: path.join(work, 'pinned') });
    assert.equal(pinned.result, 'Succeeded', describeRun(pinned));
    assert.equal(pinned.outputs.ModelSha256, sha256(model('101')));
    assert.deepEqual(fs.readdirSync(path.join(work, 'pinned')).sort(), ['model-manifest.json', 'model.onnx']);
    const failedRun = await fetch({
      runId: '103',
      modelPath: 'churn/model.onnx',
      targetPath: path.join(work, 'failed-run'),
    });
    assert.equal(failedRun.result, 'Succeeded', describeRun(failedRun));
    assert.equal(failedRun.outputs.ModelSha256, sha256(model('103')));
    assert.match(
      failedRun.issues.map((i) => i.message).join('\n'),
      /Run 20261122\.1 \(id 103\) of 'churn-training' ended failed; taking its artifact anyway/,
    );
  });

  it('the pipeline by numeric id, by folder\\name, and an ambiguous name listing both folders', async () => {
    const byId = await fetch({
      pipeline: '7',
      runId: '102',
      modelPath: 'churn/model.onnx',
      targetPath: path.join(work, 'by-id'),
    });
    assert.equal(byId.result, 'Succeeded', describeRun(byId));
    assert.equal(byId.outputs.ModelSha256, sha256(model('102')));
    assert.ok(devops.requests.includes('GET /ml-platform/_apis/build/Definitions/7 api-version=7.2-preview.7'));
    const inFolder = await fetch({
      pipeline: 'B\\scoring',
      modelPath: 'm.onnx',
      targetPath: path.join(work, 'folder'),
    });
    assert.equal(inFolder.result, 'Succeeded', describeRun(inFolder));
    assert.equal(inFolder.outputs.ModelSha256, sha256(model('211')));
    const ambiguous = await fetch({
      pipeline: 'scoring',
      modelPath: 'm.onnx',
      targetPath: path.join(work, 'ambiguous'),
    });
    assert.equal(ambiguous.result, 'Failed');
    assert.match(
      ambiguous.message,
      /2 pipelines in project 'ml-platform' are named 'scoring': \\A\\scoring \(id 20\), \\B\\scoring \(id 21\)\. Give the folder/,
    );
    const noId = await fetch({ pipeline: '99', targetPath: path.join(work, 'no-id') });
    assert.match(
      noId.message,
      /Project 'ml-platform' has no pipeline with id 99.*Pipelines there: churn-training \(id 7\), scoring \(id 20\), scoring \(id 21\), big-training \(id 30\)/,
    );
    const noName = await fetch({ pipeline: 'nope', targetPath: path.join(work, 'no-name') });
    assert.match(
      noName.message,
      /No pipeline named 'nope' in project 'ml-platform'\. Pipelines there: churn-training \(id 7\)/,
    );
  });

  it('a run that does not exist, or of another pipeline, or no successful run on the branch: errors list the recent runs', async () => {
    const missing = await fetch({ runId: '999', targetPath: path.join(work, 'no-run') });
    assert.equal(missing.result, 'Failed');
    assert.match(
      missing.message,
      /Run 999 does not exist in project 'ml-platform'\. Recent runs of 'churn-training': 103 \(20261122\.1, failed, main\), 102 \(20261121\.1, succeeded, experiment\), 101 /,
    );
    const other = await fetch({ runId: '201', targetPath: path.join(work, 'other-run') });
    assert.match(other.message, /Run 201 belongs to pipeline 'scoring' \(id 20\), not 'churn-training' \(id 7\)/);
    const branch = await fetch({ branch: 'release/2.0', targetPath: path.join(work, 'no-branch') });
    assert.match(
      branch.message,
      /Pipeline 'churn-training' \(id 7\) has no successful completed run on refs\/heads\/release\/2\.0\. Run it first, or give runId\. Recent runs/,
    );
    assert.deepEqual(
      fs.readdirSync(work).filter((d) => ['no-run', 'other-run', 'no-branch'].includes(d)),
      [],
    );
  });

  it('an artifact that is missing lists the artifacts the run has; a Container artifact, a missing path inside and an unknown project are explained', async () => {
    const noArt = await fetch({ runId: '101', artifactName: 'weights', targetPath: path.join(work, 'e1') });
    assert.equal(noArt.result, 'Failed');
    assert.match(
      noArt.message,
      /Run 20261120\.1 \(id 101\) of 'churn-training' has no artifact 'weights'\. Its artifacts: model, metrics\./,
    );
    const container = await fetch({ runId: '104', artifactName: 'drop', targetPath: path.join(work, 'e2') });
    assert.match(container.message, /is a Container artifact .*PublishPipelineArtifact/);
    const noPath = await fetch({ runId: '101', modelPath: 'churn/weights.onnx', targetPath: path.join(work, 'e3') });
    assert.match(
      noPath.message,
      /No blob is named 'churn\/weights\.onnx'.*there is: churn\/labels\.json, churn\/model\.onnx/,
    );
    const project = await fetch({ project: 'ml-platfrom', targetPath: path.join(work, 'e4') });
    assert.match(project.message, /Project 'ml-platfrom' does not exist in .* or the job's identity cannot see it/);
  });

  it('a token Azure DevOps refuses (401): the error names System.AccessToken and where to allow it; the token never prints', async () => {
    const wrong = 'wrong-token-value-0123456789';
    const denied = await runTask('FetchModel', {
      inputs: {
        source: 'pipelineArtifact',
        pipeline: 'churn-training',
        artifactName: 'model',
        targetPath: path.join(work, 'denied'),
      },
      ...agent(devops.url, wrong),
    });
    assert.equal(denied.result, 'Failed');
    assert.match(
      denied.message,
      /Azure DevOps rejected System\.AccessToken \(HTTP 401\) when asked to find pipeline 'churn-training'/,
    );
    assert.match(denied.message, /"Allow scripts to access the OAuth token"/);
    assert.ok(!denied.stdout.replace(/##vso\[task\.setsecret\].*/g, '').includes(wrong));
    const missingToken = await runTask('FetchModel', {
      inputs: {
        source: 'pipelineArtifact',
        pipeline: 'churn-training',
        artifactName: 'model',
        targetPath: path.join(work, 'no-token'),
      },
      variables: { 'System.CollectionUri': devops.url, 'System.TeamProject': 'ml-platform' },
    });
    assert.match(missingToken.message, /System\.AccessToken/);
  });

  it('connection resets in the middle of a 6 MiB artifact file: resumed, byte-exact, sha256 verified', async () => {
    devops.setPublicUrl(proxy.url);
    try {
      proxy.resetStats();
      proxy.setFaults([{ match: /fileName=big\.onnx/, resetAfterBytes: 1_500_000, times: 2 }]);
      const target = path.join(work, 'big');
      const run = await fetch(
        { pipeline: 'big-training', modelPath: 'big.onnx', targetPath: target, expectedSha256: sha256(big) },
        agent(proxy.url),
      );
      assert.equal(run.result, 'Succeeded', describeRun(run));
      assert.ok(fs.readFileSync(path.join(target, 'big.onnx')).equals(big));
      assert.equal(run.outputs.ModelSha256, sha256(big));
      assert.equal(proxy.stats.requests.filter((r) => /fileName=big\.onnx/.test(r.path)).length, 3);
      assert.equal(
        run.logLines.filter((l) => /big\.onnx: bytes \d+-\d+ interrupted/.test(l)).length,
        2,
        describeRun(run),
      );
      assert.deepEqual(fs.readdirSync(target).sort(), ['big.onnx', 'model-manifest.json']);
    } finally {
      proxy.setFaults([]);
      devops.setPublicUrl(devops.url);
    }
  });
});
