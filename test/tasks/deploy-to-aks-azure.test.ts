/**
 * DeployToAKS on the Azure Resource Manager path: a service principal connection, the cluster's
 * credentials from (a stand-in for) ARM, and for an Entra ID cluster an Entra token for the AKS
 * server application used as the bearer token: no kubelogin on the agent.
 */
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';

import yaml from 'js-yaml';

import { AKS_SCOPE, type AzureStandIn, startAzureStandIn } from '../support/azureStandIn';
import { bundleTasks } from '../support/bundle';
import { type KubeTestServer, startKubeTestServer } from '../support/kube';
import { describeRun, runTask, type RunTaskOptions } from '../support/taskRunner';

const image = `scoringacr.azurecr.io/models/scoring@sha256:${'c'.repeat(64)}`;

/** What AKS hands out for an Entra ID cluster: the cluster's server and CA, and a kubelogin exec user. */
function entraKubeconfig(kube: KubeTestServer): string {
  const config = yaml.load(kube.kubeconfig) as { clusters: unknown[] };
  return yaml.dump({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: (config.clusters as Array<{ cluster: unknown }>).map((c) => ({ name: 'aks-ml', cluster: c.cluster })),
    contexts: [{ name: 'aks-ml', context: { cluster: 'aks-ml', user: 'clusterUser_ml-rg_aks-ml' } }],
    'current-context': 'aks-ml',
    users: [
      {
        name: 'clusterUser_ml-rg_aks-ml',
        user: {
          exec: {
            apiVersion: 'client.authentication.k8s.io/v1beta1',
            command: 'kubelogin',
            args: [
              'get-token',
              '--environment',
              'AzurePublicCloud',
              '--server-id',
              '6dae42f8-4368-4678-94ff-3960e28e3630',
              '--client-id',
              '80faf920-1908-4b52-b5ef-a8e7bedfc67a',
              '--tenant-id',
              'tenant',
              '--login',
              'devicecode',
            ],
            env: null,
            installHint: 'kubelogin is not installed',
            provideClusterInfo: false,
            interactiveMode: 'IfAvailable',
          },
        },
      },
    ],
  });
}

describe('DeployToAKS (bundled) through an Azure Resource Manager connection', function () {
  this.timeout(120_000);
  const tenantId = crypto.randomUUID();
  const clientId = crypto.randomUUID();
  const clientSecret = `spn-${crypto.randomBytes(16).toString('hex')}`;
  const subscriptionId = crypto.randomUUID();
  let kube: KubeTestServer;
  let azure: AzureStandIn;

  before(async () => {
    bundleTasks('DeployToAKS');
    const aksToken = `aks-${crypto.randomBytes(20).toString('hex')}`;
    kube = await startKubeTestServer({ tickMs: 20, token: aksToken });
    azure = await startAzureStandIn({
      tenantId,
      clientId,
      clientSecret,
      aksToken,
      clusters: [
        { subscriptionId, resourceGroup: 'ml-rg', name: 'aks-ml', userKubeconfig: entraKubeconfig(kube) },
        {
          subscriptionId,
          resourceGroup: 'ml-rg',
          name: 'aks-local',
          userKubeconfig: kube.kubeconfig,
          adminKubeconfig: kube.kubeconfig,
        },
      ],
    });
  });

  after(async () => {
    await azure?.stop();
    await kube?.stop();
  });

  const armEndpoint = (secret = clientSecret): NonNullable<RunTaskOptions['endpoints']>[number] => ({
    id: 'arm-conn',
    scheme: 'ServicePrincipal',
    url: azure.url,
    auth: {
      tenantid: tenantId,
      serviceprincipalid: clientId,
      serviceprincipalkey: secret,
      authenticationType: 'spnKey',
    },
    data: { subscriptionId, environment: 'AzureCloud', environmentAuthorityUrl: azure.url },
  });

  const deploy = (inputs: RunTaskOptions['inputs'], opts: Partial<RunTaskOptions> = {}) =>
    runTask('DeployToAKS', {
      timeoutMs: 90_000,
      ...opts,
      inputs: {
        connectionType: 'azureResourceManager',
        azureSubscription: 'arm-conn',
        resourceGroup: 'ml-rg',
        clusterName: 'aks-ml',
        namespace: 'ml',
        createNamespace: 'true',
        name: 'scoring',
        serviceType: 'ClusterIP',
        imageRef: image,
        rolloutTimeoutSeconds: '60',
        ...inputs,
      },
      endpoints: opts.endpoints ?? [armEndpoint()],
      env: { NODE_EXTRA_CA_CERTS: azure.caFile, ...opts.env },
    });

  it("gets the Entra ID cluster's kubeconfig from ARM and an Entra token for the AKS server app instead of running kubelogin (under Node 24)", async () => {
    const run = await deploy({}, { node: 'node24' });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.match(
      run.logLines.join('\n'),
      /AKS ml-rg\/aks-ml at https:\/\/127\.0\.0\.1:\d+ \(Entra ID token of the service connection\)/,
    );
    assert.ok(
      azure.requests.some((r) => r.path.endsWith('/listClusterUserCredential')),
      'the user credential was asked of ARM',
    );
    assert.ok(
      azure.requests.some((r) => r.scope === AKS_SCOPE),
      'a token for the AKS server application was asked for',
    );
    assert.ok(kube.objects('Deployment', 'ml').some((d) => d.metadata.name === 'scoring'));
    assert.equal(run.outputs.Revision, '1');
    assert.equal(run.stderr, '');
  });

  it('uses the admin credentials when asked (a local-accounts cluster)', async () => {
    const run = await deploy({ clusterName: 'aks-local', useClusterAdmin: 'true', namespace: 'ml-admin' });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.ok(azure.requests.some((r) => r.path.endsWith('/aks-local/listClusterAdminCredential')));
    assert.match(run.logLines.join('\n'), /AKS ml-rg\/aks-local .*\(admin credentials\)/);
  });

  it('names the resource group and cluster when ARM does not know the cluster', async () => {
    const run = await deploy({ clusterName: 'aks-missing' });
    assert.equal(run.result, 'Failed', describeRun(run));
    assert.match(
      run.message,
      /Could not get the user credentials of AKS cluster ml-rg\/aks-missing: .*Check the resource group 'ml-rg' and cluster name 'aks-missing'/,
    );
  });

  it('says so when the cluster has local accounts disabled and admin credentials are asked for', async () => {
    const run = await deploy({ useClusterAdmin: 'true' });
    assert.equal(run.result, 'Failed', describeRun(run));
    assert.match(run.message, /admin credentials of AKS cluster ml-rg\/aks-ml: .*disable local accounts/);
  });

  it('fails with a clear message, and prints no secret, when the service principal secret is wrong', async () => {
    const wrong = `wrong-${crypto.randomBytes(12).toString('hex')}`;
    const run = await deploy({}, { endpoints: [armEndpoint(wrong)] });
    assert.equal(run.result, 'Failed', describeRun(run));
    assert.match(run.message, /Could not get an Azure access token .*Invalid client secret/s);
  });
});
