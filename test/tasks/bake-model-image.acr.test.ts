import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { type AzureStandIn, startAzureStandIn } from '../support/azureStandIn';
import { makeBaseImage, skopeoInspect } from '../support/images';
import { makeTempDir } from '../support/paths';
import { type AcrFront, startAcrFront, startRegistry, type TestRegistry } from '../support/registry';
import { describeRun, runTask, type RunTaskOptions, type TaskRun } from '../support/taskRunner';

/**
 * BakeModelImage through an Azure Resource Manager connection, as with ACR: @azure/identity gets
 * an Entra ID token from the HTTPS stand-in (trusted through NODE_EXTRA_CA_CERTS), the task
 * exchanges it at the ACR stand-in's /oauth2/exchange, and pushes with the registry token. No
 * admin user, no docker login, no password of the registry in the task's hands.
 */
describe('BakeModelImage task with an Azure Resource Manager connection (ACR token exchange)', function () {
  this.timeout(120_000);
  const tenantId = '72f988bf-0000-4000-8000-000000000001';
  const clientId = '1b2c3d4e-0000-4000-8000-000000000002';
  const clientSecret = `spn-secret-${crypto.randomBytes(8).toString('hex')}`;
  let registry: TestRegistry;
  let azure: AzureStandIn;
  let acr: AcrFront;
  let work: string;

  before(async () => {
    registry = await startRegistry();
    azure = await startAzureStandIn({ tenantId, clientId, clientSecret, clusters: [], aksToken: 'unused' });
    acr = await startAcrFront({ registry, tenantId, entraToken: (token) => azure.armTokens.includes(token) });
    work = makeTempDir('bake-acr-');
    await makeBaseImage(registry, { repository: 'apps/scoring-app', tag: '1.0' });
  });
  after(async () => {
    await acr?.stop();
    await azure?.stop();
    await registry?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const bake = (secret: string): Promise<TaskRun> => {
    const modelFile = path.join(work, 'model.onnx');
    fs.writeFileSync(modelFile, crypto.randomBytes(50_000));
    const endpoint: NonNullable<RunTaskOptions['endpoints']>[number] = {
      id: 'arm-conn',
      scheme: 'ServicePrincipal',
      url: azure.url,
      auth: {
        tenantid: tenantId,
        serviceprincipalid: clientId,
        serviceprincipalkey: secret,
        authenticationType: 'spnKey',
      },
      data: { subscriptionId: 'sub-1', environment: 'AzureCloud', environmentAuthorityUrl: azure.url },
    };
    return runTask('BakeModelImage', {
      inputs: {
        connectionType: 'azureResourceManager',
        azureSubscription: 'arm-conn',
        repository: `${acr.host}/ml/scoring`,
        baseImage: `${acr.host}/apps/scoring-app:1.0`,
        modelPath: modelFile,
        tags: 'acr',
      },
      endpoints: [endpoint],
      env: { NODE_EXTRA_CA_CERTS: azure.caFile },
      node: 'node24',
    });
  };

  it('pushes with a registry token exchanged for the Entra ID token (Node 24)', async () => {
    const run = await bake(clientSecret);
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.equal(acr.events.filter((e) => e.kind === 'exchange').length, 1);
    assert.deepEqual(
      acr.events.filter((e) => e.kind === 'exchange').map((e) => e.detail),
      [`tenant=${tenantId}`],
    );
    const scopes = acr.events.filter((e) => e.kind === 'token').map((e) => e.detail);
    assert.ok(
      scopes.some((s) => s.includes('repository:ml/scoring:pull,push')),
      scopes.join('\n'),
    );
    assert.ok(
      scopes.some((s) => s.includes('repository:apps/scoring-app:pull')),
      'the cross-repository mount asks for pull on the base repository',
    );
    assert.ok(acr.events.some((e) => e.kind === 'forward' && /^PUT \/v2\/ml\/scoring\/manifests\/acr$/.test(e.detail)));
    const inspect = await skopeoInspect(registry, `${registry.host}/ml/scoring:acr`);
    assert.equal(inspect.Digest, run.outputs.ImageDigest);
    assert.ok(
      run.secrets.some((s) => s.startsWith('acr-refresh-')),
      'the refresh token is registered as a secret',
    );
    assert.ok(
      run.secrets.some((s) => s.startsWith('acr-access-')),
      'the access token is registered as a secret',
    );
    assert.ok(
      run.secrets.some((s) => s.startsWith('arm-')),
      'the Entra ID token is registered as a secret',
    );
  });

  it('fails clearly, naming the connection, when Entra ID refuses the service principal', async () => {
    const run = await bake('wrong-secret-value');
    assert.equal(run.result, 'Failed', describeRun(run));
    assert.match(
      run.message,
      /^Azure service connection 'arm-conn' \(azureSubscription\) could not sign in to push to 127\.0\.0\.1:\d+: .*AADSTS7000215/,
    );
    assert.doesNotMatch(run.logLines.join('\n') + run.message, /wrong-secret-value/);
  });
});
