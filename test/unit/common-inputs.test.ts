import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { makeTempDir, repoRoot } from '../support/paths';
import { agentEnvironment, assertNoSecretsLeaked, parseTaskOutput, type RunTaskOptions } from '../support/taskRunner';

type Outcome = { value?: unknown; error?: string; name?: string };

/** Calls common functions in a child process set up like an agent's, and returns each outcome. */
function probe(
  opts: RunTaskOptions,
  calls: Array<{ fn: string; args: unknown[] }>,
): { outcomes: Outcome[]; stdout: string } {
  const temp = makeTempDir('probe-');
  try {
    const stdout = execFileSync(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, 'fixtures', 'commonProbe.ts'), JSON.stringify(calls)],
      { env: agentEnvironment(opts, temp), cwd: repoRoot, encoding: 'utf8' },
    );
    const outcomes = stdout
      .split('\n')
      .filter((l) => l.startsWith('RESULT '))
      .map((l) => JSON.parse(l.slice(7)) as Outcome);
    return { outcomes, stdout };
  } finally {
    fs.rmSync(temp, { recursive: true, force: true });
  }
}

/** The probe prints the values it got back as RESULT lines; only the library's own output counts. */
const taskOutputOf = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => !l.startsWith('RESULT '))
    .join('\n');

describe('common: typed input readers', function () {
  this.timeout(30_000);

  it('reads required, enum, boolean, integer, size, list and map inputs', () => {
    const { outcomes } = probe(
      {
        inputs: {
          name: ' churn ',
          mode: 'SEMVER',
          flag: 'yes',
          count: '8',
          size: '4MiB',
          list: 'a\n# comment\nb, c\n\n',
          map: 'stage=prod\nteam = ml',
        },
      },
      [
        { fn: 'requiredString', args: ['name'] },
        { fn: 'enumInput', args: ['mode', ['latest', 'semver']] },
        { fn: 'booleanInput', args: ['flag'] },
        { fn: 'integerInput', args: ['count', { min: 1, max: 64 }] },
        { fn: 'byteSizeInput', args: ['size', { fallback: 1 }] },
        { fn: 'listInput', args: ['list'] },
        { fn: 'mapInput', args: ['map'] },
        { fn: 'optionalString', args: ['absent'] },
        { fn: 'integerInput', args: ['absent', { fallback: 3 }] },
      ],
    );
    assert.deepEqual(
      outcomes.map((o) => o.value),
      ['churn', 'semver', true, 8, 4 * 1024 * 1024, ['a', 'b', 'c'], { stage: 'prod', team: 'ml' }, null, 3],
    );
  });

  it('names the input and says what to fix when a value is wrong', () => {
    const { outcomes } = probe(
      {
        inputs: {
          mode: 'newest',
          flag: 'maybe',
          count: '100',
          size: 'lots',
          map: 'novalue\n',
          dup: 'a=1\na=2',
          path: '/no/such/path',
        },
      },
      [
        { fn: 'requiredString', args: ['missing'] },
        { fn: 'enumInput', args: ['mode', ['latest', 'semver']] },
        { fn: 'booleanInput', args: ['flag'] },
        { fn: 'integerInput', args: ['count', { min: 1, max: 64 }] },
        { fn: 'byteSizeInput', args: ['size', { fallback: 1 }] },
        { fn: 'mapInput', args: ['map'] },
        { fn: 'mapInput', args: ['dup'] },
        { fn: 'existingPath', args: ['path'] },
      ],
    );
    const errors = outcomes.map((o) => o.error);
    assert.deepEqual(
      outcomes.map((o) => o.name),
      Array(8).fill('InputError'),
    );
    assert.match(errors[0]!, /^Input required: missing\./);
    assert.match(errors[1]!, /Input 'mode': 'newest' is not a valid value\. Use one of: latest, semver\./);
    assert.match(errors[2]!, /Input 'flag': 'maybe' is not a boolean/);
    assert.match(errors[3]!, /Input 'count': 100 is out of range; give a number between 1 and 64/);
    assert.match(errors[4]!, /Input 'size': 'lots' is not a size/);
    assert.match(errors[5]!, /Input 'map': 'novalue' is not key=value/);
    assert.match(errors[6]!, /Input 'dup': key 'a' is given twice/);
    assert.match(errors[7]!, /Input 'path': '\/no\/such\/path' does not exist on the agent/);
  });

  it('reads a secret input without echoing it, and registers it with the agent', () => {
    const sas = 'sv=2024-11-04&ss=b&sig=SENTINELsas0123456789abcdef%3D';
    const { outcomes, stdout } = probe({ inputs: { sas }, variables: { 'System.Debug': 'true' } }, [
      { fn: 'secretString', args: ['sas'] },
    ]);
    assert.equal(outcomes[0].value, sas);
    const run = parseTaskOutput(taskOutputOf(stdout), '', 0);
    assert.ok(run.secrets.includes(sas), 'registered with task.setsecret');
    assertNoSecretsLeaked(run, [sas]);
  });
});

describe('common: service connections', function () {
  this.timeout(30_000);
  const spnKey = 'SENTINEL-spn-key-4f9a1c0e7b';
  const registryPassword = 'SENTINEL-registry-password-77';
  const kubeToken = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.SENTINELsignature';

  it('turns each Azure RM scheme into a credential for the connection cloud, never printing the key', () => {
    const { outcomes, stdout } = probe(
      {
        variables: { 'System.Debug': 'true' },
        endpoints: [
          {
            id: 'spn',
            url: 'https://management.chinacloudapi.cn/',
            scheme: 'ServicePrincipal',
            auth: {
              serviceprincipalid: 'app-id',
              serviceprincipalkey: spnKey,
              tenantid: 'tenant-1',
              authenticationType: 'spnKey',
            },
            data: { subscriptionId: 'sub-1', environment: 'AzureChinaCloud' },
          },
          {
            id: 'wif',
            url: 'https://management.azure.com/',
            scheme: 'WorkloadIdentityFederation',
            auth: { serviceprincipalid: 'app-id', tenantid: 'tenant-2' },
            data: { subscriptionId: 'sub-2' },
          },
          {
            id: 'msi',
            url: 'https://management.azure.com/',
            scheme: 'ManagedServiceIdentity',
            auth: { tenantid: 'tenant-3' },
          },
          { id: 'odd', scheme: 'UsernamePassword', auth: {} },
        ],
      },
      [
        { fn: 'azureConnection', args: ['azureSubscription', 'spn'] },
        { fn: 'azureConnection', args: ['azureSubscription', 'wif'] },
        { fn: 'azureConnection', args: ['azureSubscription', 'msi'] },
        { fn: 'azureConnection', args: ['azureSubscription', 'odd'] },
        { fn: 'azureConnection', args: ['azureSubscription', 'missing'] },
      ],
    );
    assert.deepEqual(outcomes[0].value, {
      scheme: 'ServicePrincipal',
      tenantId: 'tenant-1',
      subscriptionId: 'sub-1',
      authorityHost: 'https://login.chinacloudapi.cn',
      resourceManagerUrl: 'https://management.chinacloudapi.cn/',
      storageSuffix: 'core.chinacloudapi.cn',
      credential: 'SecretRegisteringCredential',
    });
    assert.equal((outcomes[1].value as { scheme: string }).scheme, 'WorkloadIdentityFederation');
    assert.equal((outcomes[1].value as { authorityHost: string }).authorityHost, 'https://login.microsoftonline.com');
    assert.equal((outcomes[2].value as { scheme: string }).scheme, 'ManagedServiceIdentity');
    assert.match(
      outcomes[3].error!,
      /Input 'azureSubscription': service connection 'odd' uses the authentication scheme 'UsernamePassword'/,
    );
    assert.match(outcomes[4].error!, /Input 'azureSubscription': service connection 'missing' was not found/);
    assertNoSecretsLeaked(parseTaskOutput(stdout, '', 0), [spnKey]);
  });

  it('reads Docker registry and Kubernetes connections, never printing the password, kubeconfig or token', () => {
    const kubeconfig = `apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: ${kubeToken}\n`;
    const { outcomes, stdout } = probe(
      {
        variables: { 'System.Debug': 'true' },
        endpoints: [
          {
            id: 'reg',
            url: 'https://contoso.azurecr.io/',
            scheme: 'UsernamePassword',
            auth: { registry: 'https://contoso.azurecr.io/', username: 'pusher', password: registryPassword },
          },
          {
            id: 'hub',
            url: 'https://index.docker.io/v1/',
            scheme: 'UsernamePassword',
            auth: { registry: 'https://index.docker.io/v1/', username: 'me', password: registryPassword },
          },
          {
            id: 'kc',
            url: 'https://aks.example:443',
            scheme: 'Kubernetes',
            auth: { kubeconfig },
            data: { authorizationType: 'Kubeconfig', clusterContext: 'prod' },
          },
          {
            id: 'sa',
            url: 'https://aks.example:443',
            scheme: 'Token',
            auth: { apiToken: Buffer.from(kubeToken).toString('base64'), serviceAccountCertificate: 'Q0EK' },
            data: { authorizationType: 'ServiceAccount' },
          },
        ],
      },
      [
        { fn: 'registryConnection', args: ['dockerRegistryServiceConnection', 'reg'] },
        { fn: 'registryConnection', args: ['dockerRegistryServiceConnection', 'hub'] },
        { fn: 'kubernetesConnection', args: ['kubernetesServiceConnection', 'kc'] },
        { fn: 'kubernetesConnection', args: ['kubernetesServiceConnection', 'sa'] },
      ],
    );
    assert.deepEqual(outcomes[0].value, {
      id: 'reg',
      registry: 'contoso.azurecr.io',
      username: 'pusher',
      password: registryPassword,
      insecure: false,
    });
    assert.equal((outcomes[1].value as { registry: string }).registry, 'registry-1.docker.io');
    assert.ok(outcomes[2].value, JSON.stringify(outcomes[2]));
    assert.deepEqual(outcomes[2].value, {
      id: 'kc',
      kind: 'kubeconfig',
      kubeconfig,
      context: 'prod',
      skipTlsVerify: false,
    });
    assert.deepEqual(outcomes[3].value, {
      id: 'sa',
      kind: 'serviceAccount',
      server: 'https://aks.example:443',
      token: kubeToken,
      caData: 'Q0EK',
      skipTlsVerify: false,
    });
    assertNoSecretsLeaked(parseTaskOutput(taskOutputOf(stdout), '', 0), [
      registryPassword,
      kubeToken,
      kubeconfig.trim(),
    ]);
  });
});
