/**
 * Scheduler + kubelet simulation: moves each pod through scheduling, image pull and
 * container start according to the scripted outcome for its images, with the pod
 * status, container states and events a real node reports.
 */
import { createHash } from 'node:crypto';

import { type Cluster, nodeName } from './cluster';
import { clone, deepEqual, type KubeObject, timestamp } from './objects';
import { resourceTypeOfKind } from './resources';

export type ImageOutcome =
  | { ready: { afterTicks: number; logs?: string[] } }
  | { imagePullBackOff: true }
  | { crashLoop: { logs: string[] } }
  | { neverReady: true; logs?: string[] }
  | { oomKilled: true }
  | { unschedulable: true };

interface OutcomeRule {
  match: string | RegExp;
  outcome: ImageOutcome;
}

/** Ticks between restarts of a crashing container (the simulated CrashLoopBackOff period). */
const crashCycle = 3;
/** Ticks between repeats of recurring warnings (BackOff, Unhealthy, FailedScheduling). */
const repeatEvery = 3;

type Obj = Record<string, unknown>;

function repositoryOf(image: string): string {
  const withoutDigest = image.split('@')[0];
  const lastSlash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  return colon > lastSlash ? withoutDigest.slice(0, colon) : withoutDigest;
}

export class ImageOutcomes {
  private readonly rules: OutcomeRule[] = [];

  set(match: string | RegExp, outcome: ImageOutcome): void {
    this.rules.unshift({ match, outcome });
  }

  /** Latest rule wins; a string matches the exact reference or its repository (any tag or digest). */
  forImage(image: string): ImageOutcome {
    for (const rule of this.rules) {
      if (
        typeof rule.match === 'string'
          ? rule.match === image || rule.match === repositoryOf(image)
          : rule.match.test(image)
      ) {
        return rule.outcome;
      }
    }
    return { ready: { afterTicks: 2 } };
  }
}

interface PodSimulation {
  age: number;
  readySince?: number;
}

interface ContainerView {
  status: Obj;
  ready: boolean;
  everStarted: boolean;
}

function fakeId(seed: string): string {
  return createHash('sha256').update(seed).digest('hex');
}

export class KubeletSimulation {
  private readonly pods = new Map<string, PodSimulation>();
  private readonly podType = resourceTypeOfKind('Pod');

  constructor(
    private readonly cluster: Cluster,
    private readonly outcomes: ImageOutcomes,
  ) {}

  /** Whether the pod has been Ready for at least `minReadyTicks` ticks (the ReplicaSet's "available"). */
  isAvailable(pod: KubeObject, minReadyTicks: number, tick: number): boolean {
    const sim = this.pods.get(pod.metadata.uid!);
    return sim?.readySince !== undefined && tick - sim.readySince >= minReadyTicks && !pod.metadata.deletionTimestamp;
  }

  tick(tick: number): void {
    const live = new Set<string>();
    for (const pod of this.cluster.store.list(this.podType)) {
      live.add(pod.metadata.uid!);
      if (pod.metadata.deletionTimestamp) {
        this.terminate(pod);
        continue;
      }
      const sim = this.pods.get(pod.metadata.uid!) ?? { age: 0 };
      sim.age += 1;
      this.pods.set(pod.metadata.uid!, sim);
      this.advance(pod, sim, tick);
    }
    for (const uid of this.pods.keys()) if (!live.has(uid)) this.pods.delete(uid);
  }

  private terminate(pod: KubeObject): void {
    for (const container of containersOf(pod)) {
      this.cluster.recordEvent(
        pod,
        'Normal',
        'Killing',
        `Stopping container ${container.name}`,
        'kubelet',
        `spec.containers{${container.name}}`,
      );
    }
    this.cluster.store.remove(this.podType, pod.metadata.namespace, pod.metadata.name);
  }

  private advance(pod: KubeObject, sim: PodSimulation, tick: number): void {
    const containers = containersOf(pod);
    const outcomes = containers.map((c) => this.outcomes.forImage(String(c.image)));
    const previous = (pod.status ?? {}) as Obj;
    const now = timestamp();
    if (outcomes.some((o) => 'unschedulable' in o)) {
      if (sim.age === 1 || sim.age % repeatEvery === 0) {
        this.cluster.recordEvent(
          pod,
          'Warning',
          'FailedScheduling',
          '0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.',
          'default-scheduler',
        );
      }
      this.writeStatus(pod, {
        phase: 'Pending',
        conditions: mergeConditions(previous, [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message:
              '0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.',
          },
        ]),
        qosClass: 'BestEffort',
      });
      return;
    }
    let current = pod;
    if (sim.age === 1) {
      current = this.cluster.writeObject(this.podType, { ...pod, spec: { ...(pod.spec as Obj), nodeName } });
      this.cluster.recordEvent(
        current,
        'Normal',
        'Scheduled',
        `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${nodeName}`,
        'default-scheduler',
      );
    }
    const views = containers.map((container, index) =>
      this.containerView(current, container, outcomes[index], sim.age),
    );
    const allReady = views.every((v) => v.ready);
    if (allReady && sim.readySince === undefined) sim.readySince = tick;
    if (!allReady) delete sim.readySince;
    const unready = containers.filter((_, i) => !views[i].ready).map((c) => c.name);
    const readyCondition = allReady
      ? { status: 'True' }
      : {
          status: 'False',
          reason: 'ContainersNotReady',
          message: `containers with unready status: [${unready.join(' ')}]`,
        };
    const status: Obj = {
      phase: views.every((v) => v.everStarted) ? 'Running' : 'Pending',
      conditions: mergeConditions(previous, [
        { type: 'PodReadyToStartContainers', status: sim.age >= 2 ? 'True' : 'False' },
        { type: 'Initialized', status: 'True' },
        { type: 'Ready', ...readyCondition },
        { type: 'ContainersReady', ...readyCondition },
        { type: 'PodScheduled', status: 'True' },
      ]),
      hostIP: '10.224.0.4',
      hostIPs: [{ ip: '10.224.0.4' }],
      ...(sim.age >= 2 ? { podIP: podIpOf(pod), podIPs: [{ ip: podIpOf(pod) }] } : {}),
      startTime: previous.startTime ?? now,
      containerStatuses: views.map((v) => v.status),
      qosClass: 'BestEffort',
    };
    this.writeStatus(current, status);
  }

  private writeStatus(pod: KubeObject, status: Obj): void {
    if (!deepEqual(pod.status, status)) this.cluster.writeStatus(this.podType, pod, status);
  }

  private containerView(pod: KubeObject, container: Obj, outcome: ImageOutcome, age: number): ContainerView {
    const name = String(container.name);
    const image = String(container.image);
    const fieldPath = `spec.containers{${name}}`;
    const event = (type: 'Normal' | 'Warning', reason: string, message: string) =>
      this.cluster.recordEvent(pod, type, reason, message, 'kubelet', fieldPath);
    const previousStatus = ((pod.status as Obj | undefined)?.containerStatuses as Obj[] | undefined)?.find(
      (s) => s.name === name,
    );
    const startedAt = ((previousStatus?.state as Obj | undefined)?.running as Obj | undefined)?.startedAt as
      string | undefined;
    const base = { name, image, restartCount: 0, started: false, ready: false };
    const imageID = `${repositoryOf(image)}@sha256:${fakeId(image)}`;
    const containerID = (restarts: number) => `containerd://${fakeId(`${pod.metadata.uid}/${name}/${restarts}`)}`;
    if (age === 1) {
      event('Normal', 'Pulling', `Pulling image "${image}"`);
      return {
        status: { ...base, state: { waiting: { reason: 'ContainerCreating' } }, lastState: {} },
        ready: false,
        everStarted: false,
      };
    }
    if ('imagePullBackOff' in outcome) {
      const pullError = `rpc error: code = NotFound desc = failed to pull and unpack image "${image}": failed to resolve reference "${image}": ${image}: not found`;
      if (age === 2) {
        event('Warning', 'Failed', `Failed to pull image "${image}": ${pullError}`);
        event('Warning', 'Failed', 'Error: ErrImagePull');
        return {
          status: { ...base, state: { waiting: { reason: 'ErrImagePull', message: pullError } }, lastState: {} },
          ready: false,
          everStarted: false,
        };
      }
      if (age % repeatEvery === 0) {
        event('Normal', 'BackOff', `Back-off pulling image "${image}"`);
        event('Warning', 'Failed', 'Error: ImagePullBackOff');
      }
      return {
        status: {
          ...base,
          state: { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` } },
          lastState: {},
        },
        ready: false,
        everStarted: false,
      };
    }
    if (age === 2) {
      event(
        'Normal',
        'Pulled',
        `Successfully pulled image "${image}" in 1.204s (1.204s including waiting). Image size: 52428800 bytes.`,
      );
    }
    if ('crashLoop' in outcome || 'oomKilled' in outcome) {
      const cycleAge = age - 2;
      const restarts = Math.floor(cycleAge / crashCycle);
      const phase = cycleAge % crashCycle;
      const terminated =
        'oomKilled' in outcome ? { exitCode: 137, reason: 'OOMKilled' } : { exitCode: 1, reason: 'Error' };
      const lastTerminated = (restartNumber: number) => ({
        terminated: {
          ...terminated,
          startedAt: startedAt ?? timestamp(),
          finishedAt: timestamp(),
          containerID: containerID(restartNumber),
        },
      });
      if (phase === 0) {
        if (restarts > 0) event('Normal', 'Pulled', `Container image "${image}" already present on machine`);
        event('Normal', 'Created', `Created container ${name}`);
        event('Normal', 'Started', `Started container ${name}`);
        return {
          status: {
            ...base,
            restartCount: restarts,
            started: true,
            imageID,
            containerID: containerID(restarts),
            state: { running: { startedAt: timestamp() } },
            lastState: restarts > 0 ? lastTerminated(restarts - 1) : {},
          },
          ready: false,
          everStarted: true,
        };
      }
      if (phase === 1) {
        return {
          status: {
            ...base,
            restartCount: restarts,
            imageID,
            containerID: containerID(restarts),
            state: lastTerminated(restarts),
            lastState: restarts > 0 ? lastTerminated(restarts - 1) : {},
          },
          ready: false,
          everStarted: true,
        };
      }
      event(
        'Warning',
        'BackOff',
        `Back-off restarting failed container ${name} in pod ${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})`,
      );
      const backoff = Math.min(10 * 2 ** restarts, 300);
      return {
        status: {
          ...base,
          restartCount: restarts + 1,
          imageID,
          containerID: containerID(restarts),
          state: {
            waiting: {
              reason: 'CrashLoopBackOff',
              message: `back-off ${backoff < 60 ? `${backoff}s` : `${Math.floor(backoff / 60)}m${backoff % 60}s`} restarting failed container=${name} pod=${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})`,
            },
          },
          lastState: lastTerminated(restarts),
        },
        ready: false,
        everStarted: true,
      };
    }
    if (age === 2) {
      event('Normal', 'Created', `Created container ${name}`);
      event('Normal', 'Started', `Started container ${name}`);
    }
    const ready = 'ready' in outcome && age >= Math.max(2, outcome.ready.afterTicks);
    if ('neverReady' in outcome && age > 2 && age % repeatEvery === 0) {
      event('Warning', 'Unhealthy', 'Readiness probe failed: HTTP probe failed with statuscode: 503');
    }
    return {
      status: {
        ...base,
        started: true,
        ready,
        imageID,
        containerID: containerID(0),
        state: { running: { startedAt: startedAt ?? timestamp() } },
        lastState: {},
      },
      ready,
      everStarted: true,
    };
  }

  /** What `kubectl logs` would print for this container, or a reason why there is nothing to read. */
  logsOf(pod: KubeObject, containerName: string, previous: boolean): { lines: string[] } | { error: string } {
    const container = containersOf(pod).find((c) => c.name === containerName)!;
    const image = String(container.image);
    const outcome = this.outcomes.forImage(image);
    const status = ((pod.status as Obj | undefined)?.containerStatuses as Obj[] | undefined)?.find(
      (s) => s.name === containerName,
    );
    const restartCount = Number(status?.restartCount ?? 0);
    const state = (status?.state ?? {}) as Obj;
    if (previous) {
      if (restartCount === 0)
        return { error: `previous terminated container "${containerName}" in pod "${pod.metadata.name}" not found` };
    } else if (!status || ('waiting' in state && restartCount === 0)) {
      const reason = (state.waiting as Obj | undefined)?.reason ?? 'ContainerCreating';
      const why =
        reason === 'ImagePullBackOff' || reason === 'ErrImagePull'
          ? 'trying and failing to pull image'
          : 'ContainerCreating';
      return { error: `container "${containerName}" in pod "${pod.metadata.name}" is waiting to start: ${why}` };
    }
    if ('crashLoop' in outcome) return { lines: outcome.crashLoop.logs };
    if ('oomKilled' in outcome) return { lines: [`${containerName}: allocating model buffers`] };
    if ('ready' in outcome && outcome.ready.logs) return { lines: outcome.ready.logs };
    if ('neverReady' in outcome && outcome.logs) return { lines: outcome.logs };
    return { lines: [`Starting ${image}`, `${containerName} listening on port ${portOf(container)}`] };
  }
}

function portOf(container: Obj): number {
  const ports = (container.ports ?? []) as Obj[];
  return Number(ports[0]?.containerPort ?? 8080);
}

export function containersOf(pod: KubeObject): Obj[] {
  return (((pod.spec as Obj | undefined)?.containers ?? []) as Obj[]).map((c) => c);
}

function podIpOf(pod: KubeObject): string {
  const n = parseInt(fakeId(pod.metadata.uid!).slice(0, 4), 16);
  return `10.244.${(n >> 8) % 250}.${(n % 250) + 2}`;
}

/** Keeps a condition's lastTransitionTime while its status stays the same. */
export function mergeConditions(previous: Obj, next: Obj[]): Obj[] {
  const before = (previous.conditions ?? []) as Obj[];
  return next.map((condition) => {
    const old = before.find((c) => c.type === condition.type);
    const lastTransitionTime = old && old.status === condition.status ? old.lastTransitionTime : timestamp();
    return { ...clone(condition), lastProbeTime: null, lastTransitionTime };
  });
}
