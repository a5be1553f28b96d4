/**
 * Whether a workload's rollout is complete, by the rules `kubectl rollout status` uses
 * (k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go), as pure functions of the object.
 */
import type { KubeObject } from './objects';

export interface RolloutState {
  done: boolean;
  /** Set when the rollout can no longer succeed by waiting (the progress deadline passed). */
  failed?: string;
  /** What is being waited on, worded like kubectl's. */
  message: string;
  /** 0–100, for the progress bar. */
  percent: number;
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface DeploymentLike extends KubeObject {
  spec?: {
    replicas?: number;
    progressDeadlineSeconds?: number;
    template?: unknown;
    selector?: { matchLabels?: Record<string, string> };
  };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    readyReplicas?: number;
    availableReplicas?: number;
    unavailableReplicas?: number;
    conditions?: Condition[];
  };
}

const percentOf = (n: number, of: number) => (of <= 0 ? 100 : Math.min(100, Math.round((100 * n) / of)));

export function deploymentRolloutState(d: DeploymentLike): RolloutState {
  const name = d.metadata.name;
  const status = d.status ?? {};
  const generation = d.metadata.generation ?? 0;
  if (generation > (status.observedGeneration ?? 0)) {
    return { done: false, message: 'Waiting for deployment spec update to be observed...', percent: 0 };
  }
  const progressing = status.conditions?.find((c) => c.type === 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') {
    return {
      done: false,
      failed: `deployment "${name}" exceeded its progress deadline${progressing.message ? `: ${progressing.message}` : ''}`,
      message: 'progress deadline exceeded',
      percent: 0,
    };
  }
  const desired = d.spec?.replicas ?? 1;
  const updated = status.updatedReplicas ?? 0;
  const total = status.replicas ?? 0;
  const ready = status.readyReplicas ?? 0;
  const available = status.availableReplicas ?? 0;
  // Weight the three stages so the bar moves through the whole rollout, not only its first step.
  const percent = Math.round(
    (percentOf(updated, desired) +
      percentOf(Math.min(ready, updated), desired) +
      percentOf(Math.min(available, updated), desired)) /
      3,
  );
  if (updated < desired) {
    return {
      done: false,
      message: `Waiting for deployment "${name}" rollout to finish: ${updated} out of ${desired} new replicas have been updated...`,
      percent,
    };
  }
  if (total > updated) {
    return {
      done: false,
      message: `Waiting for deployment "${name}" rollout to finish: ${total - updated} old replicas are pending termination...`,
      percent: Math.min(percent, 99),
    };
  }
  if (available < updated) {
    const readyNote = ready < updated ? ` (${ready} ready)` : '';
    return {
      done: false,
      message: `Waiting for deployment "${name}" rollout to finish: ${available} of ${updated} updated replicas are available${readyNote}...`,
      percent,
    };
  }
  return { done: true, message: `deployment "${name}" successfully rolled out`, percent: 100 };
}

export interface StatefulSetLike extends KubeObject {
  spec?: { replicas?: number; updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } } };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    readyReplicas?: number;
    updatedReplicas?: number;
    currentRevision?: string;
    updateRevision?: string;
  };
}

export function statefulSetRolloutState(s: StatefulSetLike): RolloutState {
  const status = s.status ?? {};
  if (s.spec?.updateStrategy?.type === 'OnDelete') {
    return {
      done: true,
      message: `statefulset "${s.metadata.name}" uses the OnDelete update strategy: its rollout cannot be watched`,
      percent: 100,
    };
  }
  if (!status.observedGeneration || (s.metadata.generation ?? 0) > status.observedGeneration) {
    return { done: false, message: 'Waiting for statefulset spec update to be observed...', percent: 0 };
  }
  const desired = s.spec?.replicas ?? 1;
  const ready = status.readyReplicas ?? 0;
  if (ready < desired) {
    return {
      done: false,
      message: `Waiting for ${desired - ready} pods to be ready...`,
      percent: percentOf(ready, desired),
    };
  }
  const partition = s.spec?.updateStrategy?.rollingUpdate?.partition ?? 0;
  if (partition > 0) {
    const updated = status.updatedReplicas ?? 0;
    if (updated < desired - partition) {
      return {
        done: false,
        message: `Waiting for partitioned roll out to finish: ${updated} out of ${desired - partition} new pods have been updated...`,
        percent: percentOf(updated, desired - partition),
      };
    }
    return {
      done: true,
      message: `partitioned roll out complete: ${updated} new pods have been updated...`,
      percent: 100,
    };
  }
  if (status.updateRevision !== status.currentRevision) {
    return {
      done: false,
      message: `waiting for statefulset rolling update to complete ${status.updatedReplicas ?? 0} pods at revision ${status.updateRevision}...`,
      percent: percentOf(status.updatedReplicas ?? 0, desired),
    };
  }
  return {
    done: true,
    message: `statefulset rolling update complete ${status.currentRevision ? `${desired} pods at revision ${status.currentRevision}` : ''}...`,
    percent: 100,
  };
}

export interface DaemonSetLike extends KubeObject {
  spec?: { updateStrategy?: { type?: string } };
  status?: {
    observedGeneration?: number;
    desiredNumberScheduled?: number;
    updatedNumberScheduled?: number;
    numberAvailable?: number;
  };
}

export function daemonSetRolloutState(ds: DaemonSetLike): RolloutState {
  const name = ds.metadata.name;
  if (ds.spec?.updateStrategy?.type === 'OnDelete') {
    return {
      done: true,
      message: `daemon set "${name}" uses the OnDelete update strategy: its rollout cannot be watched`,
      percent: 100,
    };
  }
  const status = ds.status ?? {};
  if ((ds.metadata.generation ?? 0) > (status.observedGeneration ?? 0)) {
    return { done: false, message: 'Waiting for daemon set spec update to be observed...', percent: 0 };
  }
  const desired = status.desiredNumberScheduled ?? 0;
  const updated = status.updatedNumberScheduled ?? 0;
  const available = status.numberAvailable ?? 0;
  if (updated < desired) {
    return {
      done: false,
      message: `Waiting for daemon set "${name}" rollout to finish: ${updated} out of ${desired} new pods have been updated...`,
      percent: percentOf(updated, desired),
    };
  }
  if (available < desired) {
    return {
      done: false,
      message: `Waiting for daemon set "${name}" rollout to finish: ${available} of ${desired} updated pods are available...`,
      percent: percentOf(available, desired),
    };
  }
  return { done: true, message: `daemon set "${name}" successfully rolled out`, percent: 100 };
}

/** The rule for a kind, or undefined for kinds with no rollout (Services, ConfigMaps...). */
export function rolloutStateOf(obj: KubeObject): RolloutState | undefined {
  switch (obj.kind) {
    case 'Deployment':
      return deploymentRolloutState(obj);
    case 'StatefulSet':
      return statefulSetRolloutState(obj);
    case 'DaemonSet':
      return daemonSetRolloutState(obj);
    default:
      return undefined;
  }
}
