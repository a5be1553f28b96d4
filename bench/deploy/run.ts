// DeployToAKS against the Kubernetes API test server:
//  1. The bundled task, as the agent runs it: ms from the moment the Deployment is complete at the
//     server to the task saying so, and to the task finishing; Kubernetes API requests per deploy.
//  2. Side by side on the same rollouts: the task's watch-based waiter against a 1 s poll loop
//     (GET the Deployment until complete), ms from completion to noticing it, and requests made.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { KubeConfig } from '@kubernetes/client-node';

import { KubeClient } from '../../tasks/common/kube/client';
import { type DeploymentLike, deploymentRolloutState } from '../../tasks/common/kube/rolloutStatus';
import { RolloutWaiter } from '../../tasks/DeployToAKS/rollout';
import { bundleTasks } from '../../test/support/bundle';
import { type KubeTestServer, startKubeTestServer } from '../../test/support/kube';
import { repoRoot } from '../../test/support/paths';
import { runTask } from '../../test/support/taskRunner';

const DEPLOYS = 8;
const SIDE_BY_SIDE = 8;
const digest = (i: number) => `scoringacr.azurecr.io/models/scoring@sha256:${i.toString(16).padStart(64, '0')}`;

/** Resolves with the time the Deployment first reads complete for a generation above `afterGeneration`. */
function completionAt(kube: KubeTestServer, ns: string, name: string, afterGeneration: number): Promise<number> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const d = kube.objects('Deployment', ns).find((o) => o.metadata.name === name) as DeploymentLike | undefined;
      if (d && (d.metadata.generation ?? 0) > afterGeneration && deploymentRolloutState(d).done) {
        clearInterval(timer);
        resolve(Date.now());
      }
    }, 1);
  });
}

const generationOf = (kube: KubeTestServer, ns: string, name: string) =>
  kube.objects('Deployment', ns).find((o) => o.metadata.name === name)?.metadata.generation ?? 0;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function taskFigures(kube: KubeTestServer) {
  const ns = 'bench-task';
  const endpoint = {
    id: 'k',
    scheme: 'Kubernetes',
    url: kube.url,
    auth: { kubeconfig: kube.kubeconfig },
    data: { authorizationType: 'Kubeconfig' },
  };
  const inputs = {
    connectionType: 'kubernetesServiceConnection',
    kubernetesServiceConnection: 'k',
    namespace: ns,
    createNamespace: 'true',
    name: 'scoring',
    serviceType: 'ClusterIP',
    replicas: '3',
  };
  const noticed: number[] = [];
  const finished: number[] = [];
  const requests: Array<[string, number]> = [];
  for (let i = 1; i <= DEPLOYS; i++) {
    const before = generationOf(kube, ns, 'scoring');
    const complete = completionAt(kube, ns, 'scoring', before);
    let sawDone = 0;
    let sawComplete = 0;
    const mark = kube.requests.length;
    const run = await runTask('DeployToAKS', {
      inputs: { ...inputs, imageRef: digest(i) },
      endpoints: [endpoint],
      onLine: (line) => {
        if (!sawDone && /successfully rolled out \(revision/.test(line)) sawDone = Date.now();
        if (!sawComplete && line.startsWith('##vso[task.complete')) sawComplete = Date.now();
      },
    });
    if (run.result !== 'Succeeded') throw new Error(`deploy ${i} failed: ${run.message}`);
    const at = await complete;
    noticed.push(sawDone - at);
    finished.push(sawComplete - at);
    requests.push([i === 1 ? 'first deploy' : 'update', kube.requests.length - mark]);
  }
  // A failed update that is diagnosed and rolled back, and a canary, for their request counts.
  kube.setImageOutcome(digest(999), { imagePullBackOff: true });
  let mark = kube.requests.length;
  const failed = await runTask('DeployToAKS', { inputs: { ...inputs, imageRef: digest(999) }, endpoints: [endpoint] });
  if (failed.result !== 'Failed') throw new Error('the failing deploy did not fail');
  requests.push(['failed update, diagnosed and rolled back', kube.requests.length - mark]);
  mark = kube.requests.length;
  const canary = await runTask('DeployToAKS', {
    inputs: { ...inputs, imageRef: digest(1000), strategy: 'canary' },
    endpoints: [endpoint],
  });
  if (canary.result !== 'Succeeded') throw new Error(`canary failed: ${canary.message}`);
  requests.push(['canary deploy', kube.requests.length - mark]);
  return { noticed, finished, requests };
}

async function sideBySide(kube: KubeTestServer) {
  const kc = new KubeConfig();
  kc.loadFromString(kube.kubeconfig);
  const watchClient = await KubeClient.fromKubeConfig(kc);
  const pollClient = await KubeClient.fromKubeConfig(kc);
  const ns = 'bench-side';
  const path_ = `/apis/apps/v1/namespaces/${ns}/deployments/scoring`;
  await watchClient.apply(
    `/api/v1/namespaces/${ns}`,
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
    'bench',
    false,
  );
  const deploymentOf = (image: string) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'scoring', namespace: ns },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: 'scoring' } },
      template: { metadata: { labels: { app: 'scoring' } }, spec: { containers: [{ name: 'app', image }] } },
    },
  });
  const watchLag: number[] = [];
  const pollLag: number[] = [];
  let watchRequests = 0;
  let pollRequests = 0;
  for (let i = 1; i <= SIDE_BY_SIDE; i++) {
    const before = generationOf(kube, ns, 'scoring');
    const complete = completionAt(kube, ns, 'scoring', before);
    const applied = await watchClient.apply<DeploymentLike>(path_, deploymentOf(digest(2000 + i)), 'bench', false);
    const w0 = watchClient.requestCount;
    const p0 = pollClient.requestCount;
    const watched = new RolloutWaiter(watchClient, ns, {
      timeoutMs: 60_000,
      failOnPodErrors: true,
      log: () => undefined,
    })
      .waitForDeployment(applied)
      .then(() => Date.now());
    const polled = (async () => {
      for (;;) {
        const d = await pollClient.mustGet<DeploymentLike>(path_);
        if ((d.metadata.generation ?? 0) >= (applied.metadata.generation ?? 0) && deploymentRolloutState(d).done)
          return Date.now();
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    const [at, w, p] = await Promise.all([complete, watched, polled]);
    watchLag.push(w - at);
    pollLag.push(p - at);
    watchRequests += watchClient.requestCount - w0;
    pollRequests += pollClient.requestCount - p0;
  }
  watchClient.close();
  pollClient.close();
  return { watchLag, pollLag, watchRequests: watchRequests / SIDE_BY_SIDE, pollRequests: pollRequests / SIDE_BY_SIDE };
}

async function main() {
  bundleTasks('DeployToAKS');
  // 100 ms ticks: a rollout of 3 pods takes a few seconds, like a small real one, and leaves a poll loop room to show its lag.
  const kube = await startKubeTestServer({ tickMs: 100 });
  try {
    const task = await taskFigures(kube);
    const side = await sideBySide(kube);
    const fmt = (xs: number[]) => `${median(xs)} (${Math.min(...xs)}–${Math.max(...xs)})`;
    const report = [
      '# DeployToAKS: noticing a finished rollout, and API requests per deploy',
      '',
      `Against the Kubernetes API test server (100 ms controller ticks, 3 replicas). ${new Date().toISOString()}, ${process.platform} ${process.arch}, Node ${process.versions.node}.`,
      'Completion is when the Deployment first reads complete at the server (observed generation, updated = ready = available = replicas, no old replicas).',
      '',
      `## The bundled task, ${DEPLOYS} deploys`,
      '',
      '| | ms after completion: median (min–max) |',
      '| --- | --- |',
      `| task logs "successfully rolled out" | ${fmt(task.noticed)} |`,
      `| task finishes (task.complete) | ${fmt(task.finished)} |`,
      '',
      '| Deploy | Kubernetes API requests |',
      '| --- | --- |',
      ...[
        ...new Map(task.requests.map(([k]) => [k, task.requests.filter(([x]) => x === k).map(([, n]) => n)])).entries(),
      ].map(([k, ns]) => `| ${k} | ${ns.length > 1 ? `${median(ns)} (median of ${ns.length})` : ns[0]} |`),
      '',
      `## Watch against a 1 s poll loop, side by side on the same ${SIDE_BY_SIDE} rollouts`,
      '',
      '| Waiter | ms from completion to noticing: median (min–max) | requests per rollout |',
      '| --- | --- | --- |',
      `| poll loop, GET every 1 s (baseline) | ${fmt(side.pollLag)} | ${side.pollRequests.toFixed(1)} |`,
      `| task's watch (Deployment + pods) | ${fmt(side.watchLag)} | ${side.watchRequests.toFixed(1)} |`,
      '',
      `Ratio of medians, watch ÷ poll: ${(Math.max(1, median(side.watchLag)) / Math.max(1, median(side.pollLag))).toFixed(3)} (watch latency floors at 1 ms here).`,
      '',
    ].join('\n');
    fs.mkdirSync(path.join(repoRoot, 'bench', 'reports'), { recursive: true });
    fs.writeFileSync(path.join(repoRoot, 'bench', 'reports', 'deploy.md'), report);
    console.log(report);
  } finally {
    await kube.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
