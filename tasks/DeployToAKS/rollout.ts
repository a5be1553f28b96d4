/**
 * Waits for a Deployment's rollout with two watches (the Deployment, and its pods), judging
 * completion by `kubectl rollout status` rules and reporting pod trouble as it appears:
 * image pulls, crash loops (with the last log lines), OOM kills, scheduling, readiness.
 */
import type { KubeClient } from '../common/kube/client';
import { type KubeList, type KubeObject, labelSelectorQuery, mappingOf, resourcePath } from '../common/kube/objects';
import {
  describeEvents,
  diagnosePod,
  type EventLike,
  lastLogLines,
  type PodLike,
  type PodProblem,
} from '../common/kube/podDiagnosis';
import { type DeploymentLike, deploymentRolloutState, type RolloutState } from '../common/kube/rolloutStatus';
import type { WaitProgress } from '../common/progress';
import { backoffDelay } from '../common/retry';

export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';

export interface DiagnosedProblem extends PodProblem {
  events: string[];
  logs: string[];
}

export interface RolloutOutcome {
  ok: boolean;
  /** One line: why it failed. */
  reason?: string;
  deployment: DeploymentLike;
  problems: DiagnosedProblem[];
  /** When the watch saw the Deployment complete (ms since epoch). */
  completedAt?: number;
}

export interface RolloutWaitOptions {
  timeoutMs: number;
  failOnPodErrors: boolean;
  progress?: WaitProgress;
  log: (line: string) => void;
  /** Watch request length; short in tests so a lost stream is noticed quickly. */
  watchSeconds?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function revisionOf(obj: KubeObject | undefined): number | undefined {
  const value = obj?.metadata.annotations?.[REVISION_ANNOTATION];
  return value === undefined ? undefined : Number(value);
}

export class RolloutWaiter {
  /** ReplicaSet name → its revision, and the Deployment revision it was last looked up for: each is fetched once per revision. */
  private readonly replicaSetRevision = new Map<string, Promise<{ revision?: number; checkedAt: number }>>();
  private readonly reported = new Map<string, DiagnosedProblem>();

  constructor(
    private readonly client: KubeClient,
    private readonly namespace: string,
    private readonly opts: RolloutWaitOptions,
  ) {}

  async waitForDeployment(start: DeploymentLike): Promise<RolloutOutcome> {
    const name = start.metadata.name!;
    const deadline = Date.now() + this.opts.timeoutMs;
    const abort = new AbortController();
    let deployment = start;
    let state: RolloutState = deploymentRolloutState(deployment);
    let verdict: { ok: boolean; reason?: string; at?: number } | undefined;
    let fatalPod: DiagnosedProblem | undefined;
    const decide = (v: { ok: boolean; reason?: string; at?: number }) => {
      if (verdict) return;
      verdict = v;
      abort.abort();
    };
    const judge = () => {
      state = deploymentRolloutState(deployment);
      this.opts.progress?.update(state.message, state.percent);
      if (state.done) decide({ ok: true, at: Date.now() });
      else if (state.failed) decide({ ok: false, reason: state.failed });
    };
    judge();
    const timer = setTimeout(
      () =>
        decide({
          ok: false,
          reason: `the rollout of deployment "${name}" did not finish within ${Math.round(this.opts.timeoutMs / 1000)} s: ${state.message}`,
        }),
      Math.max(0, deadline - Date.now()),
    );
    const ticker = setInterval(() => this.opts.progress?.update(state.message, state.percent), 1000);
    const deploymentsPath = resourcePath(mappingOf('Deployment'), this.namespace);
    const selector = labelSelectorQuery(deployment.spec?.selector?.matchLabels);
    try {
      if (!abort.signal.aborted) {
        const stopAllOnError = (err: unknown) => {
          abort.abort();
          throw err;
        };
        await Promise.all([
          this.watchLoop(
            deploymentsPath,
            { fieldSelector: `metadata.name=${name}` },
            deployment.metadata.resourceVersion,
            abort.signal,
            (obj, type) => {
              if (type === 'DELETED')
                return decide({ ok: false, reason: `deployment "${name}" was deleted while its rollout was watched` });
              deployment = obj;
              judge();
            },
          ).catch(stopAllOnError),
          selector
            ? this.watchPods(
                selector,
                abort.signal,
                () => deployment,
                async (problem) => {
                  if (this.opts.failOnPodErrors && problem.fatal && !fatalPod) {
                    fatalPod = problem;
                    decide({ ok: false, reason: `pod ${problem.pod}: ${problem.message}` });
                  }
                },
              ).catch(stopAllOnError)
            : Promise.resolve(),
        ]);
      }
    } finally {
      clearTimeout(timer);
      clearInterval(ticker);
    }
    const final: { ok: boolean; reason?: string; at?: number } = verdict ?? {
      ok: false,
      reason: 'the rollout watch ended unexpectedly',
    };
    if (final.ok) {
      this.opts.progress?.update(state.message, 100, true);
      return { ok: true, deployment, problems: [...this.reported.values()], completedAt: final.at };
    }
    // A failure gets a last full look at the new pods, readiness included, with their events.
    await this.finalDiagnosis(deployment, selector);
    return { ok: false, reason: final.reason, deployment, problems: [...this.reported.values()] };
  }

  /** LIST then WATCH from the list's resourceVersion; watch again when the stream ends, re-list on 410 Gone. */
  private async watchLoop(
    path: string,
    query: { fieldSelector?: string; labelSelector?: string },
    fromVersion: string | undefined,
    signal: AbortSignal,
    onObject: (obj: KubeObject, type: string) => void | Promise<void>,
  ): Promise<void> {
    let resourceVersion = fromVersion;
    let quickFailures = 0;
    while (!signal.aborted) {
      if (resourceVersion === undefined) {
        const list = await this.client.mustGet<KubeList>(path, query);
        for (const item of list.items) await onObject(item, 'ADDED');
        resourceVersion = list.metadata.resourceVersion;
        if (signal.aborted) return;
      }
      const began = Date.now();
      let events = 0;
      const result = await this.client
        .watch(
          path,
          { ...query, resourceVersion, timeoutSeconds: this.opts.watchSeconds ?? 60 },
          (event) => {
            events++;
            void onObject(event.object, event.type);
            return signal.aborted;
          },
          signal,
        )
        .catch((err: unknown) => {
          if (signal.aborted) return { stopped: true, gone: false, resourceVersion };
          throw err;
        });
      if (result.stopped || signal.aborted) return;
      if (result.gone) resourceVersion = undefined;
      else resourceVersion = result.resourceVersion ?? resourceVersion;
      // A stream that ends at once, again and again, is a fault; back off instead of spinning.
      quickFailures = events === 0 && Date.now() - began < 1000 ? quickFailures + 1 : 0;
      if (quickFailures > 0) await sleep(backoffDelay(quickFailures, { baseDelayMs: 200, maxDelayMs: 5000 }));
    }
  }

  private watchPods(
    selector: string,
    signal: AbortSignal,
    currentDeployment: () => DeploymentLike,
    onProblem: (p: DiagnosedProblem) => Promise<void>,
  ): Promise<void> {
    const podsPath = resourcePath(mappingOf('Pod'), this.namespace);
    return this.watchLoop(podsPath, { labelSelector: selector }, undefined, signal, async (obj, type) => {
      if (type === 'DELETED') return;
      const pod = obj as PodLike;
      if (!(await this.isOfCurrentRevision(pod, currentDeployment()))) return;
      for (const problem of diagnosePod(pod).filter((p) => p.reason !== 'ReadinessFailing')) {
        const diagnosed = await this.report(pod, problem);
        if (diagnosed) await onProblem(diagnosed);
      }
    });
  }

  /**
   * Whether the pod belongs to the Deployment's newest ReplicaSet: old pods' trouble is not this
   * rollout's. Until the controller has observed the new spec, the newest ReplicaSet is not known.
   */
  private async isOfCurrentRevision(pod: PodLike, deployment: DeploymentLike): Promise<boolean> {
    if ((deployment.metadata.generation ?? 0) > (deployment.status?.observedGeneration ?? 0)) return false;
    const owner = pod.metadata.ownerReferences?.find((o) => o.kind === 'ReplicaSet' && o.controller !== false);
    const current = revisionOf(deployment);
    if (!owner || current === undefined) return false;
    // Pod events arrive in bursts: the lookup is shared while in flight, so each ReplicaSet is fetched once.
    let pending = this.replicaSetRevision.get(owner.name);
    const known = pending ? await pending : undefined;
    // A rollback gives an old ReplicaSet a new revision number, so an older answer is looked up again once per revision.
    if (!known || (known.checkedAt < current && (known.revision === undefined || known.revision < current))) {
      if (this.replicaSetRevision.get(owner.name) === pending) {
        pending = this.client.get<KubeObject>(resourcePath(mappingOf('ReplicaSet'), this.namespace, owner.name)).then(
          (rs) => {
            const ownedHere = rs?.metadata.ownerReferences?.some(
              (o) => o.kind === 'Deployment' && o.uid === deployment.metadata.uid,
            );
            return { revision: ownedHere ? revisionOf(rs) : undefined, checkedAt: current };
          },
          () => ({ revision: undefined, checkedAt: -1 }),
        );
        this.replicaSetRevision.set(owner.name, pending);
      }
    }
    const answer = await this.replicaSetRevision.get(owner.name)!;
    return answer.revision !== undefined && answer.revision >= current;
  }

  /** Logs a problem the first time it is seen for a pod, with the pod's events and (for crashes) its last log lines. */
  private async report(pod: PodLike, problem: PodProblem): Promise<DiagnosedProblem | undefined> {
    const key = `${problem.pod}/${problem.container ?? ''}/${problem.reason}`;
    const seen = this.reported.get(key);
    if (seen) {
      // Keep the most serious view (a back-off after a first failed pull turns fatal).
      if (problem.fatal && !seen.fatal) Object.assign(seen, problem);
      return problem.fatal ? seen : undefined;
    }
    const diagnosed: DiagnosedProblem = { ...problem, events: [], logs: [] };
    this.reported.set(key, diagnosed);
    const eventsPath = resourcePath(mappingOf('Event'), this.namespace);
    const events = await this.client
      .get<KubeList<EventLike>>(eventsPath, {
        fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${problem.pod}`,
      })
      .catch(() => undefined);
    diagnosed.events = describeEvents(events?.items ?? []);
    if (
      (problem.reason === 'CrashLoopBackOff' || problem.reason === 'OOMKilled' || problem.reason === 'Failed') &&
      problem.container
    ) {
      diagnosed.logs = await this.lastLogs(pod, problem.container.replace(/ \(init\)$/, ''));
    }
    this.opts.log(`Pod ${problem.pod}: ${problem.reason}: ${problem.message}`);
    for (const e of diagnosed.events) this.opts.log(`    event ${e}`);
    if (diagnosed.logs.length) {
      this.opts.log(`    last log lines of container ${problem.container}:`);
      for (const l of diagnosed.logs) this.opts.log(`    | ${l}`);
    }
    return diagnosed;
  }

  private async lastLogs(pod: PodLike, container: string): Promise<string[]> {
    const logPath = `${resourcePath(mappingOf('Pod'), this.namespace, pod.metadata.name)}/log`;
    for (const previous of [true, false]) {
      // The crashed instance's log is the one that says why; the running one may have just started.
      const text = await this.client
        .text(logPath, { container, previous: previous ? 'true' : undefined, tailLines: 20 })
        .catch(() => undefined);
      if (text?.trim()) return lastLogLines(text, 10);
    }
    return [];
  }

  private async finalDiagnosis(deployment: DeploymentLike, selector: string): Promise<void> {
    if (!selector) return;
    const pods = await this.client
      .get<KubeList<PodLike>>(resourcePath(mappingOf('Pod'), this.namespace), { labelSelector: selector })
      .catch(() => undefined);
    for (const pod of pods?.items ?? []) {
      if (!(await this.isOfCurrentRevision(pod, deployment).catch(() => false))) continue;
      for (const problem of diagnosePod(pod)) await this.report(pod, problem).catch(() => undefined);
    }
  }
}
