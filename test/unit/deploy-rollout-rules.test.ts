import * as assert from 'node:assert/strict';

import { describeEvents, diagnosePod, type PodLike } from '../../tasks/common/kube/podDiagnosis';
import {
  daemonSetRolloutState,
  type DeploymentLike,
  deploymentRolloutState,
  statefulSetRolloutState,
} from '../../tasks/common/kube/rolloutStatus';

const deployment = (
  spec: { replicas?: number; generation?: number },
  status: DeploymentLike['status'],
): DeploymentLike => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'scoring', generation: spec.generation ?? 2 },
  spec: { replicas: spec.replicas ?? 3 },
  status,
});

describe('rollout status rules (as kubectl rollout status)', () => {
  it('waits until the controller has observed the new generation', () => {
    const s = deploymentRolloutState(
      deployment({ generation: 3 }, { observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 3 }),
    );
    assert.equal(s.done, false);
    assert.match(s.message, /spec update to be observed/);
  });

  it('waits for updated, then old replicas to go, then available', () => {
    assert.match(
      deploymentRolloutState(
        deployment({}, { observedGeneration: 2, replicas: 4, updatedReplicas: 1, availableReplicas: 3 }),
      ).message,
      /1 out of 3 new replicas have been updated/,
    );
    assert.match(
      deploymentRolloutState(
        deployment({}, { observedGeneration: 2, replicas: 4, updatedReplicas: 3, availableReplicas: 3 }),
      ).message,
      /1 old replicas are pending termination/,
    );
    assert.match(
      deploymentRolloutState(
        deployment(
          {},
          { observedGeneration: 2, replicas: 3, updatedReplicas: 3, readyReplicas: 1, availableReplicas: 1 },
        ),
      ).message,
      /1 of 3 updated replicas are available \(1 ready\)/,
    );
    const done = deploymentRolloutState(
      deployment(
        {},
        { observedGeneration: 2, replicas: 3, updatedReplicas: 3, readyReplicas: 3, availableReplicas: 3 },
      ),
    );
    assert.equal(done.done, true);
    assert.equal(done.percent, 100);
  });

  it('fails on ProgressDeadlineExceeded', () => {
    const s = deploymentRolloutState(
      deployment(
        {},
        {
          observedGeneration: 2,
          replicas: 4,
          updatedReplicas: 1,
          conditions: [
            {
              type: 'Progressing',
              status: 'False',
              reason: 'ProgressDeadlineExceeded',
              message: 'ReplicaSet "scoring-abc" has timed out progressing.',
            },
          ],
        },
      ),
    );
    assert.equal(s.done, false);
    assert.match(s.failed!, /exceeded its progress deadline: ReplicaSet "scoring-abc" has timed out/);
  });

  it('treats a Deployment scaled to zero as rolled out once observed', () => {
    assert.equal(deploymentRolloutState(deployment({ replicas: 0 }, { observedGeneration: 2 })).done, true);
  });

  it('has the StatefulSet and DaemonSet rules too', () => {
    const sts = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db', generation: 1 },
      spec: { replicas: 2 },
    };
    assert.match(
      statefulSetRolloutState({ ...sts, status: { observedGeneration: 1, readyReplicas: 1 } }).message,
      /Waiting for 1 pods to be ready/,
    );
    assert.match(
      statefulSetRolloutState({
        ...sts,
        status: {
          observedGeneration: 1,
          readyReplicas: 2,
          currentRevision: 'a',
          updateRevision: 'b',
          updatedReplicas: 1,
        },
      }).message,
      /rolling update to complete 1 pods at revision b/,
    );
    assert.equal(
      statefulSetRolloutState({
        ...sts,
        status: { observedGeneration: 1, readyReplicas: 2, currentRevision: 'b', updateRevision: 'b' },
      }).done,
      true,
    );
    const ds = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'agent', generation: 1 } };
    assert.match(
      daemonSetRolloutState({
        ...ds,
        status: { observedGeneration: 1, desiredNumberScheduled: 3, updatedNumberScheduled: 3, numberAvailable: 2 },
      }).message,
      /2 of 3 updated pods are available/,
    );
  });
});

const pod = (status: PodLike['status']): PodLike => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'scoring-abc-x1' },
  status,
});

describe('pod diagnosis', () => {
  it('reads image pull trouble; only the back-off is fatal', () => {
    const pull = diagnosePod(
      pod({
        phase: 'Pending',
        containerStatuses: [{ name: 'app', state: { waiting: { reason: 'ErrImagePull', message: 'not found' } } }],
      }),
    );
    assert.equal(pull[0].reason, 'ErrImagePull');
    assert.equal(pull[0].fatal, false);
    const backoff = diagnosePod(
      pod({
        phase: 'Pending',
        containerStatuses: [
          { name: 'app', state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image' } } },
        ],
      }),
    );
    assert.equal(backoff[0].fatal, true);
    assert.match(backoff[0].message, /image pull secret/);
  });

  it('reports an OOM kill ahead of the crash loop it causes', () => {
    const p = diagnosePod(
      pod({
        phase: 'Running',
        containerStatuses: [
          {
            name: 'app',
            restartCount: 2,
            state: { waiting: { reason: 'CrashLoopBackOff' } },
            lastState: { terminated: { reason: 'OOMKilled', exitCode: 137 } },
          },
        ],
      }),
    );
    assert.equal(p.length, 1);
    assert.equal(p[0].reason, 'OOMKilled');
    assert.equal(p[0].fatal, true);
  });

  it('reports a crash loop with its last exit code', () => {
    const p = diagnosePod(
      pod({
        phase: 'Running',
        containerStatuses: [
          {
            name: 'app',
            restartCount: 3,
            state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s' } },
            lastState: { terminated: { reason: 'Error', exitCode: 1 } },
          },
        ],
      }),
    );
    assert.match(p[0].message, /CrashLoopBackOff: back-off 40s \(last exit code 1, Error; 3 restarts\)/);
  });

  it('reports an unschedulable pod as worth waiting for (an autoscaler may add a node)', () => {
    const p = diagnosePod(
      pod({
        phase: 'Pending',
        conditions: [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message: '0/3 nodes are available: 3 Insufficient memory.',
          },
        ],
      }),
    );
    assert.equal(p[0].reason, 'Unschedulable');
    assert.equal(p[0].fatal, false);
    assert.match(p[0].message, /Insufficient memory/);
  });

  it('reports running-but-not-ready containers, and nothing for healthy pods', () => {
    assert.equal(
      diagnosePod(
        pod({ phase: 'Running', containerStatuses: [{ name: 'app', ready: false, state: { running: {} } }] }),
      )[0].reason,
      'ReadinessFailing',
    );
    assert.deepEqual(
      diagnosePod(pod({ phase: 'Running', containerStatuses: [{ name: 'app', ready: true, state: { running: {} } }] })),
      [],
    );
  });

  it('keeps warning events, newest last, with their counts', () => {
    const ev = (reason: string, type: string, at: string, count = 1) => ({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: reason },
      reason,
      type,
      message: `${reason} happened`,
      lastTimestamp: at,
      count,
    });
    const lines = describeEvents([
      ev('Unhealthy', 'Warning', '2026-01-01T00:00:05Z', 7),
      ev('Scheduled', 'Normal', '2026-01-01T00:00:01Z'),
      ev('BackOff', 'Warning', '2026-01-01T00:00:03Z'),
    ]);
    assert.deepEqual(lines, ['BackOff: BackOff happened', 'Unhealthy: Unhealthy happened (×7)']);
  });
});
