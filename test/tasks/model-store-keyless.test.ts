/**
 * The keyless path: PublishModel then FetchModel through an Azure Resource Manager connection with
 * workload identity federation. The bundled tasks ask (a stand-in for) Azure DevOps for an OIDC token,
 * hand it to (a stand-in for) Entra ID as a client assertion, and read and write blobs in Azurite
 * (HTTPS, --oauth basic) with the storage token they get back. No key or secret anywhere.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { ContainerClient } from '@azure/storage-blob';

import { type AzureStandIn, oidcSubject, startAzureStandIn, STORAGE_SCOPE } from '../support/azureStandIn';
import { type AzuriteServer, startAzurite } from '../support/azurite';
import { bundleTasks } from '../support/bundle';
import { makeTempDir } from '../support/paths';
import {
  assertNoSecretsLeaked,
  describeRun,
  runTask,
  type RunTaskOptions,
  type ServiceEndpoint,
  type TaskRun,
} from '../support/taskRunner';

const sha256 = (data: Buffer | string) => crypto.createHash('sha256').update(data).digest('hex');
const TASK_USER_AGENT = 'model-delivery-azure-pipelines';

function listFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)).split(path.sep).join('/'))
    .sort();
}

describe('PublishModel and FetchModel keyless: workload identity federation to Blob Storage', function () {
  this.timeout(180_000);
  const tenantId = crypto.randomUUID();
  const subscriptionId = crypto.randomUUID();
  const wifClientId = crypto.randomUUID();
  const wifConnection = { id: crypto.randomUUID(), name: 'ml-models-wif' };
  /** A connection Azure DevOps issues tokens for, but whose app registration has no federated credential for it. */
  const unfederatedConnection = { id: crypto.randomUUID(), name: 'ml-models-unfederated' };
  const spnClientId = crypto.randomUUID();
  const spnSecret = `spn-${crypto.randomBytes(16).toString('hex')}`;
  const systemAccessToken = `job-${crypto.randomBytes(24).toString('hex')}`;
  const certClientId = crypto.randomUUID();
  /** The PEM the service connection holds for a certificate sign-in: certificate and private key. */
  let certificatePem: string;
  const work = makeTempDir('model-store-keyless-');
  const folder = path.join(work, 'churn-model');
  const files: Record<string, Buffer> = {
    'model.onnx': crypto.randomBytes(1_500_000),
    'labels.json': Buffer.from('["stay","churn"]'),
  };
  let azure: AzureStandIn;
  let azurite: AzuriteServer;
  let models: ContainerClient;
  let caFile: string;

  before(async () => {
    const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spn-cert-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        path.join(certDir, 'key.pem'),
        '-out',
        path.join(certDir, 'cert.pem'),
        '-days',
        '2',
        '-subj',
        '/CN=ml-models-publisher',
      ],
      { stdio: 'pipe' },
    );
    const certOnly = fs.readFileSync(path.join(certDir, 'cert.pem'), 'utf8');
    certificatePem = fs.readFileSync(path.join(certDir, 'key.pem'), 'utf8') + certOnly;
    fs.rmSync(certDir, { recursive: true, force: true });
    bundleTasks('PublishModel', 'FetchModel');
    [azure, azurite] = await Promise.all([
      startAzureStandIn({
        tenantId,
        clientId: spnClientId,
        clientSecret: spnSecret,
        clusters: [],
        aksToken: `aks-${crypto.randomBytes(8).toString('hex')}`,
        workloadIdentity: {
          systemAccessToken,
          serviceConnections: [wifConnection, unfederatedConnection],
          federatedCredentials: [{ clientId: wifClientId, subject: oidcSubject(wifConnection.name) }],
        },
        certificateClients: [{ clientId: certClientId, certificatePem: certOnly }],
      }),
      startAzurite({ https: true, oauth: true, recordRequests: true }),
    ]);
    // The agent trusts one extra CA file: both throwaway CAs in it.
    caFile = path.join(work, 'extra-ca.pem');
    fs.writeFileSync(caFile, fs.readFileSync(azure.caFile, 'utf8') + fs.readFileSync(azurite.caFile!, 'utf8'));
    models = azurite.serviceClient().getContainerClient('models');
    await models.create();
    for (const [rel, data] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(folder, rel)), { recursive: true });
      fs.writeFileSync(path.join(folder, rel), data);
    }
  });

  after(async () => {
    await Promise.all([azure?.stop(), azurite?.stop()]);
    fs.rmSync(work, { recursive: true, force: true });
  });

  /** An Azure Resource Manager connection whose cloud is the stand-in (its authority and ARM URL). */
  const armEndpoint = (id: string, scheme: string, auth: Record<string, string>): ServiceEndpoint => ({
    id,
    scheme,
    url: azure.url,
    auth: { tenantid: tenantId, ...auth },
    data: {
      environment: 'AzureCloud',
      environmentAuthorityUrl: azure.url,
      subscriptionId,
      subscriptionName: 'ML platform',
    },
  });
  const wifEndpoint = (connection = wifConnection) =>
    armEndpoint(connection.id, 'WorkloadIdentityFederation', { serviceprincipalid: wifClientId });
  const spnEndpoint = () =>
    armEndpoint('spn-conn', 'ServicePrincipal', {
      serviceprincipalid: spnClientId,
      serviceprincipalkey: spnSecret,
      authenticationType: 'spnKey',
    });
  const certificateEndpoint = () =>
    armEndpoint('cert-conn', 'ServicePrincipal', {
      serviceprincipalid: certClientId,
      servicePrincipalCertificate: certificatePem,
      authenticationType: 'spnCertificate',
    });

  interface RunOptions {
    endpoint?: ServiceEndpoint;
    accessToken?: string;
    node?: RunTaskOptions['node'];
  }

  async function run(
    task: 'PublishModel' | 'FetchModel',
    inputs: Record<string, string>,
    opts: RunOptions = {},
  ): Promise<TaskRun> {
    const endpoint = opts.endpoint ?? wifEndpoint();
    const result = await runTask(task, {
      inputs: {
        [task === 'PublishModel' ? 'destination' : 'source']: 'azureBlob',
        authenticationType: 'serviceConnection',
        azureSubscription: endpoint.id,
        storageAccount: azurite.accountName,
        blobEndpoint: azurite.blobEndpoint,
        container: 'models',
        ...inputs,
      },
      endpoints: [endpoint],
      variables: { 'System.OidcRequestUri': azure.oidcRequestUri },
      secretVariables: { 'System.AccessToken': opts.accessToken ?? systemAccessToken },
      env: { NODE_EXTRA_CA_CERTS: caFile },
      node: opts.node,
    });
    // Tokens the task could only have learned at run time: each registered as a secret, none printed.
    const issued = [...azure.oidcTokens, ...azure.storageTokens];
    assertNoSecretsLeaked(result, [...issued, systemAccessToken, spnSecret]);
    return result;
  }

  /** Requests the tasks (not this test's own set-up) made of Azurite, by their auth scheme. */
  const taskRequestsToAzurite = () => azurite.requests().filter((r) => r.userAgent.includes(TASK_USER_AGENT));
  const blobNames = async (prefix: string) => {
    const names: string[] = [];
    for await (const b of models.listBlobsFlat({ prefix })) names.push(b.name);
    return names.sort();
  };

  it('publishes and fetches a model with no key: OIDC token → client assertion → bearer token, byte-exact and sha256-verified (Node 24 fetch)', async () => {
    const requestsBefore = azure.requests.length;
    const published = await run('PublishModel', {
      modelPath: folder,
      modelName: 'churn',
      modelVersion: '2.0.0',
      pathPrefix: 'keyless',
    });
    assert.equal(published.result, 'Succeeded', describeRun(published));
    assert.equal(published.outputs.ModelPath, 'keyless/churn/2.0.0/');
    assert.deepEqual(
      await blobNames('keyless/churn/2.0.0/'),
      Object.keys(files)
        .map((f) => `keyless/churn/2.0.0/${f}`)
        .sort(),
    );

    const target = path.join(work, 'fetched');
    const fetched = await run(
      'FetchModel',
      { modelPath: 'keyless/churn/', versionSelector: 'semver', targetPath: target },
      { node: 'node24' },
    );
    assert.equal(fetched.result, 'Succeeded', describeRun(fetched));
    assert.equal(fetched.outputs.ModelVersion, '2.0.0');
    assert.equal(fetched.outputs.ModelSha256, published.outputs.ModelSha256);
    assert.match(fetched.summaries.join('\n'), /sha256 metadata/);
    assert.deepEqual(listFiles(target), [...Object.keys(files), 'model-manifest.json'].sort());
    for (const [rel, data] of Object.entries(files))
      assert.ok(fs.readFileSync(path.join(target, rel)).equals(data), `${rel} is byte-exact`);
    assert.equal(sha256(fs.readFileSync(path.join(target, 'model.onnx'))), sha256(files['model.onnx']));

    // Each run: one OIDC request for this connection (MSAL asks for the assertion twice; the task reuses it), then a client-assertion grant for the storage scope; no secret grant.
    const seen = azure.requests.slice(requestsBefore);
    const oidc = seen.filter((r) => r.path.endsWith('/oidctoken'));
    assert.equal(oidc.length, 2, JSON.stringify(seen));
    assert.ok(oidc.every((r) => r.serviceConnectionId === wifConnection.id));
    const grants = seen.filter((r) => r.clientAuth);
    assert.equal(grants.length, 2, JSON.stringify(seen));
    assert.ok(
      grants.every((g) => g.clientAuth === 'federatedAssertion' && g.scope === STORAGE_SCOPE),
      JSON.stringify(grants),
    );
    // Every token the tasks got was registered as a secret before it could be printed.
    const registered = [...published.secrets, ...fetched.secrets];
    for (const token of [...azure.oidcTokens, ...azure.storageTokens])
      assert.ok(registered.includes(token), 'an issued token was not registered with setsecret');
    assert.ok(registered.includes(systemAccessToken) || !published.stdout.includes(systemAccessToken));

    // Azurite saw the tasks only with bearer tokens.
    const toAzurite = taskRequestsToAzurite();
    assert.ok(toAzurite.length >= 4, `the tasks reached Azurite: ${JSON.stringify(toAzurite)}`);
    assert.deepEqual([...new Set(toAzurite.map((r) => r.authScheme))], ['Bearer']);
  });

  it('a wrong System.AccessToken fails before anything is written, saying what to fix', async () => {
    const grantsBefore = azure.requests.filter((r) => r.clientAuth).length;
    const wrong = `job-${crypto.randomBytes(24).toString('hex')}`;
    const failed = await run(
      'PublishModel',
      { modelPath: folder, modelName: 'churn', modelVersion: '2.1.0', pathPrefix: 'keyless' },
      { accessToken: wrong },
    );
    assert.equal(failed.result, 'Failed', describeRun(failed));
    assert.match(
      failed.message,
      /Azure DevOps refused the OIDC token request for service connection .* \(HTTP 401: TF400813/,
    );
    assert.match(failed.message, /System\.AccessToken\) was not accepted/);
    assert.match(failed.message, /authorized for this pipeline/);
    assert.match(failed.message, new RegExp(wifConnection.id));
    assert.ok(
      failed.secrets.includes(wrong),
      'the wrong token is registered as a secret too (and the runner found it nowhere else)',
    );
    assert.equal(azure.requests.filter((r) => r.clientAuth).length, grantsBefore, 'Entra ID was never asked');
    assert.deepEqual(await blobNames('keyless/churn/2.1.0/'), []);
  });

  it('a connection whose app registration has no matching federated credential fails naming the subject to trust', async () => {
    const failed = await run(
      'PublishModel',
      { modelPath: folder, modelName: 'churn', modelVersion: '2.2.0', pathPrefix: 'keyless' },
      { endpoint: wifEndpoint(unfederatedConnection) },
    );
    assert.equal(failed.result, 'Failed', describeRun(failed));
    assert.match(failed.message, /AADSTS70021: No matching federated identity record/);
    assert.doesNotMatch(failed.message, /Trace ID|Timestamp/, 'Entra noise trimmed');
    assert.match(
      failed.message,
      new RegExp(
        `app registration ${wifClientId} in tenant ${tenantId} needs a federated credential with issuer '${azure.oidcIssuer}'`,
      ),
    );
    assert.match(failed.message, new RegExp(oidcSubject(unfederatedConnection.name).replace(/[/.]/g, '\\$&')));
    assert.ok(
      azure.requests.some((r) => r.serviceConnectionId === unfederatedConnection.id),
      'Azure DevOps issued the OIDC token',
    );
    assert.deepEqual(await blobNames('keyless/churn/2.2.0/'), []);
  });

  it('no System.OidcRequestUri (not a pipeline job, or an old agent): a clear error', async () => {
    const result = await runTask('FetchModel', {
      inputs: {
        source: 'azureBlob',
        authenticationType: 'serviceConnection',
        azureSubscription: wifConnection.id,
        storageAccount: azurite.accountName,
        blobEndpoint: azurite.blobEndpoint,
        container: 'models',
        modelPath: 'keyless/churn/2.0.0/',
        targetPath: path.join(work, 'no-oidc'),
      },
      endpoints: [wifEndpoint()],
      secretVariables: { 'System.AccessToken': systemAccessToken },
      env: { NODE_EXTRA_CA_CERTS: caFile },
    });
    assert.equal(result.result, 'Failed', describeRun(result));
    assert.match(result.message, /no System\.OidcRequestUri/);
    assert.ok(!fs.existsSync(path.join(work, 'no-oidc', 'model.onnx')));
  });

  it('a service principal secret connection (spnKey) also works end to end, with bearer tokens only', async () => {
    const published = await run(
      'PublishModel',
      {
        modelPath: path.join(folder, 'model.onnx'),
        modelName: 'churn-spn',
        modelVersion: '1.0.0',
        pathPrefix: 'keyless',
      },
      { endpoint: spnEndpoint() },
    );
    assert.equal(published.result, 'Succeeded', describeRun(published));
    const target = path.join(work, 'fetched-spn');
    const fetched = await run(
      'FetchModel',
      { modelPath: 'keyless/churn-spn/1.0.0/model.onnx', targetPath: target },
      { endpoint: spnEndpoint() },
    );
    assert.equal(fetched.result, 'Succeeded', describeRun(fetched));
    assert.equal(fetched.outputs.ModelSha256, sha256(files['model.onnx']));
    assert.ok(fs.readFileSync(path.join(target, 'model.onnx')).equals(files['model.onnx']));
    assert.ok(azure.requests.some((r) => r.clientAuth === 'secret' && r.scope === STORAGE_SCOPE));
    assert.deepEqual([...new Set(taskRequestsToAzurite().map((r) => r.authScheme))], ['Bearer']);
  });

  it('a service principal certificate connection (spnCertificate) signs a client assertion the stand-in verifies', async () => {
    const fetched = await run(
      'FetchModel',
      { modelPath: 'keyless/churn-spn/1.0.0/model.onnx', targetPath: path.join(work, 'fetched-cert') },
      { endpoint: certificateEndpoint() },
    );
    assert.equal(fetched.result, 'Succeeded', describeRun(fetched));
    assert.equal(fetched.outputs.ModelSha256, sha256(files['model.onnx']));
    assert.ok(azure.requests.some((r) => r.clientAuth === 'certificateAssertion' && r.scope === STORAGE_SCOPE));
    // Every line of the private key is a sentinel: none may be printed outside its setsecret.
    assertNoSecretsLeaked(
      fetched,
      certificatePem.split('\n').filter((line) => line.length >= 20 && !line.startsWith('-----')),
    );
  });
});
