/**
 * DeployToAKS, bundled and run as the agent runs it, against the Kubernetes API test server:
 * deploys, updates, every failure outcome with diagnosis and rollback, canaries, user manifests,
 * image pull secrets, smoke tests, and the bad inputs users make.
 */
import * as assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

import { bundleTasks } from '../support/bundle';
import { type KubeTestServer, startKubeTestServer } from '../support/kube';
import { makeTempDir, repoRoot } from '../support/paths';
import { freePort } from '../support/ports';
import { describeRun, runTask, type RunTaskOptions, type TaskRun } from '../support/taskRunner';

const digestOf = (seed: string) => `sha256:${crypto.createHash('sha256').update(seed).digest('hex')}`;
const imageOf = (seed: string, repo = 'scoringacr.azurecr.io/models/scoring') => `${repo}@${digestOf(seed)}`;

type KubeObj = {
  metadata: { name: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec?: any;
  status?: any;
  data?: any;
  type?: string;
};

describe('DeployToAKS (bundled) against the Kubernetes API test server', function () {
  this.timeout(120_000);
  let kube: KubeTestServer;
  let namespaceCounter = 0;

  before(async () => {
    bundleTasks('DeployToAKS');
    kube = await startKubeTestServer({ tickMs: 20 });
  });

  after(async () => {
    await kube?.stop();
  });

  /** Each test deploys into its own namespace, so they cannot see each other's objects. */
  const freshNamespace = () => `t${++namespaceCounter}-${crypto.randomBytes(3).toString('hex')}`;

  const kubeEndpoint = (): NonNullable<RunTaskOptions['endpoints']>[number] => ({
    id: 'kube-conn',
    scheme: 'Kubernetes',
    url: kube.url,
    auth: { kubeconfig: kube.kubeconfig },
    data: { authorizationType: 'Kubeconfig', acceptUntrustedCerts: 'false' },
  });

  function deploy(
    namespace: string,
    inputs: RunTaskOptions['inputs'],
    opts: Partial<RunTaskOptions> = {},
  ): Promise<TaskRun> {
    return runTask('DeployToAKS', {
      timeoutMs: 90_000,
      ...opts,
      inputs: {
        connectionType: 'kubernetesServiceConnection',
        kubernetesServiceConnection: 'kube-conn',
        namespace,
        createNamespace: 'true',
        name: 'scoring',
        serviceType: 'ClusterIP',
        replicas: '2',
        rolloutTimeoutSeconds: '60',
        ...inputs,
      },
      endpoints: [kubeEndpoint(), ...(opts.endpoints ?? [])],
    });
  }

  const deployment = (ns: string, name = 'scoring') =>
    kube.objects('Deployment', ns).find((d) => d.metadata.name === name) as KubeObj | undefined;
  const imageIn = (d: KubeObj | undefined) => d?.spec.template.spec.containers[0].image as string | undefined;
  const requestsSince = (mark: number) => kube.requests.slice(mark);

  describe('rolling deploys', () => {
    const ns = freshNamespace();
    const first = imageOf('v1');
    const second = imageOf('v2');

    it('deploys a first time: Deployment and Service applied server-side, rollout watched to completion, outputs set', async () => {
      const mark = kube.requests.length;
      const run = await deploy(ns, {
        imageRef: first,
        modelName: 'iris',
        modelVersion: '3',
        modelSha256: 'ab'.repeat(32),
      });
      assert.equal(run.result, 'Succeeded', describeRun(run));
      const d = deployment(ns)!;
      assert.equal(imageIn(d), first);
      assert.equal(d.metadata.annotations!['deployment.kubernetes.io/revision'], '1');
      assert.equal(d.spec.template.metadata.annotations['model-delivery.io/model-name'], 'iris');
      assert.equal(d.spec.template.metadata.annotations['model-delivery.io/model-sha256'], 'ab'.repeat(32));
      assert.match(d.metadata.annotations!['model-delivery.io/run-url'], /_build\/results\?buildId=42$/);
      assert.equal(d.status.updatedReplicas, 2);
      assert.equal(d.status.availableReplicas, 2);
      assert.ok(kube.objects('Service', ns).some((s) => s.metadata.name === 'scoring'));
      assert.equal(run.outputs.DeployedImage, first);
      assert.equal(run.outputs.Revision, '1');
      assert.equal(run.outputs.ServiceEndpoint, `http://scoring.${ns}.svc.cluster.local`);
      const applies = requestsSince(mark).filter(
        (r) => r.method === 'PATCH' && r.contentType === 'application/apply-patch+yaml',
      );
      assert.equal(applies.length, 3, 'namespace, service and deployment applied');
      assert.ok(applies.every((r) => r.query.fieldManager === 'model-delivery' && r.query.force === undefined));
      assert.ok(
        requestsSince(mark).some((r) => r.query.watch === 'true' && /deployments$/.test(r.path)),
        'the rollout is watched, not polled',
      );
      assert.match(run.summaries[0] ?? '', /Revision[^\n]*\(new\) → 1/);
    });

    it('updates to a new digest: revision 2, the old image in the summary', async () => {
      const run = await deploy(ns, { imageRef: second });
      assert.equal(run.result, 'Succeeded', describeRun(run));
      assert.equal(imageIn(deployment(ns)), second);
      assert.equal(run.outputs.Revision, '2');
      assert.equal(run.outputs.DeployedImage, second);
      assert.ok(run.summaries[0].includes(first) && run.summaries[0].includes(second), run.summaries[0]);
      assert.ok(
        kube.objects('Pod', ns).every((p) => (p as KubeObj).spec.containers[0].image === second),
        'no old pods left',
      );
    });
  });

  describe('server-side apply conflicts', () => {
    it('names the other field manager on a conflict, and takes the fields over only with forceConflicts', async () => {
      const ns = freshNamespace();
      const image = imageOf(`conflict-${ns}`);
      assert.equal((await deploy(ns, { imageRef: image, replicas: '2' })).result, 'Succeeded');
      // Someone scales by hand with their own server-side apply: they now own spec.replicas.
      const body = JSON.stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'scoring', namespace: ns },
        spec: { replicas: 5 },
      });
      const status = await new Promise<number>((resolve, reject) => {
        const req = https.request(
          `${kube.url}/apis/apps/v1/namespaces/${ns}/deployments/scoring?fieldManager=ops-team&force=true`,
          {
            method: 'PATCH',
            ca: kube.caPem,
            headers: { Authorization: `Bearer ${kube.token}`, 'Content-Type': 'application/apply-patch+yaml' },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
      assert.equal(status, 200, 'applied as ops-team');
      const refused = await deploy(ns, { imageRef: image, replicas: '2' });
      assert.equal(refused.result, 'Failed', describeRun(refused));
      assert.match(
        refused.message,
        /Deployment .*scoring .*fields are owned by another field manager: .*ops-team.*set forceConflicts: true/s,
      );
      const forced = await deploy(ns, { imageRef: image, replicas: '2', forceConflicts: 'true' });
      assert.equal(forced.result, 'Succeeded', describeRun(forced));
      assert.equal(deployment(ns)!.spec.replicas, 2);
    });
  });

  describe('failed rollouts are diagnosed, rolled back, and fail the task', () => {
    const cases: Array<{
      title: string;
      outcome: Parameters<KubeTestServer['setImageOutcome']>[1];
      expect: RegExp;
      log?: RegExp;
      inputs?: RunTaskOptions['inputs'];
    }> = [
      { title: 'ImagePullBackOff', outcome: { imagePullBackOff: true }, expect: /ImagePullBackOff/ },
      {
        title: 'CrashLoopBackOff, with the last log lines',
        outcome: {
          crashLoop: { logs: ['loading model /models/model.onnx', 'Error: model input has 5 features, expected 4'] },
        },
        expect: /CrashLoopBackOff/,
        log: /\| Error: model input has 5 features, expected 4/,
      },
      { title: 'OOMKilled', outcome: { oomKilled: true }, expect: /OOMKilled/ },
      {
        title: 'Unschedulable (waited on until the progress deadline)',
        outcome: { unschedulable: true },
        expect: /exceeded its progress deadline/,
        log: /Unschedulable/,
        inputs: { progressDeadlineSeconds: '15' },
      },
      {
        title: 'readiness never passing (until the rollout timeout)',
        outcome: { neverReady: true },
        expect: /did not finish within 10 s/,
        log: /ReadinessFailing|not ready/,
        inputs: { rolloutTimeoutSeconds: '10', progressDeadlineSeconds: '600' },
      },
    ];
    for (const c of cases) {
      it(c.title, async () => {
        const ns = freshNamespace();
        const good = imageOf(`good-${ns}`);
        const bad = imageOf(`bad-${ns}`);
        kube.setImageOutcome(bad, c.outcome);
        const ok = await deploy(ns, { imageRef: good });
        assert.equal(ok.result, 'Succeeded', describeRun(ok));
        const run = await deploy(ns, { imageRef: bad, ...c.inputs });
        assert.equal(run.result, 'Failed', describeRun(run));
        assert.match(run.message, c.expect, describeRun(run));
        assert.match(run.message, /Rolled back to revision 1\./, describeRun(run));
        if (c.log) assert.match(run.logLines.join('\n'), c.log, describeRun(run));
        const d = deployment(ns)!;
        assert.equal(imageIn(d), good, 'the previous template is back');
        assert.equal(
          d.metadata.annotations!['deployment.kubernetes.io/revision'],
          '3',
          'the rollback is a new revision, as with kubectl rollout undo',
        );
        assert.equal(run.outputs.DeployedImage, good);
        assert.equal(run.outputs.Revision, '3');
        assert.match(run.summaries[0], /Pod problems/);
        // The next deploy must not meet a field-manager conflict from the rollback.
        const again = await deploy(ns, { imageRef: imageOf(`next-${ns}`) });
        assert.equal(again.result, 'Succeeded', describeRun(again));
      });
    }

    it('fails a first deployment without deleting anything: nothing to roll back to', async () => {
      const ns = freshNamespace();
      const bad = imageOf(`first-bad-${ns}`);
      kube.setImageOutcome(bad, { imagePullBackOff: true });
      const run = await deploy(ns, { imageRef: bad });
      assert.equal(run.result, 'Failed', describeRun(run));
      assert.match(
        run.message,
        /ImagePullBackOff.*No rollback: nothing to roll back to: this was the first deployment/s,
      );
      assert.ok(deployment(ns), 'the Deployment is left for inspection');
    });

    it('leaves the failed revision in place when rollbackOnFailure is false', async () => {
      const ns = freshNamespace();
      const good = imageOf(`good-${ns}`);
      const bad = imageOf(`bad-${ns}`);
      kube.setImageOutcome(bad, { crashLoop: { logs: ['boom'] } });
      assert.equal((await deploy(ns, { imageRef: good })).result, 'Succeeded');
      const run = await deploy(ns, { imageRef: bad, rollbackOnFailure: 'false' });
      assert.equal(run.result, 'Failed', describeRun(run));
      assert.match(run.message, /automatic rollback is off/);
      assert.equal(imageIn(deployment(ns)), bad);
    });
  });

  describe('canary', () => {
    const ns = freshNamespace();
    const stable = imageOf(`stable-${ns}`);
    const candidate = imageOf(`candidate-${ns}`);

    it('deploys a canary beside the stable Deployment, behind the same Service, with a share of its replicas', async () => {
      assert.equal((await deploy(ns, { imageRef: stable, replicas: '4' })).result, 'Succeeded');
      const run = await deploy(ns, { imageRef: candidate, replicas: '4', strategy: 'canary', canaryPercentage: '25' });
      assert.equal(run.result, 'Succeeded', describeRun(run));
      const canary = deployment(ns, 'scoring-canary')!;
      assert.equal(imageIn(canary), candidate);
      assert.equal(canary.spec.replicas, 1);
      assert.equal(canary.spec.template.metadata.labels['model-delivery.io/track'], 'canary');
      assert.equal(imageIn(deployment(ns)), stable, 'the stable Deployment is untouched');
      const service = kube.objects('Service', ns).find((s) => s.metadata.name === 'scoring') as KubeObj;
      const selector = service.spec.selector as Record<string, string>;
      for (const [k, v] of Object.entries(selector))
        assert.equal(canary.spec.template.metadata.labels[k], v, 'the Service selects canary pods too');
      assert.equal(run.outputs.DeployedImage, candidate);
    });

    it('promotes: the stable Deployment rolls to the canary image and the canary is deleted', async () => {
      const run = await deploy(ns, { action: 'promote', imageRef: '$(ImageRef)', replicas: '4' });
      assert.equal(run.result, 'Succeeded', describeRun(run));
      assert.equal(imageIn(deployment(ns)), candidate);
      assert.equal(deployment(ns, 'scoring-canary'), undefined);
      assert.equal(run.outputs.DeployedImage, candidate);
      assert.equal(run.outputs.Revision, '2');
    });

    it('rejects: the canary is deleted, the stable Deployment keeps serving', async () => {
      const rejected = imageOf(`rejected-${ns}`);
      assert.equal((await deploy(ns, { imageRef: rejected, replicas: '4', strategy: 'canary' })).result, 'Succeeded');
      assert.ok(deployment(ns, 'scoring-canary'));
      const run = await deploy(ns, { action: 'reject', imageRef: '', replicas: '4' });
      assert.equal(run.result, 'Succeeded', describeRun(run));
      assert.equal(deployment(ns, 'scoring-canary'), undefined);
      assert.equal(imageIn(deployment(ns)), candidate);
      assert.match(run.message, /Rejected the canary/);
    });

    it('a failing canary is deleted and the task fails; the stable Deployment is untouched', async () => {
      const broken = imageOf(`broken-canary-${ns}`);
      kube.setImageOutcome(broken, { crashLoop: { logs: ['panic: no model'] } });
      const run = await deploy(ns, { imageRef: broken, replicas: '4', strategy: 'canary' });
      assert.equal(run.result, 'Failed', describeRun(run));
      assert.match(
        run.message,
        /canary deployment "scoring-canary" failed: .*CrashLoopBackOff.*The canary was deleted/s,
      );
      assert.equal(deployment(ns, 'scoring-canary'), undefined);
      assert.equal(imageIn(deployment(ns)), candidate);
    });

    it('promote with no canary fails and says so', async () => {
      const run = await deploy(ns, { action: 'promote', replicas: '4' });
      assert.equal(run.result, 'Failed', describeRun(run));
      assert.match(run.message, /no canary deployment "scoring-canary" .* to promote/);
    });
  });

  describe('user manifests', () => {
    let dir: string;
    before(() => {
      dir = makeTempDir('deploy-manifests-');
      fs.mkdirSync(path.join(dir, 'k8s'));
      fs.writeFileSync(
        path.join(dir, 'k8s', 'app.yaml'),
        [
          '# the scoring service',
          'apiVersion: v1',
          'kind: ConfigMap',
          'metadata:',
          '  name: scoring-config',
          'data:',
          '  LOG_LEVEL: $(logLevel)',
          '---',
          'apiVersion: apps/v1',
          'kind: Deployment',
          'metadata:',
          '  name: scorer',
          '  labels: {app: scorer}',
          'spec:',
          '  replicas: $(replicaCount)',
          '  selector: {matchLabels: {app: scorer}}',
          '  template:',
          '    metadata: {labels: {app: scorer}}',
          '    spec:',
          '      initContainers:',
          '        - name: warm-cache',
          '          image: scoringacr.azurecr.io/models/scoring:dev',
          '          command: [node, warm.js]',
          '      containers:',
          '        - name: app',
          '          image: scoringacr.azurecr.io/models/scoring:latest',
          '          env:',
          '            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}',
          '            - {name: GREETING, value: "pod $(POD_NAME)"}',
          '        - name: proxy',
          '          image: docker.io/envoyproxy/envoy:v1.31.0',
          '',
        ].join('\n'),
      );
      fs.writeFileSync(
        path.join(dir, 'k8s', 'service.yml'),
        'apiVersion: v1\nkind: Service\nmetadata:\n  name: scorer\nspec:\n  selector: {app: scorer}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n',
      );
    });

    it('applies every document, with the image replaced in containers and init containers, and $(var) tokens replaced', async () => {
      const ns = freshNamespace();
      const image = imageOf(`user-${ns}`);
      const run = await deploy(
        ns,
        {
          manifestSource: 'files',
          manifests: 'k8s/*.yaml\nk8s/service.yml',
          name: '',
          imageRef: image,
          manifestVariables: 'replicaCount=3',
        },
        { cwd: dir, variables: { logLevel: 'debug' } },
      );
      assert.equal(run.result, 'Succeeded', describeRun(run));
      const d = deployment(ns, 'scorer')!;
      assert.equal(d.spec.replicas, 3);
      assert.equal(d.spec.template.spec.initContainers[0].image, image);
      assert.equal(d.spec.template.spec.containers[0].image, image);
      assert.equal(
        d.spec.template.spec.containers[1].image,
        'docker.io/envoyproxy/envoy:v1.31.0',
        'other images are left alone',
      );
      assert.equal(
        d.spec.template.spec.containers[0].env[1].value,
        'pod $(POD_NAME)',
        'Kubernetes expands $(POD_NAME) itself',
      );
      const cm = kube.objects('ConfigMap', ns).find((c) => c.metadata.name === 'scoring-config') as KubeObj;
      assert.equal(cm.data.LOG_LEVEL, 'debug', 'pipeline variables fill tokens the input does not');
      assert.ok(kube.objects('Service', ns).some((x) => x.metadata.name === 'scorer'));
      assert.equal(run.outputs.DeployedImage, image);
      assert.equal(run.outputs.ServiceEndpoint, `http://scorer.${ns}.svc.cluster.local`);
      assert.match(run.logLines.join('\n'), /Left for Kubernetes to expand[^\n]*\$\(POD_NAME\)/);
    });

    const bad: Array<{
      title: string;
      file: string;
      text?: string;
      inputs?: RunTaskOptions['inputs'];
      expect: RegExp;
    }> = [
      {
        title: 'invalid YAML names the file, document and line',
        file: 'broken.yaml',
        text: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: b\n   bad: indent\n',
        expect: /broken\.yaml, document 2: invalid YAML at line 9/,
      },
      {
        title: 'an unknown kind names the file and document',
        file: 'unknown.yaml',
        text: 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: s}\nspec:\n  selector: {matchLabels: {app: s}}\n  template:\n    metadata: {labels: {app: s}}\n    spec: {containers: [{name: c, image: scoringacr.azurecr.io/models/scoring}]}\n---\napiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: scorer}\n',
        expect: /unknown\.yaml, document 2: unknown kind Deploymnet \(apps\/v1\)/,
      },
      {
        title: 'an object without a name',
        file: 'noname.yaml',
        text: 'apiVersion: v1\nkind: Service\nmetadata:\n  generateName: scorer-\nspec: {}\n',
        expect: /noname\.yaml, document 1: the Service has no metadata\.name/,
      },
      {
        title: 'an image that matches no container',
        file: 'other.yaml',
        text: 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: other}\nspec:\n  selector: {matchLabels: {app: o}}\n  template:\n    metadata: {labels: {app: o}}\n    spec: {containers: [{name: c, image: nginx:1.27}]}\n',
        expect: /matches no container in the manifests .*Their containers use: nginx:1\.27/,
      },
      {
        title: 'a glob that matches no file',
        file: 'unused.yaml',
        text: 'x: 1\n',
        inputs: { manifests: 'deploy/*.yaml' },
        expect: /Input 'manifests': 'deploy\/\*\.yaml' matches no file/,
      },
      {
        title: 'an image reference that is not one',
        file: 'unused2.yaml',
        text: 'x: 1\n',
        inputs: { imageRef: 'https://scoringacr.azurecr.io/scoring' },
        expect: /Input 'imageRef': leave out the URL scheme/,
      },
    ];
    for (const c of bad) {
      it(`refuses ${c.title}, applying nothing`, async () => {
        const ns = freshNamespace();
        const badDir = makeTempDir('deploy-bad-');
        fs.writeFileSync(path.join(badDir, c.file), c.text ?? '');
        const mark = kube.requests.length;
        const run = await deploy(
          ns,
          { manifestSource: 'files', manifests: c.file, name: '', imageRef: imageOf('x'), ...c.inputs },
          { cwd: badDir },
        );
        assert.equal(run.result, 'Failed', describeRun(run));
        assert.match(run.message, c.expect, describeRun(run));
        assert.equal(requestsSince(mark).filter((r) => r.method !== 'GET').length, 0, 'nothing written to the cluster');
        fs.rmSync(badDir, { recursive: true, force: true });
      });
    }

    it('refuses bad built-in inputs with the input named', async () => {
      const run = await deploy(freshNamespace(), { imageRef: imageOf('x'), memoryLimit: '1 gig' });
      assert.equal(run.result, 'Failed');
      assert.match(run.message, /^Input 'memoryLimit': '1 gig' is not a Kubernetes quantity/);
    });
  });

  describe('image pull secret', () => {
    it('creates, then updates, a dockerconfigjson secret from a registry connection and puts it on the pods; the password never prints', async () => {
      const ns = freshNamespace();
      const password = `pw-${crypto.randomBytes(12).toString('hex')}`;
      const registry = (pw: string) => ({
        id: 'acr-conn',
        scheme: 'UsernamePassword',
        url: 'https://scoringacr.azurecr.io',
        auth: { username: 'puller', password: pw, registry: 'https://scoringacr.azurecr.io' },
      });
      const run = await deploy(
        ns,
        { imageRef: imageOf(`pull-${ns}`), imagePullSecretConnection: 'acr-conn' },
        { endpoints: [registry(password)] },
      );
      assert.equal(run.result, 'Succeeded', describeRun(run));
      const secretOf = () => kube.objects('Secret', ns).find((x) => x.metadata.name === 'scoring-registry') as KubeObj;
      assert.equal(secretOf().type, 'kubernetes.io/dockerconfigjson');
      const config = JSON.parse(Buffer.from(secretOf().data['.dockerconfigjson'], 'base64').toString());
      assert.equal(config.auths['scoringacr.azurecr.io'].password, password);
      assert.deepEqual(deployment(ns)!.spec.template.spec.imagePullSecrets, [{ name: 'scoring-registry' }]);
      const authB64 = Buffer.from(`puller:${password}`).toString('base64');
      const printed = [...run.logLines, ...run.summaries, run.stderr].join('\n');
      assert.ok(
        !printed.includes(authB64) && !printed.includes(password),
        'neither the password nor the auth string prints',
      );
      assert.ok(run.secrets.includes(authB64), 'the auth string is registered as a secret, so the agent masks it too');

      const rotated = `pw-${crypto.randomBytes(12).toString('hex')}`;
      const again = await deploy(
        ns,
        { imageRef: imageOf(`pull-${ns}`), imagePullSecretConnection: 'acr-conn' },
        { endpoints: [registry(rotated)] },
      );
      assert.equal(again.result, 'Succeeded', describeRun(again));
      const updated = JSON.parse(Buffer.from(secretOf().data['.dockerconfigjson'], 'base64').toString());
      assert.equal(updated.auths['scoringacr.azurecr.io'].password, rotated);
    });
  });

  describe('smoke test', () => {
    /** A tiny scoring service of our own, so the smoke-test logic is always covered. */
    let tiny: http.Server;
    let tinyUrl: string;
    const seen: Array<{ method?: string; url?: string; apiKey?: string; body: string }> = [];
    let answer = { probabilities: [[0.1, 0.2, 0.7]], label: [2] };
    before(async () => {
      tiny = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          seen.push({ method: req.method, url: req.url, apiKey: req.headers['api-key'] as string | undefined, body });
          if (req.url === '/readyz') return void res.writeHead(200).end('ok');
          if (req.url === '/score' && req.method === 'POST')
            return void res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(answer));
          res.writeHead(404).end();
        });
      });
      await new Promise<void>((r) => tiny.listen(0, '127.0.0.1', () => r()));
      tinyUrl = `http://127.0.0.1:${(tiny.address() as AddressInfo).port}`;
    });
    after(() => new Promise<void>((r) => tiny.close(() => r())));

    const smokeInputs = {
      smokeTest: 'true',
      smokeTestPayload: '{"data": [[5.1, 3.5, 1.4, 0.2]]}',
      smokeTestExpected: '{"label": [2], "probabilities": [[0.1, 0.2, 0.7]]}',
    };

    it('passes through the API server service proxy for a ClusterIP service, with the API key header', async () => {
      const ns = freshNamespace();
      kube.setServiceBackend(ns, 'scoring', tinyUrl);
      const apiKey = `key-${crypto.randomBytes(10).toString('hex')}`;
      seen.length = 0;
      const run = await deploy(ns, { imageRef: imageOf(`smoke-${ns}`), ...smokeInputs, smokeTestApiKey: apiKey });
      assert.equal(run.result, 'Succeeded', describeRun(run));
      assert.ok(seen.some((r) => r.url === '/readyz'));
      const score = seen.find((r) => r.url === '/score')!;
      assert.deepEqual(JSON.parse(score.body), { data: [[5.1, 3.5, 1.4, 0.2]] });
      assert.equal(score.apiKey, apiKey);
      assert.ok(!run.logLines.join('\n').includes(apiKey), 'the API key never prints');
      assert.match(run.summaries[0], /\*\*Smoke test\*\* \| passed via API server service proxy/);
    });

    it('passes through the load balancer address of a LoadBalancer service; ServiceEndpoint is that address', async () => {
      const ns = freshNamespace();
      const port = Number(new URL(tinyUrl).port);
      seen.length = 0;
      const run = await deploy(ns, {
        imageRef: imageOf(`lb-${ns}`),
        serviceType: 'LoadBalancer',
        servicePort: String(port),
        ...smokeInputs,
        smokeTestRoute: 'loadBalancer',
      });
      assert.equal(run.result, 'Succeeded', describeRun(run));
      assert.equal(run.outputs.ServiceEndpoint, `http://127.0.0.1:${port}`);
      assert.ok(seen.some((r) => r.url === '/score'));
    });

    it('fails on an unexpected answer and rolls back to the previous revision', async () => {
      const ns = freshNamespace();
      kube.setServiceBackend(ns, 'scoring', tinyUrl);
      const good = imageOf(`smoke-good-${ns}`);
      assert.equal((await deploy(ns, { imageRef: good, ...smokeInputs })).result, 'Succeeded');
      answer = { probabilities: [[0.7, 0.2, 0.1]], label: [0] };
      try {
        const run = await deploy(ns, { imageRef: imageOf(`smoke-bad-${ns}`), ...smokeInputs });
        assert.equal(run.result, 'Failed', describeRun(run));
        assert.match(
          run.message,
          /Smoke test failed: POST \/score answered an unexpected result: \$\.label\[0\] is 0, expected 2 \(±0\.00001\)\. Rolled back to revision 1\./,
        );
        assert.equal(imageIn(deployment(ns)), good);
        assert.equal(run.outputs.DeployedImage, good);
      } finally {
        answer = { probabilities: [[0.1, 0.2, 0.7]], label: [2] };
      }
    });

    it('fails when /readyz never answers 200 through the proxy (no endpoint behind the Service)', async () => {
      const ns = freshNamespace();
      const run = await deploy(
        ns,
        { imageRef: imageOf(`noback-${ns}`), smokeTest: 'true', rollbackOnFailure: 'false' },
        { env: { DEPLOY_TO_AKS_SMOKE_READY_MS: '3000' } },
      );
      assert.equal(run.result, 'Failed', describeRun(run));
      assert.match(run.message, /Smoke test failed: GET \/readyz did not answer 200 within \d+ s \(last: HTTP 503/);
    });

    describe('against the real sample app', () => {
      const mainJs = path.join(repoRoot, 'sample-app', 'dist', 'main.js');
      let app: ChildProcess | undefined;
      let appUrl = '';
      before(async function () {
        if (!fs.existsSync(mainJs)) {
          console.log(`      (skipped: ${mainJs} is not built; run npm run build in sample-app/)`);
          return this.skip();
        }
        const port = await freePort();
        app = spawn(process.execPath, [mainJs], {
          env: {
            PATH: process.env.PATH ?? '',
            MODEL_PATH: path.join(repoRoot, 'sample-app', 'models', 'sample-classifier'),
            PORT: String(port),
            HOST: '127.0.0.1',
            LOG_LEVEL: 'warn',
          },
          stdio: 'ignore',
        });
        appUrl = `http://127.0.0.1:${port}`;
        const deadline = Date.now() + 30_000;
        while (
          !(await fetch(`${appUrl}/readyz`).then(
            (r) => r.status === 200,
            () => false,
          ))
        ) {
          if (Date.now() > deadline || app.exitCode !== null) throw new Error('the sample app did not become ready');
          await new Promise((r) => setTimeout(r, 100));
        }
      });
      after(() => void app?.kill('SIGTERM'));

      it('scores a sample through the service proxy and checks the expected output', async () => {
        const samples = JSON.parse(
          fs.readFileSync(path.join(repoRoot, 'sample-app', 'models', 'sample-classifier', 'samples.json'), 'utf8'),
        );
        const sample = samples.requests.find((r: { body: { data?: unknown } }) => r.body.data);
        const ns = freshNamespace();
        kube.setServiceBackend(ns, 'scoring', appUrl);
        const run = await deploy(ns, {
          imageRef: imageOf(`sample-${ns}`),
          smokeTest: 'true',
          smokeTestPayload: JSON.stringify(sample.body),
          smokeTestExpected: JSON.stringify({ outputs: sample.expected }),
          smokeTestTolerance: String(samples.tolerance),
        });
        assert.equal(run.result, 'Succeeded', describeRun(run));
        assert.match(run.logLines.join('\n'), /POST \/score: 200/);
      });
    });
  });
});
