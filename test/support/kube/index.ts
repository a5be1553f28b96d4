/**
 * Kubernetes API test server: a real HTTPS endpoint (self-signed CA, bearer token) that
 * speaks the REST paths the DeployToAKS task uses and simulates the controllers behind
 * them. Start one per test suite with `startKubeTestServer()`.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import yaml from 'js-yaml';

import { KubeApi, type RequestRecord } from './api';
import { makeServerCertificates } from './certs';
import { Cluster } from './cluster';
import { ControllerManager } from './controller';
import { type ImageOutcome, ImageOutcomes, KubeletSimulation } from './kubelet';
import type { KubeObject } from './objects';
import { resourceTypes } from './resources';
import { WatchStreams } from './watch';

export type { RequestRecord } from './api';
export type { ImageOutcome } from './kubelet';
export type { KubeObject } from './objects';

export interface KubeTestServerOptions {
  /** Real milliseconds between controller ticks (default 50). */
  tickMs?: number;
  /** Simulated seconds one tick stands for, for progressDeadlineSeconds and minReadySeconds (default 1). */
  secondsPerTick?: number;
  /** Bearer token clients must send (default: random). */
  token?: string;
  /** Service proxy backends, keyed `namespace/name`, e.g. `{ 'prod/scoring': 'http://127.0.0.1:3000' }`. */
  serviceBackends?: Record<string, string>;
  /** How often watch streams with allowWatchBookmarks=true get a BOOKMARK (default 1000 ms). */
  bookmarkIntervalMs?: number;
}

export interface KubeTestServer {
  url: string;
  token: string;
  caPem: string;
  /** Kubeconfig YAML: cluster `kube-test` with certificate-authority-data, user with the token, context `kube-test`. */
  kubeconfig: string;
  /** Writes `kubeconfig` (mode 0600) into `dir` and returns its path. */
  writeKubeconfig(dir: string): Promise<string>;
  setImageOutcome(imageOrPattern: string | RegExp, outcome: ImageOutcome): void;
  setServiceBackend(namespace: string, name: string, url: string): void;
  /** Every request received, in order (including ones refused for auth). */
  requests: RequestRecord[];
  /** Current objects of a kind (e.g. 'Deployment'), optionally in one namespace, sorted by namespace/name. */
  objects(kind: string, namespace?: string): KubeObject[];
  /** Drops watch history, like etcd compaction: older resourceVersions get 410 Expired. */
  compact(): void;
  /** Controller ticks run so far. */
  readonly ticks: number;
  stop(): Promise<void>;
}

export async function startKubeTestServer(options: KubeTestServerOptions = {}): Promise<KubeTestServer> {
  const tickMs = options.tickMs ?? 50;
  const token = options.token ?? randomBytes(24).toString('base64url');
  const certificates = await makeServerCertificates();
  const cluster = new Cluster();
  const outcomes = new ImageOutcomes();
  const controller = new ControllerManager(cluster, new KubeletSimulation(cluster, outcomes), {
    secondsPerTick: options.secondsPerTick ?? 1,
  });
  const watches = new WatchStreams(cluster.store);
  const serviceBackends = new Map(Object.entries(options.serviceBackends ?? {}));
  const requests: RequestRecord[] = [];
  const api = new KubeApi({
    cluster,
    controller,
    watches,
    token,
    serviceBackends,
    requests,
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 1000,
  });

  const server = createServer(
    { cert: certificates.certPem, key: certificates.keyPem },
    (req, res) => void api.handle(req, res),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const timer = setInterval(() => {
    try {
      controller.tick();
    } catch (error) {
      // A controller bug must surface in the test output rather than freeze the simulation silently.
      console.error('kube test server controller tick failed:', error);
    }
  }, tickMs);
  timer.unref();

  const kubeconfig = yaml.dump({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'kube-test',
        cluster: { server: url, 'certificate-authority-data': Buffer.from(certificates.caPem).toString('base64') },
      },
    ],
    users: [{ name: 'kube-test-user', user: { token } }],
    contexts: [{ name: 'kube-test', context: { cluster: 'kube-test', user: 'kube-test-user', namespace: 'default' } }],
    'current-context': 'kube-test',
    preferences: {},
  });

  return {
    url,
    token,
    caPem: certificates.caPem,
    kubeconfig,
    async writeKubeconfig(dir: string) {
      const path = join(dir, 'kubeconfig');
      await writeFile(path, kubeconfig, { mode: 0o600 });
      return path;
    },
    setImageOutcome: (match, outcome) => outcomes.set(match, outcome),
    setServiceBackend: (namespace, name, backendUrl) => void serviceBackends.set(`${namespace}/${name}`, backendUrl),
    requests,
    objects(kind: string, namespace?: string) {
      const type = resourceTypes.find((t) => t.kind === kind);
      if (!type)
        throw new Error(
          `the kube test server has no kind ${kind}; it serves ${resourceTypes.map((t) => t.kind).join(', ')}`,
        );
      return cluster.store.list(type, namespace);
    },
    compact: () => cluster.store.compact(),
    get ticks() {
      return controller.tickCount;
    },
    async stop() {
      clearInterval(timer);
      watches.closeAll();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
