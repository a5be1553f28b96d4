/**
 * What is wrong with a pod, read from its status the way a person reads `kubectl describe pod`:
 * image pulls, crash loops, OOM kills, scheduling, readiness. Pure functions; the caller fetches
 * pods, events and logs.
 */
import type { KubeObject } from './objects';

export type PodProblemReason =
  | 'ImagePullBackOff'
  | 'ErrImagePull'
  | 'InvalidImageName'
  | 'CrashLoopBackOff'
  | 'OOMKilled'
  | 'CreateContainerConfigError'
  | 'CreateContainerError'
  | 'Unschedulable'
  | 'ReadinessFailing'
  | 'Failed';

export interface PodProblem {
  pod: string;
  container?: string;
  reason: PodProblemReason;
  message: string;
  /** Waiting will not fix it: the kubelet is already backing off (a bad image, a crashing app). */
  fatal: boolean;
  restarts: number;
}

interface ContainerState {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: { reason?: string; message?: string; exitCode?: number };
}

interface ContainerStatus {
  name: string;
  ready?: boolean;
  started?: boolean;
  restartCount?: number;
  image?: string;
  state?: ContainerState;
  lastState?: ContainerState;
}

export interface PodLike extends KubeObject {
  spec?: { containers?: Array<{ name: string; image?: string }>; nodeName?: string };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    conditions?: Array<{
      type: string;
      status: string;
      reason?: string;
      message?: string;
      lastTransitionTime?: string;
    }>;
    containerStatuses?: ContainerStatus[];
    initContainerStatuses?: ContainerStatus[];
  };
}

export interface EventLike extends KubeObject {
  involvedObject?: { kind?: string; name?: string; uid?: string };
  reason?: string;
  message?: string;
  type?: string;
  count?: number;
  lastTimestamp?: string;
  eventTime?: string;
  series?: { count?: number };
}

const FATAL_WAITING = new Set([
  'ImagePullBackOff',
  'InvalidImageName',
  'CrashLoopBackOff',
  'CreateContainerConfigError',
  'CreateContainerError',
]);
const REPORTED_WAITING = new Set([...FATAL_WAITING, 'ErrImagePull']);

function containerProblems(pod: string, status: ContainerStatus, init: boolean): PodProblem[] {
  const restarts = status.restartCount ?? 0;
  const container = init ? `${status.name} (init)` : status.name;
  const waiting = status.state?.waiting;
  const lastTerminated = status.lastState?.terminated;
  const terminated = status.state?.terminated;
  // An OOM kill shows as CrashLoopBackOff with the kill in lastState: the kill is the news.
  if (terminated?.reason === 'OOMKilled' || lastTerminated?.reason === 'OOMKilled') {
    return [
      {
        pod,
        container,
        reason: 'OOMKilled',
        message: `container ${container} was killed for using more memory than its limit (OOMKilled, exit code ${(terminated ?? lastTerminated)?.exitCode ?? 137}); raise the memory limit or lower the model's memory use`,
        fatal: restarts >= 1 || waiting?.reason === 'CrashLoopBackOff',
        restarts,
      },
    ];
  }
  if (waiting?.reason && REPORTED_WAITING.has(waiting.reason)) {
    const reason = waiting.reason as PodProblemReason;
    let message = `container ${container} is waiting: ${reason}${waiting.message ? `: ${waiting.message}` : ''}`;
    if (reason === 'CrashLoopBackOff' && lastTerminated) {
      message += ` (last exit code ${lastTerminated.exitCode ?? '?'}${lastTerminated.reason ? `, ${lastTerminated.reason}` : ''}; ${restarts} restarts)`;
    }
    if (reason === 'ImagePullBackOff' || reason === 'ErrImagePull') {
      message +=
        '; check the image exists and that the cluster may pull it (AKS attached to the ACR, or an image pull secret)';
    }
    return [{ pod, container, reason, message, fatal: FATAL_WAITING.has(reason), restarts }];
  }
  if (terminated && !init && terminated.reason !== 'Completed') {
    return [
      {
        pod,
        container,
        reason: 'Failed',
        message: `container ${container} terminated: ${terminated.reason ?? 'Error'} (exit code ${terminated.exitCode ?? '?'})${terminated.message ? `: ${terminated.message}` : ''}`,
        fatal: false,
        restarts,
      },
    ];
  }
  return [];
}

export function diagnosePod(pod: PodLike): PodProblem[] {
  const name = pod.metadata.name ?? '(unnamed)';
  const status = pod.status ?? {};
  const problems: PodProblem[] = [];
  const scheduled = status.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    problems.push({
      pod: name,
      reason: 'Unschedulable',
      message: `pod cannot be scheduled: ${scheduled.message ?? 'no node fits'}; lower the resource requests or add nodes`,
      fatal: false,
      restarts: 0,
    });
    return problems;
  }
  if (status.phase === 'Failed') {
    problems.push({
      pod: name,
      reason: 'Failed',
      message: `pod failed: ${status.reason ?? ''} ${status.message ?? ''}`.trim(),
      fatal: true,
      restarts: 0,
    });
  }
  for (const s of status.initContainerStatuses ?? []) problems.push(...containerProblems(name, s, true));
  for (const s of status.containerStatuses ?? []) problems.push(...containerProblems(name, s, false));
  if (problems.length === 0 && status.phase === 'Running') {
    const notReady = (status.containerStatuses ?? []).filter((s) => s.state?.running && s.ready === false);
    for (const s of notReady) {
      problems.push({
        pod: name,
        container: s.name,
        reason: 'ReadinessFailing',
        message: `container ${s.name} is running but not ready (its readiness probe is failing)`,
        fatal: false,
        restarts: s.restartCount ?? 0,
      });
    }
  }
  return problems;
}

/** Recent warning events for one object, newest last, as "Reason: message (×n)". */
export function describeEvents(events: EventLike[], limit = 5): string[] {
  const timeOf = (e: EventLike) =>
    Date.parse(e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp ?? '') || 0;
  return events
    .filter((e) => e.type !== 'Normal' || /Unhealthy|BackOff|Failed|Killing/.test(e.reason ?? ''))
    .sort((a, b) => timeOf(a) - timeOf(b))
    .slice(-limit)
    .map((e) => {
      const count = e.series?.count ?? e.count ?? 1;
      return `${e.reason ?? 'Event'}: ${(e.message ?? '').trim()}${count > 1 ? ` (×${count})` : ''}`;
    });
}

/** The last lines of a log, trimmed for a task log or summary. */
export function lastLogLines(log: string, lines = 10): string[] {
  return log.replace(/\s+$/, '').split(/\r?\n/).slice(-lines);
}
