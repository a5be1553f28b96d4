/**
 * The same deploy → update → failed update → rollback → reject flow against a real cluster, when
 * E2E_KUBECONFIG names a kubeconfig file (skipped otherwise). E2E_IMAGE and E2E_IMAGE_2 are two
 * pullable images serving /readyz on E2E_PORT (default 8080); E2E_NAMESPACE defaults to
 * model-delivery-e2e and is created if missing.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';

import { bundleTasks } from '../support/bundle';
import { describeRun, runTask, type RunTaskOptions } from '../support/taskRunner';

const kubeconfigFile = process.env.E2E_KUBECONFIG;

describe('DeployToAKS (bundled) against a real cluster (E2E_KUBECONFIG)', function () {
  this.timeout(15 * 60_000);

  before(function () {
    if (!kubeconfigFile) {
      console.log(
        '      (skipped: set E2E_KUBECONFIG to a kubeconfig file, and E2E_IMAGE / E2E_IMAGE_2 to two pullable images, to run these against a real cluster)',
      );
      return this.skip();
    }
    if (!process.env.E2E_IMAGE || !process.env.E2E_IMAGE_2)
      throw new Error(
        'E2E_KUBECONFIG is set: also set E2E_IMAGE and E2E_IMAGE_2 (two pullable images of the scoring app)',
      );
    bundleTasks('DeployToAKS');
  });

  const namespace = process.env.E2E_NAMESPACE ?? 'model-delivery-e2e';
  const deploy = (inputs: RunTaskOptions['inputs']) =>
    runTask('DeployToAKS', {
      timeoutMs: 12 * 60_000,
      inputs: {
        connectionType: 'kubernetesServiceConnection',
        kubernetesServiceConnection: 'e2e',
        namespace,
        createNamespace: 'true',
        name: 'scoring-e2e',
        serviceType: 'ClusterIP',
        replicas: '2',
        containerPort: process.env.E2E_PORT ?? '8080',
        rolloutTimeoutSeconds: '300',
        smokeTest: 'true',
        smokeTestRoute: 'apiServerProxy',
        ...inputs,
      },
      endpoints: [
        {
          id: 'e2e',
          scheme: 'Kubernetes',
          auth: { kubeconfig: fs.readFileSync(kubeconfigFile!, 'utf8') },
          data: { authorizationType: 'Kubeconfig' },
        },
      ],
    });

  it('deploys, updates, and passes the smoke test', async () => {
    const first = await deploy({ imageRef: process.env.E2E_IMAGE });
    assert.equal(first.result, 'Succeeded', describeRun(first));
    const second = await deploy({ imageRef: process.env.E2E_IMAGE_2 });
    assert.equal(second.result, 'Succeeded', describeRun(second));
    assert.equal(second.outputs.DeployedImage, process.env.E2E_IMAGE_2);
  });

  it('rolls back an image that cannot be pulled', async () => {
    const missing = `${process.env.E2E_IMAGE!.replace(/[@:][^/]*$/, '')}@sha256:${'0'.repeat(64)}`;
    const run = await deploy({ imageRef: missing });
    assert.equal(run.result, 'Failed', describeRun(run));
    assert.match(run.message, /ErrImagePull|ImagePullBackOff/);
    assert.match(run.message, /Rolled back to revision \d+\./);
    assert.equal(run.outputs.DeployedImage, process.env.E2E_IMAGE_2);
  });
});
