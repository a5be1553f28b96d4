import { strict as assert } from 'node:assert';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';

import * as k8s from '@kubernetes/client-node';

import { type KubeTestServer, startKubeTestServer } from '../support/kube/index';

type Obj = Record<string, any>;

function deploymentManifest(name: string, image: string, extra: Obj = {}): Obj {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'prod', labels: { app: name } },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'app', image, ports: [{ containerPort: 8080 }] }] },
      },
      ...extra,
    },
  };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A raw HTTPS request, for what the typed client cannot send (wrong content type, no token). */
function rawRequest(
  server: KubeTestServer,
  method: string,
  path: string,
  options: { body?: string; contentType?: string; token?: string | null } = {},
): Promise<{ status: number; body: any; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.contentType) headers['content-type'] = options.contentType;
    const token = options.token === undefined ? server.token : options.token;
    if (token) headers.authorization = `Bearer ${token}`;
    const req = httpsRequest(`${server.url}${path}`, { method, headers, ca: server.caPem }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => {
        let body: any;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body, text });
      });
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

function apiError(error: unknown): { code: number; body: Obj } {
  const e = error as { code: number; body: string | Obj };
  return { code: e.code, body: typeof e.body === 'string' ? JSON.parse(e.body) : e.body };
}

describe('kube test server', function () {
  this.timeout(30000);
  let server: KubeTestServer;
  let kc: k8s.KubeConfig;
  let apps: k8s.AppsV1Api;
  let core: k8s.CoreV1Api;
  let objects: k8s.KubernetesObjectApi;

  before(async () => {
    server = await startKubeTestServer({ tickMs: 20 });
    kc = new k8s.KubeConfig();
    kc.loadFromString(server.kubeconfig);
    apps = kc.makeApiClient(k8s.AppsV1Api);
    core = kc.makeApiClient(k8s.CoreV1Api);
    objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    await core.createNamespace({ body: { metadata: { name: 'prod' } } });
  });

  after(async () => {
    await server.stop();
  });

  const apply = (manifest: Obj, manager = 'deploy-to-aks', force?: boolean) =>
    objects.patch<Obj>(manifest, undefined, undefined, manager, force, k8s.PatchStrategy.ServerSideApply);

  async function waitForRollout(name: string, predicate: (d: Obj) => boolean): Promise<Obj> {
    return until(`deployment ${name}`, async () => {
      const d = (await apps.readNamespacedDeployment({ namespace: 'prod', name })) as Obj;
      return predicate(d) ? d : undefined;
    });
  }

  const progressing = (d: Obj) => d.status?.conditions?.find((c: Obj) => c.type === 'Progressing');
  const podsOf = async (app: string) =>
    (await core.listNamespacedPod({ namespace: 'prod', labelSelector: `app=${app}` })).items as Obj[];
  const eventsFor = async (name: string) =>
    (
      (await core.listNamespacedEvent({ namespace: 'prod', fieldSelector: `involvedObject.name=${name}` }))
        .items as Obj[]
    ).map((e) => `${e.type}/${e.reason}: ${e.message}`);

  it('refuses requests without the bearer token with a 401 Status, and with the wrong one', async () => {
    for (const token of [null, 'wrong']) {
      const res = await rawRequest(server, 'GET', '/api/v1/namespaces', { token });
      assert.equal(res.status, 401);
      assert.deepEqual(res.body, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'Unauthorized',
        reason: 'Unauthorized',
        code: 401,
      });
    }
    const bad = new k8s.KubeConfig();
    bad.loadFromString(server.kubeconfig.replace(server.token, 'not-the-token'));
    await assert.rejects(bad.makeApiClient(k8s.CoreV1Api).listNamespace(), (e: unknown) => apiError(e).code === 401);
  });

  it('serves discovery the way clients probe it', async () => {
    const version = await kc.makeApiClient(k8s.VersionApi).getCode();
    assert.equal(version.major, '1');
    const v = await rawRequest(server, 'GET', '/version');
    assert.match(v.body.gitVersion, /^v1\.\d+\.\d+$/);
    const groups = await rawRequest(server, 'GET', '/apis');
    assert.deepEqual(groups.body.groups.map((g: Obj) => g.name).sort(), ['apps', 'autoscaling', 'policy']);
    const appsResources = await rawRequest(server, 'GET', '/apis/apps/v1');
    assert.ok(
      appsResources.body.resources.some(
        (r: Obj) => r.name === 'deployments' && r.kind === 'Deployment' && r.namespaced,
      ),
    );
  });

  it('creates, lists with selectors, rejects duplicates and invalid objects with real Status shapes', async () => {
    const created = (await core.createNamespacedSecret({
      namespace: 'prod',
      body: { metadata: { name: 'pull', labels: { tier: 'x' } }, stringData: { token: 's3cret' } },
    })) as Obj;
    assert.equal(created.data.token, Buffer.from('s3cret').toString('base64'));
    assert.ok(created.metadata.uid && created.metadata.resourceVersion && created.metadata.creationTimestamp);
    await assert.rejects(
      core.createNamespacedSecret({ namespace: 'prod', body: { metadata: { name: 'pull' } } }),
      (e: unknown) => {
        const { code, body } = apiError(e);
        return code === 409 && body.reason === 'AlreadyExists' && body.message === 'secrets "pull" already exists';
      },
    );
    const listed = await core.listNamespacedSecret({
      namespace: 'prod',
      labelSelector: 'tier in (x,y)',
      fieldSelector: 'metadata.name=pull',
    });
    assert.deepEqual(
      listed.items.map((s) => s.metadata?.name),
      ['pull'],
    );
    const bad = deploymentManifest('broken', '');
    bad.spec.template.metadata.labels = { app: 'other' };
    await assert.rejects(apps.createNamespacedDeployment({ namespace: 'prod', body: bad }), (e: unknown) => {
      const { code, body } = apiError(e);
      const fields = body.details.causes.map((c: Obj) => c.field);
      return (
        code === 422 &&
        body.reason === 'Invalid' &&
        body.message.startsWith('Deployment.apps "broken" is invalid: [') &&
        fields.includes('spec.template.metadata.labels') &&
        fields.includes('spec.template.spec.containers[0].image')
      );
    });
    await assert.rejects(core.readNamespacedSecret({ namespace: 'prod', name: 'missing' }), (e: unknown) => {
      const { code, body } = apiError(e);
      return (
        code === 404 &&
        body.reason === 'NotFound' &&
        body.message === 'secrets "missing" not found' &&
        body.details.kind === 'secrets'
      );
    });
  });

  it('server-side apply creates, updates with managedFields, reports conflicts and honours force', async () => {
    const first = await apply(deploymentManifest('ssa', 'reg/ssa:1'));
    assert.equal(first.metadata.generation, 1);
    assert.equal(first.metadata.managedFields[0].manager, 'deploy-to-aks');
    assert.equal(first.metadata.managedFields[0].operation, 'Apply');
    assert.ok(first.metadata.managedFields[0].fieldsV1['f:spec']['f:replicas']);
    const second = await apply(deploymentManifest('ssa', 'reg/ssa:2'));
    assert.equal(second.metadata.generation, 2);
    assert.equal(second.spec.template.spec.containers[0].image, 'reg/ssa:2');
    const unchanged = await apply(deploymentManifest('ssa', 'reg/ssa:2'));
    assert.equal(unchanged.metadata.generation, 2, 'a no-op apply does not bump generation');
    // Another manager changing replicas is a conflict unless forced.
    const scaled = deploymentManifest('ssa', 'reg/ssa:2');
    scaled.spec.replicas = 5;
    await assert.rejects(apply(scaled, 'hpa-tuner'), (e: unknown) => {
      const { code, body } = apiError(e);
      return (
        code === 409 &&
        body.reason === 'Conflict' &&
        body.message.includes('conflict with "deploy-to-aks"') &&
        body.details.causes.some((c: Obj) => c.reason === 'FieldManagerConflict' && c.field === '.spec.replicas')
      );
    });
    const forced = await apply(scaled, 'hpa-tuner', true);
    assert.equal(forced.spec.replicas, 5);
    const owners = forced.metadata.managedFields.map((m: Obj) => [
      m.manager,
      Boolean(m.fieldsV1['f:spec']?.['f:replicas']),
    ]);
    assert.deepEqual(
      owners.find((o: unknown[]) => o[0] === 'deploy-to-aks'),
      ['deploy-to-aks', false],
    );
    // Missing fieldManager is refused as the apiserver refuses it.
    const res = await rawRequest(server, 'PATCH', '/apis/apps/v1/namespaces/prod/deployments/ssa', {
      contentType: 'application/apply-patch+yaml',
      body: JSON.stringify(deploymentManifest('ssa', 'reg/ssa:2')),
    });
    assert.equal(res.status, 422);
    assert.equal(
      res.body.message,
      'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
    );
  });

  it('answers a PATCH with an unsupported content type with 415, and supports merge and JSON patch', async () => {
    const res = await rawRequest(server, 'PATCH', '/apis/apps/v1/namespaces/prod/deployments/ssa', {
      contentType: 'application/json',
      body: '{"spec":{"replicas":1}}',
    });
    assert.equal(res.status, 415);
    assert.equal(res.body.reason, 'UnsupportedMediaType');
    assert.equal(res.body.kind, 'Status');
    const merged = await rawRequest(server, 'PATCH', '/apis/apps/v1/namespaces/prod/deployments/ssa', {
      contentType: 'application/merge-patch+json',
      body: '{"metadata":{"annotations":{"note":"x"}}}',
    });
    assert.equal(merged.status, 200);
    assert.equal(merged.body.metadata.annotations.note, 'x');
    const jsonPatched = await rawRequest(server, 'PATCH', '/apis/apps/v1/namespaces/prod/deployments/ssa', {
      contentType: 'application/json-patch+json',
      body: JSON.stringify([{ op: 'replace', path: '/spec/replicas', value: 1 }]),
    });
    assert.equal(jsonPatched.body.spec.replicas, 1);
    const strategic = await rawRequest(server, 'PATCH', '/apis/apps/v1/namespaces/prod/deployments/ssa', {
      contentType: 'application/strategic-merge-patch+json',
      body: JSON.stringify({
        spec: { template: { spec: { containers: [{ name: 'app', env: [{ name: 'A', value: '1' }] }] } } },
      }),
    });
    assert.equal(
      strategic.body.spec.template.spec.containers[0].image,
      'reg/ssa:2',
      'strategic merge keeps the container and merges by name',
    );
    assert.equal(strategic.body.spec.template.spec.containers[0].env[0].value, '1');
  });

  it('streams watch events in order with resourceVersion, and answers a compacted version with 410 Expired', async () => {
    const list = await core.listNamespacedConfigMap({ namespace: 'prod' });
    const since = list.metadata!.resourceVersion!;
    const seen: string[] = [];
    const watch = new k8s.Watch(kc);
    let finished: (err: unknown) => void = () => {};
    const done = new Promise((resolve) => (finished = resolve));
    const controller = await watch.watch(
      '/api/v1/namespaces/prod/configmaps',
      { resourceVersion: since },
      (type, obj: Obj) => {
        seen.push(`${type} ${obj.metadata.name} ${JSON.stringify(obj.data ?? {})}`);
      },
      (err) => finished(err),
    );
    await core.createNamespacedConfigMap({ namespace: 'prod', body: { metadata: { name: 'cfg' }, data: { a: '1' } } });
    await core.patchNamespacedConfigMap(
      { namespace: 'prod', name: 'cfg', body: { data: { a: '2' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await core.deleteNamespacedConfigMap({ namespace: 'prod', name: 'cfg' });
    await until('watch events', async () => seen.length >= 3 || undefined);
    controller.abort();
    await done;
    assert.deepEqual(seen, ['ADDED cfg {"a":"1"}', 'MODIFIED cfg {"a":"2"}', 'DELETED cfg {"a":"2"}']);

    server.compact();
    const expired: Obj[] = [];
    await new Promise<void>((resolve) => {
      void watch.watch(
        '/api/v1/namespaces/prod/configmaps',
        { resourceVersion: since },
        (type, obj: Obj) => expired.push({ type, obj }),
        () => resolve(),
      );
    });
    assert.equal(expired.length, 1);
    assert.equal(expired[0].type, 'ERROR');
    assert.equal(expired[0].obj.code, 410);
    assert.equal(expired[0].obj.reason, 'Expired');
    assert.match(expired[0].obj.message, /^too old resource version: \d+ \(\d+\)$/);
  });

  it('rolls a Deployment out through a ReplicaSet to ready pods and reports it like the deployment controller', async () => {
    await apply(deploymentManifest('web', 'reg/web:1'));
    const done = await waitForRollout(
      'web',
      (d) => progressing(d)?.reason === 'NewReplicaSetAvailable' && d.status.availableReplicas === 2,
    );
    assert.equal(done.status.observedGeneration, done.metadata.generation);
    assert.equal(done.status.updatedReplicas, 2);
    assert.equal(done.status.readyReplicas, 2);
    assert.equal(done.metadata.annotations['deployment.kubernetes.io/revision'], '1');
    const rs = (await apps.listNamespacedReplicaSet({ namespace: 'prod', labelSelector: 'app=web' })).items as Obj[];
    assert.equal(rs.length, 1);
    assert.equal(rs[0].metadata.ownerReferences[0].uid, done.metadata.uid);
    assert.equal(rs[0].metadata.name, `web-${rs[0].metadata.labels['pod-template-hash']}`);
    const pods = await podsOf('web');
    assert.equal(pods.length, 2);
    for (const pod of pods) {
      assert.equal(pod.status.phase, 'Running');
      assert.equal(pod.status.conditions.find((c: Obj) => c.type === 'Ready').status, 'True');
      assert.ok(pod.status.containerStatuses[0].state.running);
    }
    const events = await eventsFor('web');
    assert.ok(
      events.some((e) => /^Normal\/ScalingReplicaSet: Scaled up replica set web-\w+ from 0 to 2$/.test(e)),
      events.join('\n'),
    );
    const podEvents = await eventsFor(pods[0].metadata.name);
    for (const reason of ['Scheduled', 'Pulling', 'Pulled', 'Created', 'Started'])
      assert.ok(
        podEvents.some((e) => e.startsWith(`Normal/${reason}:`)),
        reason,
      );
    const logs = await core.readNamespacedPodLog({ namespace: 'prod', name: pods[0].metadata.name, tailLines: 1 });
    assert.equal(logs, 'app listening on port 8080\n');
  });

  const failureCases: {
    outcome: Parameters<KubeTestServer['setImageOutcome']>[1];
    check: (pod: Obj, events: string[]) => void;
  }[] = [
    {
      outcome: { imagePullBackOff: true },
      check: (pod, events) => {
        assert.equal(pod.status.phase, 'Pending');
        assert.equal(pod.status.containerStatuses[0].state.waiting.reason, 'ImagePullBackOff');
        assert.ok(events.some((e) => e.startsWith('Warning/Failed: Failed to pull image')));
        assert.ok(events.some((e) => e.startsWith('Normal/BackOff: Back-off pulling image')));
      },
    },
    {
      outcome: { crashLoop: { logs: ['boom: model file missing'] } },
      check: (pod, events) => {
        const container = pod.status.containerStatuses[0];
        assert.equal(container.state.waiting.reason, 'CrashLoopBackOff');
        assert.ok(container.restartCount >= 1);
        assert.equal(container.lastState.terminated.exitCode, 1);
        assert.ok(events.some((e) => e.startsWith('Warning/BackOff: Back-off restarting failed container app')));
      },
    },
    {
      outcome: { oomKilled: true },
      check: (pod) => assert.equal(pod.status.containerStatuses[0].lastState.terminated.reason, 'OOMKilled'),
    },
    {
      outcome: { neverReady: true },
      check: (pod, events) => {
        assert.equal(pod.status.phase, 'Running');
        assert.equal(pod.status.containerStatuses[0].ready, false);
        assert.ok(
          events.some((e) => e === 'Warning/Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503'),
        );
      },
    },
    {
      outcome: { unschedulable: true },
      check: (pod, events) => {
        const scheduled = pod.status.conditions.find((c: Obj) => c.type === 'PodScheduled');
        assert.equal(scheduled.status, 'False');
        assert.equal(scheduled.reason, 'Unschedulable');
        assert.ok(events.some((e) => e.startsWith('Warning/FailedScheduling: 0/3 nodes are available')));
      },
    },
  ];

  for (const [index, { outcome, check }] of failureCases.entries()) {
    const label = Object.keys(outcome)[0];
    it(`shows ${label} on the pod, in its events, and in the deployment conditions`, async () => {
      const name = `fail${index}`;
      server.setImageOutcome(`reg/${name}`, outcome);
      await apply(
        deploymentManifest(name, `reg/${name}@sha256:${'a'.repeat(64)}`, { replicas: 1, progressDeadlineSeconds: 6 }),
      );
      const deployment = await waitForRollout(name, (d) => progressing(d)?.reason === 'ProgressDeadlineExceeded');
      assert.equal(progressing(deployment).status, 'False');
      assert.equal(deployment.status.conditions.find((c: Obj) => c.type === 'Available').status, 'False');
      const [pod] = await podsOf(name);
      await until(`${label} to settle`, async () => {
        const [fresh] = await podsOf(name);
        try {
          check(fresh, await eventsFor(fresh.metadata.name));
          return true;
        } catch {
          return undefined;
        }
      });
      if (label === 'crashLoop') {
        const previous = await core.readNamespacedPodLog({
          namespace: 'prod',
          name: pod.metadata.name,
          previous: true,
        });
        assert.equal(previous, 'boom: model file missing\n');
      }
    });
  }

  it('rolls back by restoring the previous ReplicaSet template, under a new revision', async () => {
    await apply(deploymentManifest('web', 'reg/web:2'));
    await waitForRollout(
      'web',
      (d) =>
        d.metadata.generation === 2 &&
        progressing(d)?.reason === 'NewReplicaSetAvailable' &&
        d.status.updatedReplicas === 2 &&
        d.status.replicas === 2,
    );
    const replicaSets = (await apps.listNamespacedReplicaSet({ namespace: 'prod', labelSelector: 'app=web' }))
      .items as Obj[];
    const byRevision = new Map(
      replicaSets.map((rs) => [rs.metadata.annotations['deployment.kubernetes.io/revision'], rs]),
    );
    assert.deepEqual([...byRevision.keys()].sort(), ['1', '2']);
    assert.equal(byRevision.get('1')!.spec.replicas, 0);
    assert.equal(byRevision.get('2')!.spec.template.spec.containers[0].image, 'reg/web:2');
    // kubectl rollout undo: copy revision 1's template (minus pod-template-hash) onto the Deployment.
    const template = structuredClone(byRevision.get('1')!.spec.template);
    delete template.metadata.labels['pod-template-hash'];
    const current = (await apps.readNamespacedDeployment({ namespace: 'prod', name: 'web' })) as Obj;
    await apps.replaceNamespacedDeployment({
      namespace: 'prod',
      name: 'web',
      body: { ...current, spec: { ...current.spec, template } },
    });
    const rolledBack = await waitForRollout(
      'web',
      (d) =>
        d.metadata.annotations['deployment.kubernetes.io/revision'] === '3' &&
        progressing(d)?.reason === 'NewReplicaSetAvailable' &&
        d.status.replicas === 2,
    );
    assert.equal(rolledBack.spec.template.spec.containers[0].image, 'reg/web:1');
    const after = (await apps.listNamespacedReplicaSet({ namespace: 'prod', labelSelector: 'app=web' })).items as Obj[];
    assert.equal(after.length, 2, 'the old ReplicaSet is reused, not duplicated');
    const reused = after.find((rs) => rs.metadata.name === byRevision.get('1')!.metadata.name)!;
    assert.equal(reused.metadata.annotations['deployment.kubernetes.io/revision'], '3');
    assert.equal(reused.metadata.annotations['deployment.kubernetes.io/revision-history'], '1');
    assert.equal(reused.spec.replicas, 2);
  });

  it('proxies service requests to the registered backend once the service has ready endpoints', async () => {
    const backend: Server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ path: req.url, auth: req.headers.authorization ?? null }));
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    try {
      const service = (await core.createNamespacedService({
        namespace: 'prod',
        body: {
          metadata: { name: 'web' },
          spec: {
            type: 'LoadBalancer',
            selector: { app: 'web' },
            ports: [{ name: 'http', port: 80, targetPort: 8080 }],
          },
        },
      })) as Obj;
      assert.match(service.spec.clusterIP, /^10\.0\.\d+\.\d+$/);
      const noBackend = await rawRequest(server, 'GET', '/api/v1/namespaces/prod/services/web:80/proxy/health');
      assert.equal(noBackend.status, 503);
      server.setServiceBackend('prod', 'web', `http://127.0.0.1:${(backend.address() as AddressInfo).port}`);
      for (const path of [
        '/api/v1/namespaces/prod/services/web:80/proxy/health?x=1',
        '/api/v1/namespaces/prod/services/http:web:http/proxy/health?x=1',
      ]) {
        const res = await rawRequest(server, 'GET', path);
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(res.body, { path: '/health?x=1', auth: null });
      }
      const missing = await rawRequest(server, 'GET', '/api/v1/namespaces/prod/services/nope:80/proxy/');
      assert.equal(missing.status, 404);
      const lb = await until('load balancer ip', async () => {
        const s = (await core.readNamespacedService({ namespace: 'prod', name: 'web' })) as Obj;
        return s.status?.loadBalancer?.ingress?.[0]?.ip as string | undefined;
      });
      assert.equal(lb, '127.0.0.1');
    } finally {
      backend.close();
    }
  });

  it('deletes a Deployment together with its ReplicaSets and pods', async () => {
    const before = server.objects('ReplicaSet', 'prod').filter((rs) => rs.metadata.labels?.app === 'web');
    assert.ok(before.length > 0);
    const status = (await apps.deleteNamespacedDeployment({ namespace: 'prod', name: 'web' })) as Obj;
    assert.equal(status.status, 'Success');
    assert.equal(server.objects('ReplicaSet', 'prod').filter((rs) => rs.metadata.labels?.app === 'web').length, 0);
    await until('pods gone', async () =>
      server.objects('Pod', 'prod').filter((p) => p.metadata.labels?.app === 'web').length === 0 ? true : undefined,
    );
    await assert.rejects(
      apps.readNamespacedDeployment({ namespace: 'prod', name: 'web' }),
      (e: unknown) => apiError(e).code === 404,
    );
  });

  it('logs every request for tests to count', () => {
    const deploymentPatches = server.requests.filter(
      (r) => r.method === 'PATCH' && r.path.startsWith('/apis/apps/v1/namespaces/prod/deployments/'),
    );
    assert.ok(
      deploymentPatches.some(
        (r) => r.contentType === 'application/apply-patch+yaml' && r.query.fieldManager === 'deploy-to-aks',
      ),
    );
  });
});
