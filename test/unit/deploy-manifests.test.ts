import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

import { loadKubeConfig, needsEntraToken, tokenKubeConfig, withBearerToken } from '../../tasks/DeployToAKS/cluster';
import { dockerConfigJson } from '../../tasks/DeployToAKS/deployer';
import { renderBuiltInManifests } from '../../tasks/DeployToAKS/manifests';
import type { BuiltInSettings } from '../../tasks/DeployToAKS/parameters';
import { directSender } from '../../tasks/DeployToAKS/serviceEndpoint';
import { mismatch, runSmokeTest } from '../../tasks/DeployToAKS/smokeTest';
import { parseManifestText, substituteImage, substituteTokens } from '../../tasks/DeployToAKS/userManifests';
import { annotate, podTemplateOf } from '../../tasks/DeployToAKS/workloads';

const settings = (over: Partial<BuiltInSettings> = {}): BuiltInSettings => ({
  replicas: 3,
  containerPort: 8080,
  servicePort: 80,
  serviceType: 'LoadBalancer',
  resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } },
  env: { LOG_LEVEL: 'info' },
  livenessPath: '/healthz',
  readinessPath: '/readyz',
  serviceAnnotations: {},
  podAnnotations: {},
  ...over,
});
const image = `acr.io/scoring@sha256:${'a'.repeat(64)}`;

describe('built-in manifests', () => {
  it('renders a Deployment and a Service selecting its pods, with probes, resources and env', () => {
    const [service, deployment] = renderBuiltInManifests({
      name: 'scoring',
      namespace: 'ml',
      image,
      settings: settings(),
      progressDeadlineSeconds: 300,
      imagePullSecrets: [],
    }) as any[];
    assert.equal(service.kind, 'Service');
    assert.equal(service.spec.type, 'LoadBalancer');
    const container = deployment.spec.template.spec.containers[0];
    assert.equal(container.image, image);
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    assert.deepEqual(container.resources, { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } });
    assert.deepEqual(container.env, [
      { name: 'PORT', value: '8080' },
      { name: 'LOG_LEVEL', value: 'info' },
    ]);
    assert.equal(deployment.spec.replicas, 3);
    assert.equal(deployment.spec.progressDeadlineSeconds, 300);
    for (const [k, v] of Object.entries(service.spec.selector))
      assert.equal(deployment.spec.template.metadata.labels[k], v);
  });

  it('adds an autoscaler (leaving replicas to it) and a disruption budget when asked', () => {
    const objects = renderBuiltInManifests({
      name: 's',
      namespace: 'ml',
      image,
      settings: settings({
        autoscale: { minReplicas: 2, maxReplicas: 6, targetCpuUtilization: 60 },
        podDisruptionBudget: { minAvailable: '50%' },
      }),
      progressDeadlineSeconds: 600,
      imagePullSecrets: ['reg'],
    }) as any[];
    assert.deepEqual(
      objects.map((o) => o.kind),
      ['Service', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget'],
    );
    assert.equal(objects[1].spec.replicas, undefined);
    assert.deepEqual(objects[1].spec.template.spec.imagePullSecrets, [{ name: 'reg' }]);
    assert.equal(objects[2].spec.metrics[0].resource.target.averageUtilization, 60);
    assert.equal(objects[3].spec.minAvailable, '50%');
  });

  it('annotates objects with the run, and pod templates only with what runs', () => {
    const objects = renderBuiltInManifests({
      name: 's',
      namespace: 'ml',
      image,
      settings: settings(),
      progressDeadlineSeconds: 600,
      imagePullSecrets: [],
    });
    annotate(objects, {
      run: { url: 'https://dev.azure.com/x/_build/results?buildId=1', pipeline: 'ci' },
      model: { name: 'iris', version: '3' },
      image,
    });
    const d = objects[1];
    assert.equal(
      d.metadata.annotations!['model-delivery.io/run-url'],
      'https://dev.azure.com/x/_build/results?buildId=1',
    );
    const template = podTemplateOf(d)!;
    assert.equal(template.metadata!.annotations!['model-delivery.io/model-version'], '3');
    assert.equal(
      template.metadata!.annotations!['model-delivery.io/run-url'],
      undefined,
      're-running a pipeline must not restart pods',
    );
  });
});

describe('user manifests', () => {
  it('replaces $(var) tokens from the inputs, then pipeline variables, and leaves the rest for Kubernetes', () => {
    const r = substituteTokens('a: $(one)\nb: $(Build.BuildId)\nc: $(POD_NAME)', { one: '1' }, (n) =>
      n === 'Build.BuildId' ? '42' : undefined,
    );
    assert.equal(r.text, 'a: 1\nb: 42\nc: $(POD_NAME)');
    assert.deepEqual(r.untouched, ['POD_NAME']);
  });

  it('parses multi-document YAML and Lists, skipping empty documents', () => {
    const docs = parseManifestText(
      'm.yaml',
      '---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: c}\n',
    );
    assert.deepEqual(
      docs.map((d) => [d.object.metadata.name, d.index]),
      [
        ['a', 1],
        ['b', 1],
        ['c', 2],
      ],
    );
  });

  it('names the file, document and line of a YAML error, and objects that are not objects', () => {
    assert.throws(
      () => parseManifestText('m.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [\n'),
      /m\.yaml, document 2: invalid YAML at line 6/,
    );
    assert.throws(() => parseManifestText('m.yaml', '- 1\n- 2\n'), /m\.yaml, document 1: is not a Kubernetes object/);
    assert.throws(() => parseManifestText('m.yaml', 'apiVersion: v1\nmetadata: {name: x}\n'), /has no kind/);
    assert.throws(() => parseManifestText('m.yaml', 'a: 1\na: 2\n'), /m\.yaml, document 1: invalid YAML/);
  });

  it('substitutes by repository in every workload kind, init containers included, ignoring tag and digest', () => {
    const docs = parseManifestText(
      'm.yaml',
      [
        'apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: retrain}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{name: c, image: "acr.io/scoring:nightly"}]',
        'apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec:\n  template:\n    spec:\n      initContainers: [{name: i, image: "acr.io/scoring@sha256:' +
          'b'.repeat(64) +
          '"}]\n      containers: [{name: c, image: "redis:7"}]',
      ].join('\n---\n'),
    );
    const done = substituteImage(docs, image, 'acr.io/scoring');
    assert.deepEqual(
      done.map((d) => `${d.object} ${d.container}`),
      ['CronJob/retrain c', 'StatefulSet/s i (init)'],
    );
    assert.equal((docs[1].object as any).spec.template.spec.containers[0].image, 'redis:7');
  });

  it('matches Docker Hub short names to their full names', () => {
    const docs = parseManifestText(
      'm.yaml',
      'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: "scoring:dev"}]}',
    );
    assert.equal(
      substituteImage(docs, 'docker.io/library/scoring@sha256:' + 'c'.repeat(64), 'docker.io/library/scoring').length,
      1,
    );
  });
});

describe('cluster connection helpers', () => {
  const entra = `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://aks.example:443", certificate-authority-data: "${Buffer.from('ca').toString('base64')}"}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}, {name: y, context: {cluster: c, user: u}}]\ncurrent-context: x\nusers: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: /usr/local/bin/kubelogin, args: [get-token]}}}]\n`;

  it('recognises kubelogin users and swaps them for a bearer token, keeping the cluster', () => {
    const kc = loadKubeConfig(entra, undefined, 'azureSubscription');
    assert.equal(needsEntraToken(kc), true);
    const swapped = withBearerToken(kc, 'tok');
    assert.equal(swapped.getCurrentUser()!.token, 'tok');
    assert.equal(swapped.getCurrentCluster()!.server, 'https://aks.example:443');
    assert.equal(swapped.getCurrentCluster()!.caData, Buffer.from('ca').toString('base64'));
  });

  it('picks a context, and names the ones there are when it is missing', () => {
    assert.equal(loadKubeConfig(entra, 'y', 'k').getCurrentContext(), 'y');
    assert.throws(
      () => loadKubeConfig(entra, 'z', 'kubernetesServiceConnection'),
      /Input 'kubernetesServiceConnection': the kubeconfig has no context 'z'. It has: x, y/,
    );
  });

  it('accepts a service account CA as PEM or as base64', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    assert.equal(
      tokenKubeConfig('https://k:6443', 't', pem, false).getCurrentCluster()!.caData,
      Buffer.from(pem).toString('base64'),
    );
    assert.equal(
      tokenKubeConfig('https://k:6443', 't', Buffer.from(pem).toString('base64'), false).getCurrentCluster()!.caData,
      Buffer.from(pem).toString('base64'),
    );
  });

  it('writes the dockerconfigjson a kubelet reads', () => {
    const json = JSON.parse(dockerConfigJson({ registry: 'acr.io', username: 'u', password: 'p' }));
    assert.deepEqual(json.auths['acr.io'], {
      username: 'u',
      password: 'p',
      auth: Buffer.from('u:p').toString('base64'),
    });
  });
});

describe('smoke test', () => {
  it('compares answers as a subset, numbers within tolerance', () => {
    assert.equal(
      mismatch(
        { outputs: { p: [0.1000001, 0.9], label: [1] }, model: 'x' },
        { outputs: { p: [0.1, 0.9], label: [1] } },
        1e-5,
      ),
      undefined,
    );
    assert.equal(mismatch({ p: [0.2] }, { p: [0.1] }, 1e-5), '$.p[0] is 0.2, expected 0.1 (±0.00001)');
    assert.equal(mismatch({ label: [1, 2] }, { label: [1] }, 0), '$.label has 2 items, expected 1');
    assert.equal(mismatch({}, { label: [1] }, 0), '$.label is missing');
    assert.equal(mismatch({ s: 'a' }, { s: 'b' }, 0), '$.s is "a", expected "b"');
  });

  describe('against a local HTTP server', () => {
    let server: http.Server;
    let url = '';
    let readyAfter = 0;
    let calls = 0;
    before(async () => {
      server = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          if (req.url === '/readyz') return void res.writeHead(++calls > readyAfter ? 200 : 503).end();
          if (req.url === '/score')
            return void res
              .writeHead(200, { 'Content-Type': 'application/json' })
              .end(JSON.stringify({ echo: JSON.parse(body), key: req.headers['api-key'] ?? null }));
          res.writeHead(404).end('no');
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => new Promise<void>((r) => server.close(() => r())));

    it('waits for /readyz, posts the payload with the API key, and checks the answer', async () => {
      readyAfter = 2;
      calls = 0;
      const lines: string[] = [];
      const result = await runSmokeTest(
        directSender(url),
        {
          readyPath: '/readyz',
          scorePath: '/score',
          payload: '{"data":[[1,2,3,4]]}',
          expected: { echo: { data: [[1, 2, 3, 4]] }, key: 'k-123' },
          tolerance: 0,
          apiKey: 'k-123',
        },
        (l) => lines.push(l),
      );
      assert.equal(result.scoreStatus, 200);
      assert.equal(calls, 3, 'two 503s, then 200');
      assert.ok(lines.some((l) => /GET \/readyz: HTTP 503; trying again/.test(l)));
    });

    it('fails on a wrong status, a wrong answer, and a readiness that never comes', async () => {
      readyAfter = 0;
      await assert.rejects(
        runSmokeTest(directSender(url), { readyPath: '/readyz', scorePath: '/nope', payload: '{}', tolerance: 0 }),
        /Smoke test failed: POST \/nope answered HTTP 404: no/,
      );
      await assert.rejects(
        runSmokeTest(directSender(url), {
          readyPath: '/readyz',
          scorePath: '/score',
          payload: '{"a":1}',
          expected: { echo: { a: 2 } },
          tolerance: 0,
        }),
        /\$\.echo\.a is 1, expected 2/,
      );
      readyAfter = 1_000_000;
      await assert.rejects(
        runSmokeTest(directSender(url), {
          readyPath: '/readyz',
          scorePath: '/score',
          tolerance: 0,
          readyWithinMs: 300,
        }),
        /GET \/readyz did not answer 200 within 0 s \(last: HTTP 503/,
      );
    });
  });
});
