/**
 * The controller manager's loops that the task can observe: Deployment → ReplicaSet
 * rollout (revisions, rolling update, progress deadline), ReplicaSet → Pods, Service
 * load balancers, HPA and PDB status, namespace termination.
 */
import type { Cluster } from './cluster';
import type { KubeletSimulation } from './kubelet';
import { clone, deepEqual, type KubeObject, randomSuffix, templateHash, timestamp } from './objects';
import { resourceTypeOfKind } from './resources';
import { labelSelectorMatches, type LabelSelectorSpec, mapSelectorMatches } from './selectors';

type Obj = Record<string, unknown>;

export const revisionAnnotation = 'deployment.kubernetes.io/revision';
const revisionHistoryAnnotation = 'deployment.kubernetes.io/revision-history';
const desiredReplicasAnnotation = 'deployment.kubernetes.io/desired-replicas';
const maxReplicasAnnotation = 'deployment.kubernetes.io/max-replicas';
const hashLabel = 'pod-template-hash';

const types = {
  deployment: resourceTypeOfKind('Deployment'),
  replicaSet: resourceTypeOfKind('ReplicaSet'),
  pod: resourceTypeOfKind('Pod'),
  service: resourceTypeOfKind('Service'),
  hpa: resourceTypeOfKind('HorizontalPodAutoscaler'),
  pdb: resourceTypeOfKind('PodDisruptionBudget'),
  namespace: resourceTypeOfKind('Namespace'),
};

interface RolloutProgress {
  lastProgressTick: number;
  snapshot: string;
}

function spec(object: KubeObject): Obj {
  return (object.spec ?? {}) as Obj;
}

function status(object: KubeObject): Obj {
  return (object.status ?? {}) as Obj;
}

function num(value: unknown, fallback = 0): number {
  return typeof value === 'number' ? value : fallback;
}

function revisionOf(object: KubeObject): number {
  return Number(object.metadata.annotations?.[revisionAnnotation] ?? 0);
}

/** intstr resolution as the deployment controller does it: percentages round up for surge, down for unavailable. */
function resolveIntOrPercent(value: unknown, total: number, roundUp: boolean): number {
  if (typeof value === 'number') return value;
  const match = String(value ?? '0').match(/^(\d+)%$/);
  if (!match) return Number(value) || 0;
  const exact = (Number(match[1]) * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

/** Hash of a pod template ignoring its pod-template-hash label, so a rollback finds the old ReplicaSet. */
function hashOfTemplate(template: unknown): string {
  const copy = clone((template ?? {}) as Obj);
  const metadata = (copy.metadata ?? {}) as Obj;
  const labels = { ...((metadata.labels ?? {}) as Record<string, string>) };
  delete labels[hashLabel];
  copy.metadata = { ...metadata, labels };
  return templateHash(copy);
}

function compactStatus(values: Obj): Obj {
  // The API omits zero counts (omitempty).
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== 0 && v !== undefined));
}

export interface ControllerOptions {
  secondsPerTick: number;
}

export class ControllerManager {
  tickCount = 0;
  readonly kubelet: KubeletSimulation;
  private readonly progress = new Map<string, RolloutProgress>();
  private readonly loadBalancerSeen = new Map<string, number>();

  constructor(
    private readonly cluster: Cluster,
    kubelet: KubeletSimulation,
    private readonly options: ControllerOptions,
  ) {
    this.kubelet = kubelet;
  }

  tick(): void {
    this.tickCount += 1;
    this.finishNamespaceTermination();
    for (const hpa of this.cluster.store.list(types.hpa)) this.syncHpa(hpa);
    for (const deployment of this.cluster.store.list(types.deployment)) this.syncDeploymentReplicaSets(deployment);
    for (const rs of this.cluster.store.list(types.replicaSet)) this.syncReplicaSetPods(rs);
    this.kubelet.tick(this.tickCount);
    for (const rs of this.cluster.store.list(types.replicaSet)) this.syncReplicaSetStatus(rs);
    for (const deployment of this.cluster.store.list(types.deployment)) this.syncDeploymentStatus(deployment);
    for (const service of this.cluster.store.list(types.service)) this.syncLoadBalancer(service);
    for (const pdb of this.cluster.store.list(types.pdb)) this.syncPdb(pdb);
  }

  private ticksFor(seconds: number): number {
    return Math.ceil(seconds / this.options.secondsPerTick);
  }

  private finishNamespaceTermination(): void {
    for (const ns of this.cluster.store.list(types.namespace)) {
      if (ns.metadata.deletionTimestamp) this.cluster.store.remove(types.namespace, undefined, ns.metadata.name);
    }
  }

  private replicaSetsOf(deployment: KubeObject): KubeObject[] {
    return this.cluster.ownedBy(types.replicaSet, deployment.metadata.namespace, deployment.metadata.uid);
  }

  private syncDeploymentReplicaSets(deployment: KubeObject): void {
    if (deployment.metadata.deletionTimestamp) return;
    const deploySpec = spec(deployment);
    const replicas = num(deploySpec.replicas, 1);
    const hash = hashOfTemplate(deploySpec.template);
    const all = this.replicaSetsOf(deployment);
    let newRs = all.find((rs) => hashOfTemplate(spec(rs).template) === hash);
    const maxRevision = Math.max(0, ...all.map(revisionOf));
    const strategy = (deploySpec.strategy ?? {}) as Obj;
    const rolling = (strategy.rollingUpdate ?? {}) as Obj;
    const recreate = strategy.type === 'Recreate';
    let maxSurge = recreate ? 0 : resolveIntOrPercent(rolling.maxSurge ?? '25%', replicas, true);
    let maxUnavailable = recreate ? replicas : resolveIntOrPercent(rolling.maxUnavailable ?? '25%', replicas, false);
    if (!recreate && maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
    if (maxSurge < 0) maxSurge = 0;

    if (!newRs) {
      const template = clone(deploySpec.template as Obj);
      const templateMeta = (template.metadata ??= {}) as Obj;
      templateMeta.labels = { ...((templateMeta.labels ?? {}) as Obj), [hashLabel]: hash };
      const selector = clone((deploySpec.selector ?? {}) as LabelSelectorSpec);
      selector.matchLabels = { ...(selector.matchLabels ?? {}), [hashLabel]: hash };
      newRs = this.cluster.create(types.replicaSet, {
        metadata: {
          name: `${deployment.metadata.name}-${hash}`,
          namespace: deployment.metadata.namespace,
          labels: { ...((templateMeta.labels ?? {}) as Record<string, string>) },
          annotations: {
            [desiredReplicasAnnotation]: String(replicas),
            [maxReplicasAnnotation]: String(replicas + maxSurge),
            [revisionAnnotation]: String(maxRevision + 1),
          },
          ownerReferences: [
            {
              apiVersion: 'apps/v1',
              kind: 'Deployment',
              name: deployment.metadata.name,
              uid: deployment.metadata.uid!,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        spec: { replicas: 0, minReadySeconds: num(deploySpec.minReadySeconds), selector, template },
      });
      this.progress.set(deployment.metadata.uid!, { lastProgressTick: this.tickCount, snapshot: '' });
      this.setProgressing(
        deployment,
        'True',
        'NewReplicaSetCreated',
        `Created new replica set "${newRs.metadata.name}"`,
      );
      all.push(newRs);
    } else if (revisionOf(newRs) < maxRevision) {
      // Rolling back to an old template re-uses its ReplicaSet under a new revision, keeping the old number in history.
      const annotations = { ...newRs.metadata.annotations };
      const history = [annotations[revisionHistoryAnnotation], String(revisionOf(newRs))].filter(Boolean).join(',');
      annotations[revisionAnnotation] = String(maxRevision + 1);
      annotations[revisionHistoryAnnotation] = history;
      newRs = this.cluster.writeObject(types.replicaSet, { ...newRs, metadata: { ...newRs.metadata, annotations } });
      this.progress.set(deployment.metadata.uid!, { lastProgressTick: this.tickCount, snapshot: '' });
      this.setProgressing(deployment, 'True', 'FoundNewReplicaSet', `Found new replica set "${newRs.metadata.name}"`);
    }
    const newRsName = newRs.metadata.name;
    const revision = String(revisionOf(newRs));
    if (deployment.metadata.annotations?.[revisionAnnotation] !== revision) {
      const fresh = this.cluster.store.get(types.deployment, deployment.metadata.namespace, deployment.metadata.name)!;
      this.cluster.writeObject(types.deployment, {
        ...fresh,
        metadata: { ...fresh.metadata, annotations: { ...fresh.metadata.annotations, [revisionAnnotation]: revision } },
      });
    }
    if (deploySpec.paused) return;

    const olds = all.filter((rs) => rs.metadata.name !== newRsName).sort((a, b) => revisionOf(a) - revisionOf(b));
    const current = () => this.replicaSetsOf(deployment);
    const replicasOf = (rs: KubeObject) => num(spec(rs).replicas);
    const minReadyTicks = this.ticksFor(num(deploySpec.minReadySeconds));
    const availableIn = (rs: KubeObject) =>
      this.cluster
        .ownedBy(types.pod, rs.metadata.namespace, rs.metadata.uid)
        .filter((p) => this.kubelet.isAvailable(p, minReadyTicks, this.tickCount)).length;

    if (recreate) {
      for (const old of olds) if (replicasOf(old) > 0) this.scale(deployment, old, 0);
      const oldPods = olds.reduce(
        (n, rs) => n + this.cluster.ownedBy(types.pod, rs.metadata.namespace, rs.metadata.uid).length,
        0,
      );
      if (oldPods === 0 && replicasOf(newRs) !== replicas) this.scale(deployment, newRs, replicas);
    } else {
      // Scale up the new ReplicaSet within maxSurge.
      const total = current().reduce((n, rs) => n + replicasOf(rs), 0);
      const newReplicas = replicasOf(newRs);
      if (newReplicas < replicas) {
        const room = replicas + maxSurge - total;
        if (room > 0) this.scale(deployment, newRs, Math.min(replicas, newReplicas + room));
      } else if (newReplicas > replicas) {
        this.scale(deployment, newRs, replicas);
      }
      // Scale old ReplicaSets down, unhealthy replicas first, keeping minAvailable.
      const refreshedNew = this.cluster.store.get(types.replicaSet, newRs.metadata.namespace, newRsName)!;
      const allRs = current();
      const allPods = allRs.reduce((n, rs) => n + replicasOf(rs), 0);
      const minAvailable = replicas - maxUnavailable;
      const newUnavailable = replicasOf(refreshedNew) - availableIn(refreshedNew);
      let budget = allPods - minAvailable - newUnavailable;
      for (const old of olds) {
        if (budget <= 0) break;
        const fresh = this.cluster.store.get(types.replicaSet, old.metadata.namespace, old.metadata.name);
        if (!fresh || replicasOf(fresh) === 0) continue;
        const unhealthy = replicasOf(fresh) - availableIn(fresh);
        const cut = Math.min(unhealthy, budget);
        if (cut > 0) {
          this.scale(deployment, fresh, replicasOf(fresh) - cut);
          budget -= cut;
        }
      }
      const availableAll = current().reduce((n, rs) => n + availableIn(rs), 0);
      let scaleDown = availableAll - minAvailable;
      for (const old of olds) {
        if (scaleDown <= 0) break;
        const fresh = this.cluster.store.get(types.replicaSet, old.metadata.namespace, old.metadata.name);
        if (!fresh || replicasOf(fresh) === 0) continue;
        const cut = Math.min(replicasOf(fresh), scaleDown);
        this.scale(deployment, fresh, replicasOf(fresh) - cut);
        scaleDown -= cut;
      }
    }
    this.cleanupOldReplicaSets(deployment, newRsName);
  }

  private scale(deployment: KubeObject, rs: KubeObject, to: number): void {
    const fresh = this.cluster.store.get(types.replicaSet, rs.metadata.namespace, rs.metadata.name);
    if (!fresh) return;
    const from = num(spec(fresh).replicas);
    if (from === to) return;
    const deploySpec = spec(deployment);
    const annotations = {
      ...fresh.metadata.annotations,
      [desiredReplicasAnnotation]: String(num(deploySpec.replicas, 1)),
    };
    this.cluster.writeObject(types.replicaSet, {
      ...fresh,
      metadata: { ...fresh.metadata, annotations },
      spec: { ...spec(fresh), replicas: to },
    });
    this.cluster.recordEvent(
      deployment,
      'Normal',
      'ScalingReplicaSet',
      `Scaled ${to > from ? 'up' : 'down'} replica set ${fresh.metadata.name} from ${from} to ${to}`,
      'deployment-controller',
    );
  }

  private cleanupOldReplicaSets(deployment: KubeObject, newRsName: string): void {
    const limit = num(spec(deployment).revisionHistoryLimit, 10);
    const idle = this.replicaSetsOf(deployment)
      .filter((rs) => rs.metadata.name !== newRsName && num(spec(rs).replicas) === 0 && num(status(rs).replicas) === 0)
      .sort((a, b) => revisionOf(a) - revisionOf(b));
    for (const rs of idle.slice(0, Math.max(0, idle.length - limit))) {
      this.cluster.delete(types.replicaSet, rs.metadata.namespace, rs.metadata.name);
    }
  }

  private syncReplicaSetPods(rs: KubeObject): void {
    const desired = num(spec(rs).replicas, 1);
    const pods = this.cluster
      .ownedBy(types.pod, rs.metadata.namespace, rs.metadata.uid)
      .filter((p) => !p.metadata.deletionTimestamp);
    const template = (spec(rs).template ?? {}) as Obj;
    const templateMeta = (template.metadata ?? {}) as Obj;
    for (let i = pods.length; i < desired; i++) {
      const pod = this.cluster.create(types.pod, {
        metadata: {
          name: `${rs.metadata.name}-${randomSuffix()}`,
          namespace: rs.metadata.namespace,
          labels: { ...((templateMeta.labels ?? {}) as Record<string, string>) },
          ...(templateMeta.annotations
            ? { annotations: clone(templateMeta.annotations as Record<string, string>) }
            : {}),
          ownerReferences: [
            {
              apiVersion: 'apps/v1',
              kind: 'ReplicaSet',
              name: rs.metadata.name,
              uid: rs.metadata.uid!,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        spec: clone((template.spec ?? {}) as Obj),
      });
      this.cluster.recordEvent(
        rs,
        'Normal',
        'SuccessfulCreate',
        `Created pod: ${pod.metadata.name}`,
        'replicaset-controller',
      );
    }
    if (pods.length > desired) {
      // Not-ready pods go first, then the youngest, as the ReplicaSet controller ranks them.
      const ranked = [...pods].sort((a, b) => {
        const ready = (p: KubeObject) => (this.kubelet.isAvailable(p, 0, this.tickCount) ? 1 : 0);
        return (
          ready(a) - ready(b) ||
          String(b.metadata.creationTimestamp).localeCompare(String(a.metadata.creationTimestamp))
        );
      });
      for (const pod of ranked.slice(0, pods.length - desired)) {
        this.cluster.delete(types.pod, pod.metadata.namespace, pod.metadata.name);
        this.cluster.recordEvent(
          rs,
          'Normal',
          'SuccessfulDelete',
          `Deleted pod: ${pod.metadata.name}`,
          'replicaset-controller',
        );
      }
    }
  }

  private syncReplicaSetStatus(rs: KubeObject): void {
    const fresh = this.cluster.store.get(types.replicaSet, rs.metadata.namespace, rs.metadata.name);
    if (!fresh) return;
    const pods = this.cluster
      .ownedBy(types.pod, fresh.metadata.namespace, fresh.metadata.uid)
      .filter((p) => !p.metadata.deletionTimestamp);
    const minReadyTicks = this.ticksFor(num(spec(fresh).minReadySeconds));
    const ready = pods.filter((p) => this.kubelet.isAvailable(p, 0, this.tickCount)).length;
    const available = pods.filter((p) => this.kubelet.isAvailable(p, minReadyTicks, this.tickCount)).length;
    this.cluster.writeStatus(types.replicaSet, fresh, {
      replicas: pods.length,
      ...compactStatus({ fullyLabeledReplicas: pods.length, readyReplicas: ready, availableReplicas: available }),
      observedGeneration: fresh.metadata.generation,
    });
  }

  private setProgressing(deployment: KubeObject, conditionStatus: string, reason: string, message: string): void {
    const fresh = this.cluster.store.get(types.deployment, deployment.metadata.namespace, deployment.metadata.name);
    if (!fresh) return;
    const current = status(fresh);
    const conditions = this.withCondition(
      (current.conditions ?? []) as Obj[],
      'Progressing',
      conditionStatus,
      reason,
      message,
    );
    this.cluster.writeStatus(types.deployment, fresh, { ...current, conditions });
  }

  private withCondition(
    conditions: Obj[],
    type: string,
    conditionStatus: string,
    reason: string,
    message: string,
  ): Obj[] {
    const now = timestamp();
    const old = conditions.find((c) => c.type === type);
    if (old?.status === conditionStatus && old.reason === reason && old.message === message) return conditions;
    const condition = {
      type,
      status: conditionStatus,
      lastUpdateTime: now,
      lastTransitionTime: old?.status === conditionStatus ? old.lastTransitionTime : now,
      reason,
      message,
    };
    const others = conditions.filter((c) => c.type !== type);
    return type === 'Available' ? [condition, ...others] : [...others, condition];
  }

  private syncDeploymentStatus(deployment: KubeObject): void {
    const fresh = this.cluster.store.get(types.deployment, deployment.metadata.namespace, deployment.metadata.name);
    if (!fresh) return;
    const deploySpec = spec(fresh);
    const replicas = num(deploySpec.replicas, 1);
    const hash = hashOfTemplate(deploySpec.template);
    const all = this.replicaSetsOf(fresh);
    const newRs = all.find((rs) => hashOfTemplate(spec(rs).template) === hash);
    const minReadyTicks = this.ticksFor(num(deploySpec.minReadySeconds));
    const podsOf = (rs: KubeObject) =>
      this.cluster
        .ownedBy(types.pod, rs.metadata.namespace, rs.metadata.uid)
        .filter((p) => !p.metadata.deletionTimestamp);
    const allPods = all.flatMap(podsOf);
    const updated = newRs ? podsOf(newRs).length : 0;
    const ready = allPods.filter((p) => this.kubelet.isAvailable(p, 0, this.tickCount)).length;
    const available = allPods.filter((p) => this.kubelet.isAvailable(p, minReadyTicks, this.tickCount)).length;
    const strategy = (deploySpec.strategy ?? {}) as Obj;
    const maxUnavailable =
      strategy.type === 'Recreate'
        ? replicas
        : resolveIntOrPercent(((strategy.rollingUpdate ?? {}) as Obj).maxUnavailable ?? '25%', replicas, false);
    const previous = status(fresh);
    let conditions = (previous.conditions ?? []) as Obj[];
    conditions =
      available >= replicas - maxUnavailable
        ? this.withCondition(
            conditions,
            'Available',
            'True',
            'MinimumReplicasAvailable',
            'Deployment has minimum availability.',
          )
        : this.withCondition(
            conditions,
            'Available',
            'False',
            'MinimumReplicasUnavailable',
            'Deployment does not have minimum availability.',
          );
    if (newRs) {
      const uid = fresh.metadata.uid!;
      const progress = this.progress.get(uid) ?? { lastProgressTick: this.tickCount, snapshot: '' };
      const snapshot = JSON.stringify([updated, ready, available, allPods.length]);
      const progressed = snapshot !== progress.snapshot;
      if (progressed) this.progress.set(uid, { lastProgressTick: this.tickCount, snapshot });
      const complete =
        updated === replicas &&
        available === replicas &&
        allPods.length === replicas &&
        num(spec(newRs).replicas) === replicas;
      const progressing = conditions.find((c) => c.type === 'Progressing');
      const deadlineTicks = this.ticksFor(num(deploySpec.progressDeadlineSeconds, 600));
      if (deploySpec.paused) {
        conditions = this.withCondition(
          conditions,
          'Progressing',
          'Unknown',
          'DeploymentPaused',
          'Deployment is paused',
        );
      } else if (complete) {
        conditions = this.withCondition(
          conditions,
          'Progressing',
          'True',
          'NewReplicaSetAvailable',
          `ReplicaSet "${newRs.metadata.name}" has successfully progressed.`,
        );
      } else if (
        progressing?.reason === 'ProgressDeadlineExceeded' ||
        this.tickCount - (this.progress.get(uid)?.lastProgressTick ?? this.tickCount) >= deadlineTicks
      ) {
        conditions = this.withCondition(
          conditions,
          'Progressing',
          'False',
          'ProgressDeadlineExceeded',
          `ReplicaSet "${newRs.metadata.name}" has timed out progressing.`,
        );
      } else if (progressed || !progressing) {
        conditions = this.withCondition(
          conditions,
          'Progressing',
          'True',
          'ReplicaSetUpdated',
          `ReplicaSet "${newRs.metadata.name}" is progressing.`,
        );
      }
    }
    const next: Obj = {
      observedGeneration: fresh.metadata.generation,
      ...compactStatus({
        replicas: allPods.length,
        updatedReplicas: updated,
        readyReplicas: ready,
        availableReplicas: available,
        unavailableReplicas: Math.max(0, replicas - available),
      }),
      conditions,
    };
    if (!deepEqual(previous, next)) this.cluster.writeStatus(types.deployment, fresh, next);
  }

  private syncLoadBalancer(service: KubeObject): void {
    if (spec(service).type !== 'LoadBalancer') return;
    const ingress = ((status(service).loadBalancer ?? {}) as Obj).ingress;
    if (Array.isArray(ingress) && ingress.length > 0) return;
    const uid = service.metadata.uid!;
    const seen = this.loadBalancerSeen.get(uid);
    if (seen === undefined) {
      this.loadBalancerSeen.set(uid, this.tickCount);
      this.cluster.recordEvent(
        service,
        'Normal',
        'EnsuringLoadBalancer',
        'Ensuring load balancer',
        'service-controller',
      );
      return;
    }
    this.cluster.writeStatus(types.service, service, {
      loadBalancer: { ingress: [{ ip: '127.0.0.1', ipMode: 'VIP' }] },
    });
    this.cluster.recordEvent(service, 'Normal', 'EnsuredLoadBalancer', 'Ensured load balancer', 'service-controller');
  }

  /** Pods a Service routes to: selected and Ready, as the endpoints controller publishes them. */
  readyEndpoints(service: KubeObject): KubeObject[] {
    const selector = spec(service).selector as Record<string, string> | undefined;
    return this.cluster.store
      .list(types.pod, service.metadata.namespace)
      .filter((p) => mapSelectorMatches(selector, p.metadata.labels) && this.kubelet.isAvailable(p, 0, this.tickCount));
  }

  private syncHpa(hpa: KubeObject): void {
    const hpaSpec = spec(hpa);
    const target = (hpaSpec.scaleTargetRef ?? {}) as Obj;
    const min = num(hpaSpec.minReplicas, 1);
    const max = num(hpaSpec.maxReplicas, min);
    const deployment =
      target.kind === 'Deployment'
        ? this.cluster.store.get(types.deployment, hpa.metadata.namespace, String(target.name))
        : undefined;
    const previous = status(hpa);
    if (!deployment) {
      const conditions = this.withCondition(
        (previous.conditions ?? []) as Obj[],
        'AbleToScale',
        'False',
        'FailedGetScale',
        `the HPA controller was unable to get the target's current scale: deployments/scale.apps "${String(target.name)}" not found`,
      );
      this.cluster.writeStatus(types.hpa, hpa, { ...previous, currentReplicas: 0, desiredReplicas: 0, conditions });
      return;
    }
    const currentReplicas = num(spec(deployment).replicas, 1);
    const desiredReplicas = Math.min(max, Math.max(min, currentReplicas));
    if (desiredReplicas !== currentReplicas) {
      this.cluster.writeObject(types.deployment, {
        ...deployment,
        spec: { ...spec(deployment), replicas: desiredReplicas },
      });
    }
    let conditions = (previous.conditions ?? []) as Obj[];
    conditions = this.withCondition(
      conditions,
      'AbleToScale',
      'True',
      'ReadyForNewScale',
      'recommended size matches current size',
    );
    conditions = this.withCondition(
      conditions,
      'ScalingActive',
      'True',
      'ValidMetricFound',
      'the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)',
    );
    conditions = this.withCondition(
      conditions,
      'ScalingLimited',
      desiredReplicas === currentReplicas ? 'False' : 'True',
      desiredReplicas === currentReplicas ? 'DesiredWithinRange' : 'TooFewReplicas',
      'the desired count is within the acceptable range',
    );
    const next = {
      currentReplicas,
      desiredReplicas,
      currentMetrics: [
        { type: 'Resource', resource: { name: 'cpu', current: { averageUtilization: 5, averageValue: '5m' } } },
      ],
      conditions,
    };
    if (!deepEqual(previous, next)) this.cluster.writeStatus(types.hpa, hpa, next);
  }

  private syncPdb(pdb: KubeObject): void {
    const pdbSpec = spec(pdb);
    const pods = this.cluster.store
      .list(types.pod, pdb.metadata.namespace)
      .filter((p) => labelSelectorMatches(pdbSpec.selector as LabelSelectorSpec, p.metadata.labels));
    const expectedPods = pods.length;
    const currentHealthy = pods.filter((p) => this.kubelet.isAvailable(p, 0, this.tickCount)).length;
    const desiredHealthy =
      pdbSpec.minAvailable !== undefined
        ? resolveIntOrPercent(pdbSpec.minAvailable, expectedPods, true)
        : Math.max(0, expectedPods - resolveIntOrPercent(pdbSpec.maxUnavailable ?? 0, expectedPods, true));
    const disruptionsAllowed = Math.max(0, currentHealthy - desiredHealthy);
    const previous = status(pdb);
    const conditions =
      disruptionsAllowed > 0
        ? this.withCondition((previous.conditions ?? []) as Obj[], 'DisruptionAllowed', 'True', 'SufficientPods', '')
        : this.withCondition(
            (previous.conditions ?? []) as Obj[],
            'DisruptionAllowed',
            'False',
            'InsufficientPods',
            '',
          );
    const next = {
      observedGeneration: pdb.metadata.generation,
      disruptionsAllowed,
      currentHealthy,
      desiredHealthy,
      expectedPods,
      conditions,
    };
    if (!deepEqual(previous, next)) this.cluster.writeStatus(types.pdb, pdb, next);
  }
}
