import * as assert from 'node:assert/strict';

import type { FaultProxy } from './faultProxy';
import { describeRun, runTask, type RunTaskOptions, type TaskRun } from './taskRunner';

/** What BakeModelImage's task tests share: run outcomes, and what the registry behind the fault proxy was sent. */

export function succeeded(r: TaskRun): TaskRun {
  assert.equal(r.result, 'Succeeded', describeRun(r));
  return r;
}

export function failed(r: TaskRun): TaskRun {
  assert.equal(r.result, 'Failed', describeRun(r));
  return r;
}

/** Digests of the blobs uploads committed (PUT …/blobs/uploads/…?digest= answered 201) since the proxy's stats were reset. */
export function committedBlobsThrough(proxy: FaultProxy): string[] {
  return proxy.stats.requests
    .filter((r) => r.method === 'PUT' && /\/blobs\/uploads\//.test(r.path) && r.status === 201)
    .map((r) => decodeURIComponent(/[?&]digest=([^&]+)/.exec(r.path)![1]));
}

/** A Docker registry service connection for a test registry reached through the fault proxy. */
export function registryEndpoint(id: string, proxy: FaultProxy, creds: { username: string; password: string }) {
  return {
    id,
    scheme: 'UsernamePassword',
    url: proxy.url,
    auth: { username: creds.username, password: creds.password, registry: proxy.url },
  };
}

/** Runs the bundled BakeModelImage pushing through a Docker registry service connection. */
export function bakeThrough(
  endpoint: ReturnType<typeof registryEndpoint>,
  inputs: Record<string, string | undefined>,
  opts: Partial<RunTaskOptions> = {},
): Promise<TaskRun> {
  return runTask('BakeModelImage', {
    inputs: { connectionType: 'dockerRegistry', dockerRegistryServiceConnection: endpoint.id, ...inputs },
    endpoints: [endpoint],
    ...opts,
  });
}
