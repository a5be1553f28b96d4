import * as tl from 'azure-pipelines-task-lib/task';

import { registryConnection } from '../common/connections/dockerRegistry';
import { errorMessage, TaskError } from '../common/errors';
import { setOutput } from '../common/outputs';
import { scrub } from '../common/secrets';
import { formatDuration, RunSummary } from '../common/summary';
import { type ClusterConnection, connectToCluster } from './cluster';
import { Deployer, type DeploymentReport, type DeployResult, type RegistryCredentials } from './deployer';
import type { DeployToAKSParameters } from './parameters';
import { revisionOf } from './rollout';
import { directSender, endpointOf, proxySender, type ServiceEndpoint, waitForLoadBalancer } from './serviceEndpoint';
import { runSmokeTest, SmokeTestError, type SmokeTestResult } from './smokeTest';
import { primaryImage } from './workloads';

interface Verification {
  endpoint?: ServiceEndpoint;
  smoke?: SmokeTestResult;
  smokeRoute?: string;
  smokeError?: string;
}

function pullSecretCredentials(params: DeployToAKSParameters): RegistryCredentials | undefined {
  if (!params.imagePullSecret) return undefined;
  const conn = registryConnection('imagePullSecretConnection', params.imagePullSecret.connectionId);
  return { registry: conn.registry, username: conn.username, password: conn.password };
}

/** The Service the outputs name: `name` if there is one, else the first Service applied. */
function serviceName(params: DeployToAKSParameters, result: DeployResult): string | undefined {
  const services = result.applied.filter((a) => a.object.kind === 'Service').map((a) => a.object.metadata.name!);
  if (params.name && (services.includes(params.name) || services.length === 0)) return params.name;
  return services[0];
}

async function verify(
  cluster: ClusterConnection,
  params: DeployToAKSParameters,
  result: DeployResult,
  startedAt: number,
): Promise<Verification> {
  const name = serviceName(params, result);
  if (!name) return {};
  const remainingMs = Math.max(10_000, params.rolloutTimeoutSeconds * 1000 - (Date.now() - startedAt));
  const service = await waitForLoadBalancer(
    cluster.client,
    params.namespace,
    name,
    Math.min(remainingMs, 300_000),
    console.log,
  );
  if (!service) return {};
  const endpoint = endpointOf(service);
  console.log(`Service "${name}" (${endpoint.type}) answers at ${endpoint.url}.`);
  if (!params.smokeTest) return { endpoint };
  // How long /readyz may take through a fresh Service; an environment override keeps tests short.
  const readyWithinMs = Number(process.env.DEPLOY_TO_AKS_SMOKE_READY_MS) || 60_000;
  const spec = { ...params.smokeTest, readyWithinMs };
  const viaProxy = () => runSmokeTest(proxySender(cluster.client, params.namespace, endpoint), spec, console.log);
  const route = params.smokeTest.route;
  try {
    if (route === 'apiServerProxy' || (route === 'auto' && !endpoint.external)) {
      console.log(
        `Smoke test through the API server's service proxy (service ${name}, port ${endpoint.portName ?? endpoint.port})...`,
      );
      return { endpoint, smoke: await viaProxy(), smokeRoute: 'API server service proxy' };
    }
    if (!endpoint.external)
      throw new SmokeTestError(
        `service "${name}" has no load balancer address to test (type ${endpoint.type}). Use smokeTestRoute: apiServerProxy.`,
      );
    console.log(`Smoke test through the load balancer at ${endpoint.url}...`);
    try {
      return {
        endpoint,
        smoke: await runSmokeTest(
          directSender(endpoint.url),
          { ...spec, readyWithinMs: route === 'auto' ? Math.min(10_000, readyWithinMs) : readyWithinMs },
          console.log,
        ),
        smokeRoute: `load balancer ${endpoint.url}`,
      };
    } catch (err) {
      // From a private agent the load balancer may be out of reach; the API server is not.
      if (route !== 'auto' || !(err instanceof SmokeTestError) || !/did not answer 200/.test(err.message)) throw err;
      console.log(
        `The load balancer did not answer from this agent (${err.message}); trying through the API server's service proxy.`,
      );
      return {
        endpoint,
        smoke: await viaProxy(),
        smokeRoute: 'API server service proxy (load balancer unreachable from the agent)',
      };
    }
  } catch (err) {
    if (err instanceof TaskError) return { endpoint, smokeError: err.message };
    throw err;
  }
}

function writeSummary(
  params: DeployToAKSParameters,
  cluster: ClusterConnection | undefined,
  result: DeployResult | undefined,
  verification: Verification,
  failure: string | undefined,
  elapsedMs: number,
  requests: number,
): void {
  const summary = new RunSummary(
    `Deploy to AKS: ${params.action}${params.action === 'deploy' ? ` (${params.strategy})` : ''} ${failure ? 'failed' : 'succeeded'}`,
  );
  const target = result?.target;
  const facts: Array<[string, string | number]> = [];
  if (cluster) facts.push(['Cluster', cluster.description]);
  facts.push(['Namespace', params.namespace]);
  if (result?.deployedImage) facts.push(['Image', result.deployedImage]);
  if (params.model.name)
    facts.push([
      'Model',
      `${params.model.name}${params.model.version ? ` ${params.model.version}` : ''}${params.model.sha256 ? ` (sha256 ${params.model.sha256.slice(0, 12)}…)` : ''}`,
    ]);
  if (target?.revisionAfter !== undefined)
    facts.push(['Revision', `${target.revisionBefore ?? '(new)'} → ${target.revisionAfter}`]);
  if (verification.endpoint) facts.push(['Endpoint', verification.endpoint.url]);
  if (verification.smoke)
    facts.push(['Smoke test', `passed via ${verification.smokeRoute} in ${formatDuration(verification.smoke.ms)}`]);
  if (verification.smokeError) facts.push(['Smoke test', verification.smokeError]);
  if (params.run.url) facts.push(['Run', params.run.url]);
  facts.push(['Took', `${formatDuration(elapsedMs)}, ${requests} Kubernetes API requests`]);
  summary.facts(facts);
  if (failure) summary.paragraph(`**Failed:** ${failure}`);
  if (result?.applied.length) {
    summary.heading('Applied');
    summary.table(
      ['Object', 'From'],
      result.applied.map((a) => [`${a.object.kind} ${a.object.metadata.name}`, a.source]),
    );
  }
  if (result?.deployments.length) {
    summary.heading('Deployments');
    summary.table(
      ['Deployment', 'Image before', 'Image after', 'Revision', 'Rollout', 'Rollback'],
      result.deployments.map((d: DeploymentReport) => [
        d.name,
        d.imageBefore ?? '(new)',
        d.imageAfter ?? '',
        `${d.revisionBefore ?? '-'} → ${d.revisionAfter ?? '-'}`,
        d.outcome.ok ? 'complete' : (d.outcome.reason ?? 'failed'),
        d.rolledBack
          ? `to revision ${d.rolledBack.toRevision}: ${d.rolledBack.outcome.ok ? 'complete' : d.rolledBack.outcome.reason}`
          : (d.noRollback ?? ''),
      ]),
    );
    const problems = result.deployments.flatMap((d) => d.outcome.problems);
    if (problems.length) {
      summary.heading('Pod problems');
      summary.table(
        ['Pod', 'Reason', 'What happened', 'Events', 'Last log lines'],
        problems.map((p) => [p.pod, p.reason, p.message, p.events.join(' · '), p.logs.slice(-5).join(' ⏎ ')]),
      );
    }
  }
  if (result?.notes.length) {
    summary.heading('Notes');
    for (const n of result.notes) summary.paragraph(n);
  }
  summary.upload('deploy-to-aks.md');
}

/** Ends with exactly one full stop, whatever the API's message ended with. */
const sentence = (text: string) => `${text.replace(/[.\s]+$/, '')}.`;

function failureOf(result: DeployResult): string | undefined {
  const failed = result.deployments.find((d) => !d.outcome.ok);
  if (!failed) return undefined;
  const what =
    result.strategy === 'canary' && result.action === 'deploy'
      ? `The canary deployment "${failed.name}"`
      : `The rollout of deployment "${failed.name}"`;
  let message = `${what} failed: ${sentence(failed.outcome.reason ?? 'unknown reason')}`;
  if (failed.rolledBack) {
    message += failed.rolledBack.outcome.ok
      ? ` Rolled back to revision ${failed.rolledBack.toRevision}.`
      : ` The rollback to revision ${failed.rolledBack.toRevision} did not complete either: ${sentence(failed.rolledBack.outcome.reason ?? '')}`;
  } else if (result.strategy === 'canary' && result.action === 'deploy' && result.deletedCanary) {
    message += ' The canary was deleted; the stable deployment was not touched.';
  } else if (failed.noRollback) {
    message += ` No rollback: ${sentence(failed.noRollback)}`;
  }
  return message;
}

export async function deployToAKS(params: DeployToAKSParameters): Promise<string> {
  const startedAt = Date.now();
  const credentials = pullSecretCredentials(params);
  let cluster: ClusterConnection | undefined;
  let result: DeployResult | undefined;
  let verification: Verification = {};
  let failure: string | undefined;
  try {
    cluster = await connectToCluster(params.cluster);
    console.log(`Cluster: ${cluster.description}`);
    const deployer = new Deployer(cluster.client, params, credentials);
    if (params.action === 'reject') result = await deployer.reject();
    else if (params.action === 'promote') result = await deployer.promote();
    else result = await deployer.deploy(params.image!.text);

    failure = failureOf(result);
    if (!failure && params.action !== 'reject') {
      verification = await verify(cluster, params, result, startedAt);
      if (verification.smokeError) {
        failure = verification.smokeError;
        const target = result.target;
        // A release that serves wrong answers is a failed release: put the previous one back.
        if (target && result.strategy !== 'canary') {
          await deployer.rollBackIfAllowed(target);
          if (target.rolledBack)
            failure += target.rolledBack.outcome.ok
              ? ` Rolled back to revision ${target.rolledBack.toRevision}.`
              : ` The rollback did not complete: ${target.rolledBack.outcome.reason}.`;
          else if (target.noRollback) failure += ` No rollback: ${target.noRollback}.`;
        } else if (target && result.strategy === 'canary' && params.action === 'deploy') {
          failure += ' The canary is left running for inspection; reject it to remove it.';
        }
      }
    }

    const target = result.target;
    // After a rollback the outputs say what runs now: the previous image and its new revision number.
    const current = target?.rolledBack?.outcome.deployment;
    const finalImage = current ? primaryImage(current, target?.imageBefore) : result.deployedImage;
    if (finalImage) setOutput('DeployedImage', finalImage);
    const revision = current ? revisionOf(current) : target?.revisionAfter;
    if (revision !== undefined) setOutput('Revision', revision);
    if (verification.endpoint) setOutput('ServiceEndpoint', verification.endpoint.url);
  } catch (err) {
    failure = scrub(errorMessage(err));
    throw err;
  } finally {
    const requests = cluster?.client.requestCount ?? 0;
    console.log(`Kubernetes API requests: ${requests}; took ${formatDuration(Date.now() - startedAt)}.`);
    try {
      writeSummary(params, cluster, result, verification, failure, Date.now() - startedAt, requests);
    } catch (err) {
      tl.warning(`Could not write the run summary: ${errorMessage(err)}`);
    }
    cluster?.client.close();
  }
  if (failure) throw new TaskError(failure);
  const target = result.target;
  if (params.action === 'reject')
    return result.deletedCanary ? `Rejected the canary of ${params.name}.` : `No canary of ${params.name} to reject.`;
  return `${params.action === 'promote' ? 'Promoted' : result.strategy === 'canary' && target?.name.endsWith('-canary') ? 'Canary of' : 'Deployed'} ${result.deployedImage ?? ''}${target ? ` (deployment ${target.name}, revision ${target.revisionAfter})` : ''}${verification.endpoint ? ` at ${verification.endpoint.url}` : ''}.`;
}
