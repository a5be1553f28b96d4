/**
 * The deploy, promote and reject actions: build the objects, apply them server-side, wait for
 * the rollout, roll back on failure, smoke-test, and report.
 */
import * as tl from 'azure-pipelines-task-lib/task';

import { TaskError } from '../common/errors';
import { KubeApiError, type KubeClient } from '../common/kube/client';
import { ResourceMapper } from '../common/kube/mapper';
import { describeObject, type KubeObject, mappingOf, type ResourceMapping, resourcePath } from '../common/kube/objects';
import type { DeploymentLike } from '../common/kube/rolloutStatus';
import { formatReference } from '../common/oci/reference';
import { WaitProgress } from '../common/progress';
import { registerSecret } from '../common/secrets';
import { renderBuiltInManifests, TRACK_LABEL } from './manifests';
import type { DeployToAKSParameters } from './parameters';
import { revisionOf, type RolloutOutcome, RolloutWaiter } from './rollout';
import { displayName, type ManifestDocument, readManifestFiles, substituteImage } from './userManifests';
import { addImagePullSecret, annotate, imageOfContainer, imagesOf, podTemplateOf, primaryImage } from './workloads';

export interface RegistryCredentials {
  registry: string;
  username?: string;
  password?: string;
}

export interface AppliedObject {
  object: KubeObject;
  mapping: ResourceMapping;
  path: string;
  source: string;
}

export interface DeploymentReport {
  name: string;
  imageBefore?: string;
  imageAfter?: string;
  revisionBefore?: number;
  revisionAfter?: number;
  outcome: RolloutOutcome;
  rolledBack?: { toRevision: number; outcome: RolloutOutcome };
  /** Why there was no rollback, when the rollout failed. */
  noRollback?: string;
  applied?: AppliedObject;
  prior?: DeploymentLike;
}

export interface DeployResult {
  action: DeployToAKSParameters['action'];
  strategy: DeployToAKSParameters['strategy'];
  applied: AppliedObject[];
  deployments: DeploymentReport[];
  /** The Deployment whose image and revision the outputs report. */
  target?: DeploymentReport;
  deployedImage?: string;
  deletedCanary?: boolean;
  notes: string[];
}

/** Install order, as Helm uses: what others depend on first. */
const KIND_ORDER = [
  'Namespace',
  'NetworkPolicy',
  'ResourceQuota',
  'LimitRange',
  'ServiceAccount',
  'Secret',
  'ConfigMap',
  'PersistentVolumeClaim',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'Service',
  'DaemonSet',
  'Pod',
  'ReplicaSet',
  'Deployment',
  'HorizontalPodAutoscaler',
  'StatefulSet',
  'Job',
  'CronJob',
  'PodDisruptionBudget',
  'Ingress',
];
const rankOf = (kind: string) => {
  const i = KIND_ORDER.indexOf(kind);
  return i < 0 ? KIND_ORDER.length : i;
};

/** What the deployed container ran before and runs now (the container that got `image`). */
function beforeAndAfter(
  prior: DeploymentLike | undefined,
  after: DeploymentLike,
  image: string,
): { imageBefore?: string; imageAfter?: string } {
  const container = (podTemplateOf(after)?.spec?.containers ?? []).find((c) => c.image === image)?.name;
  return {
    imageBefore: imageOfContainer(prior, container) ?? primaryImage(prior),
    imageAfter: primaryImage(after, image),
  };
}

export const canaryName = (name: string) => `${name}-canary`;

/** The .dockerconfigjson a kubelet reads to log in to a registry. */
export function dockerConfigJson(creds: RegistryCredentials): string {
  const auth = Buffer.from(`${creds.username ?? ''}:${creds.password ?? ''}`).toString('base64');
  registerSecret(auth);
  const json = JSON.stringify({
    auths: { [creds.registry]: { username: creds.username, password: creds.password, auth } },
  });
  registerSecret(Buffer.from(json).toString('base64'));
  return json;
}

export class Deployer {
  private readonly mapper: ResourceMapper;
  private readonly notes: string[] = [];

  constructor(
    private readonly client: KubeClient,
    private readonly params: DeployToAKSParameters,
    private readonly pullSecretCredentials: RegistryCredentials | undefined,
    private readonly log: (line: string) => void = console.log,
  ) {
    this.mapper = new ResourceMapper(client);
  }

  private note(text: string): void {
    this.notes.push(text);
    this.log(text);
  }

  // ---- building the objects ----------------------------------------------------------------

  /** The objects to apply, each with where it came from (for error messages). */
  buildObjects(image: string): Array<{ object: KubeObject; source: string }> {
    const p = this.params;
    const pullSecrets = p.imagePullSecret ? [p.imagePullSecret.name] : [];
    let built: Array<{ object: KubeObject; source: string }>;
    if (p.manifestSource === 'builtIn') {
      built = renderBuiltInManifests({
        name: p.name!,
        namespace: p.namespace,
        image,
        settings: p.builtIn,
        progressDeadlineSeconds: p.progressDeadlineSeconds,
        imagePullSecrets: pullSecrets,
      }).map((object) => ({ object, source: 'built-in manifests' }));
    } else {
      const files = this.manifestFiles();
      const { documents, replaced, untouched } = readManifestFiles(files, p.manifestVariables, p.lookupVariable);
      if (replaced.length) this.log(`Replaced tokens in the manifests: ${replaced.map((t) => `$(${t})`).join(', ')}`);
      if (untouched.length)
        this.log(
          `Left for Kubernetes to expand (no variable of that name): ${untouched.map((t) => `$(${t})`).join(', ')}`,
        );
      const repository = p.imageRepositoryInManifests ?? this.repositoryOf(image);
      const substitutions = substituteImage(documents, image, repository);
      for (const s of substitutions)
        this.log(
          `Image of ${s.object} container ${s.container} (${displayName(s.file, p.workingDirectory)}, document ${s.index}): ${s.from} → ${image}`,
        );
      for (const doc of documents) {
        doc.object.metadata.namespace ??= p.namespace;
        if (p.imagePullSecret) addImagePullSecret([doc.object], p.imagePullSecret.name);
      }
      built = documents.map((d: ManifestDocument) => ({
        object: d.object,
        source: `${displayName(d.file, p.workingDirectory)}, document ${d.index}`,
      }));
    }
    annotate(
      built.map((b) => b.object),
      { run: p.run, model: p.model, image },
    );
    return built;
  }

  private repositoryOf(image: string): string {
    const ref = this.params.image?.text === image ? this.params.image.ref : undefined;
    return ref ? `${ref.registry}/${ref.repository}` : image.replace(/@.*$/, '').replace(/:[^/:]+$/, '');
  }

  private manifestFiles(): string[] {
    const p = this.params;
    const files: string[] = [];
    for (const pattern of p.manifestPatterns) {
      const matches = tl.findMatch(p.workingDirectory, [pattern]).filter((f) => tl.stats(f).isFile());
      if (matches.length === 0)
        throw new TaskError(
          `Input 'manifests': '${pattern}' matches no file under ${p.workingDirectory}. Check the path or glob.`,
        );
      for (const m of matches) if (!files.includes(m)) files.push(m);
    }
    return files;
  }

  /** Maps every object to its REST path before anything is written: an unknown kind stops the deploy with nothing applied. */
  async resolve(objects: Array<{ object: KubeObject; source: string }>): Promise<AppliedObject[]> {
    const out: AppliedObject[] = [];
    for (const { object, source } of objects) {
      const mapping = await this.mapper.find(object.apiVersion, object.kind);
      if (!mapping) {
        const why = this.mapper.groupVersionServed(object.apiVersion)
          ? `the cluster serves ${object.apiVersion} but no kind ${object.kind} in it`
          : `the cluster does not serve apiVersion ${object.apiVersion}`;
        throw new TaskError(
          `${source}: unknown kind ${object.kind} (${object.apiVersion}): ${why}. Check the kind and apiVersion, or install its CustomResourceDefinition first.`,
        );
      }
      if (!mapping.namespaced) delete object.metadata.namespace;
      out.push({
        object,
        mapping,
        source,
        path: resourcePath(mapping, object.metadata.namespace, object.metadata.name),
      });
    }
    return out.sort((a, b) => rankOf(a.object.kind) - rankOf(b.object.kind));
  }

  // ---- writing -----------------------------------------------------------------------------

  private async apply<T extends KubeObject = KubeObject>(item: {
    object: KubeObject;
    path: string;
    source: string;
  }): Promise<T> {
    try {
      return await this.client.apply<T>(item.path, item.object, this.params.fieldManager, this.params.forceConflicts);
    } catch (err) {
      if (err instanceof KubeApiError) {
        if (err.status === 404 && /namespaces? "?[^"]*"? not found/i.test(err.apiMessage)) {
          throw new TaskError(
            `Namespace '${item.object.metadata.namespace}' does not exist. Create it, or set createNamespace: true.`,
          );
        }
        if (err.status === 409 && err.reason === 'Conflict') {
          throw new TaskError(
            `${describeObject(item.object)} (${item.source}): fields are owned by another field manager: ${err.apiMessage}. Let the other tool stop managing them, or set forceConflicts: true to take them over.`,
          );
        }
        throw new TaskError(
          `${describeObject(item.object)} (${item.source}) was refused by the API server: HTTP ${err.status} ${err.reason}: ${err.apiMessage}`,
        );
      }
      throw err;
    }
  }

  private async ensureNamespace(): Promise<void> {
    if (!this.params.createNamespace) return;
    const object: KubeObject = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: this.params.namespace } };
    await this.apply({
      object,
      path: resourcePath(mappingOf('Namespace'), undefined, this.params.namespace),
      source: 'createNamespace',
    });
  }

  private async applyPullSecret(): Promise<void> {
    const p = this.params;
    if (!p.imagePullSecret || !this.pullSecretCredentials) return;
    const json = dockerConfigJson(this.pullSecretCredentials);
    const object: KubeObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: p.imagePullSecret.name,
        namespace: p.namespace,
        labels: { 'app.kubernetes.io/managed-by': 'model-delivery' },
      },
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': Buffer.from(json).toString('base64') },
    };
    await this.apply({
      object,
      path: resourcePath(mappingOf('Secret'), p.namespace, p.imagePullSecret.name),
      source: 'imagePullSecretConnection',
    });
    this.log(
      `Image pull secret ${p.namespace}/${p.imagePullSecret.name} holds the credentials for ${this.pullSecretCredentials.registry}.`,
    );
  }

  private waiter(): RolloutWaiter {
    return new RolloutWaiter(this.client, this.params.namespace, {
      timeoutMs: this.params.rolloutTimeoutSeconds * 1000,
      failOnPodErrors: this.params.failOnPodErrors,
      progress: new WaitProgress('Rollout', 5000),
      log: this.log,
    });
  }

  /** Puts the previous revision's pod template back (what `kubectl rollout undo` does) and waits for it. */
  private async rollback(
    applied: AppliedObject,
    before: DeploymentLike,
    failed: DeploymentLike,
  ): Promise<DeploymentReport['rolledBack']> {
    const revision = revisionOf(before)!;
    const selector = Object.entries(failed.spec?.selector?.matchLabels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const list = await this.client.mustGet<{ items: KubeObject[] }>(
      resourcePath(mappingOf('ReplicaSet'), this.params.namespace),
      { labelSelector: selector },
    );
    const previous = list.items.find(
      (rs) => revisionOf(rs) === revision && rs.metadata.ownerReferences?.some((o) => o.uid === failed.metadata.uid),
    );
    // Items of a LIST carry no kind, so read the ReplicaSet's template directly.
    const template = (previous?.spec as { template?: Record<string, unknown> } | undefined)?.template;
    if (!template) return undefined;
    const restored = JSON.parse(JSON.stringify(template)) as { metadata?: { labels?: Record<string, string> } };
    delete restored.metadata?.labels?.['pod-template-hash'];
    // Applied by the same field manager with the same fields as the failed apply, so the next deploy meets no conflict.
    const object = JSON.parse(JSON.stringify(applied.object)) as KubeObject & { spec: Record<string, unknown> };
    object.spec.template = restored;
    this.log(`Rolling back deployment "${failed.metadata.name}" to revision ${revision} (${primaryImage(before)})...`);
    const written = await this.apply<DeploymentLike>({ ...applied, object });
    const outcome = await this.waiter().waitForDeployment(written);
    this.log(
      outcome.ok
        ? `Rolled back: deployment "${failed.metadata.name}" runs revision ${revision}'s template again (now revision ${revisionOf(outcome.deployment)}).`
        : `The rollback did not complete either: ${outcome.reason}`,
    );
    return { toRevision: revision, outcome };
  }

  // ---- actions -----------------------------------------------------------------------------

  /** Applies everything and waits for each Deployment; rolls back the ones that fail. */
  private async applyAndRollOut(
    resolved: AppliedObject[],
    targetName: string | undefined,
    image: string,
  ): Promise<DeployResult> {
    const deployments = resolved.filter((r) => r.object.kind === 'Deployment');
    const before = new Map<string, DeploymentLike | undefined>();
    for (const d of deployments) before.set(d.path, await this.client.get<DeploymentLike>(d.path));

    const written = new Map<string, KubeObject>();
    for (const item of resolved) {
      const result = await this.apply(item);
      written.set(item.path, result);
      this.log(`Applied ${describeObject(item.object)} (${item.source}).`);
    }
    for (const item of resolved) {
      if (item.object.kind !== 'StatefulSet' && item.object.kind !== 'DaemonSet') continue;
      this.note(`${describeObject(item.object)} was applied; only Deployments are watched and rolled back.`);
    }

    const reports: DeploymentReport[] = [];
    for (const d of deployments) {
      const prior = before.get(d.path);
      const after = written.get(d.path) as DeploymentLike;
      this.log(
        `Waiting for the rollout of deployment "${d.object.metadata.name}" (timeout ${this.params.rolloutTimeoutSeconds} s)...`,
      );
      const outcome = await this.waiter().waitForDeployment(after);
      const report: DeploymentReport = {
        name: d.object.metadata.name!,
        ...beforeAndAfter(prior, outcome.deployment, image),
        revisionBefore: revisionOf(prior),
        revisionAfter: revisionOf(outcome.deployment),
        outcome,
        applied: d,
        prior,
      };
      reports.push(report);
      if (outcome.ok) {
        this.log(`Deployment "${report.name}" successfully rolled out (revision ${report.revisionAfter}).`);
        continue;
      }
      this.log(`Deployment "${report.name}" failed: ${outcome.reason}`);
      await this.rollBackIfAllowed(report);
      break;
    }
    const target = reports.find((r) => r.name === targetName) ?? reports[0];
    return {
      action: this.params.action,
      strategy: 'rolling',
      applied: resolved,
      deployments: reports,
      target,
      notes: this.notes,
      deployedImage: target?.imageAfter,
    };
  }

  /** Rolls a failed (or smoke-test-failed) Deployment back when the inputs allow and there is a revision to go back to. */
  async rollBackIfAllowed(report: DeploymentReport): Promise<void> {
    const prior = report.prior;
    if (!this.params.rollbackOnFailure) {
      report.noRollback = 'automatic rollback is off (rollbackOnFailure: false); the failed revision is left in place';
    } else if (!prior || revisionOf(prior) === undefined || !report.applied) {
      report.noRollback = `nothing to roll back to: this was the first deployment of "${report.name}"; its objects are left in place for inspection`;
    } else if (revisionOf(prior) === revisionOf(report.outcome.deployment)) {
      report.noRollback = `nothing to roll back to: the pod template of "${report.name}" did not change in this deploy (revision ${revisionOf(prior)})`;
    } else {
      report.rolledBack = await this.rollback(report.applied, prior, report.outcome.deployment);
      if (!report.rolledBack) report.noRollback = `the ReplicaSet of revision ${revisionOf(prior)} is gone`;
    }
    if (report.noRollback) this.note(`No rollback: ${report.noRollback}.`);
  }

  /** The Deployment the outputs and canaries are about: `name`, or the one whose image was replaced. */
  private targetDeployment(resolved: AppliedObject[], image: string): AppliedObject {
    const deployments = resolved.filter((r) => r.object.kind === 'Deployment');
    const byName = this.params.name ? deployments.find((d) => d.object.metadata.name === this.params.name) : undefined;
    if (byName) return byName;
    const withImage = deployments.filter((d) => Object.values(imagesOf(d.object)).includes(image));
    if (withImage.length === 1) return withImage[0];
    if (withImage.length === 0)
      throw new TaskError(
        `No Deployment in the manifests runs ${image}${this.params.name ? ` and none is named '${this.params.name}'` : ''}. A canary needs a Deployment to copy.`,
      );
    throw new TaskError(
      `Several Deployments run ${image} (${withImage.map((d) => d.object.metadata.name).join(', ')}). Set the input 'name' to the one to use.`,
    );
  }

  async deploy(image: string, strategy = this.params.strategy): Promise<DeployResult> {
    const resolved = await this.resolve(this.buildObjects(image));
    await this.ensureNamespace();
    await this.applyPullSecret();
    if (strategy === 'canary') return this.deployCanary(resolved, image);
    return this.applyAndRollOut(resolved, this.params.name, image);
  }

  private async deployCanary(resolved: AppliedObject[], image: string): Promise<DeployResult> {
    const main = this.targetDeployment(resolved, image);
    const stable = await this.client.get<DeploymentLike>(main.path);
    if (!stable) {
      this.note(
        `There is no stable deployment "${main.object.metadata.name}" yet, so there is nothing to compare a canary with: deploying it directly.`,
      );
      return this.applyAndRollOut(resolved, main.object.metadata.name, image);
    }
    const name = canaryName(main.object.metadata.name!);
    const canary = JSON.parse(JSON.stringify(main.object)) as DeploymentLike & { spec: Record<string, unknown> };
    const stableReplicas = stable.spec?.replicas ?? 1;
    const replicas = Math.max(1, Math.round((stableReplicas * this.params.canaryPercentage) / 100));
    canary.metadata = {
      ...canary.metadata,
      name,
      labels: { ...(canary.metadata.labels ?? {}), [TRACK_LABEL]: 'canary' },
    };
    canary.spec.replicas = replicas;
    const selector = canary.spec.selector ?? {};
    canary.spec.selector = { ...selector, matchLabels: { ...(selector.matchLabels ?? {}), [TRACK_LABEL]: 'canary' } };
    const template = podTemplateOf(canary)!;
    template.metadata = {
      ...(template.metadata ?? {}),
      labels: { ...(template.metadata?.labels ?? {}), [TRACK_LABEL]: 'canary' },
    };
    const item: AppliedObject = {
      object: canary,
      mapping: main.mapping,
      path: resourcePath(main.mapping, main.object.metadata.namespace, name),
      source: `canary of ${main.source}`,
    };
    this.log(
      `Canary: ${replicas} replica(s) of ${image} beside ${stableReplicas} stable, ${this.params.canaryPercentage}% of the stable count, behind the same Service.`,
    );
    const result = await this.applyAndRollOutCanary(item, stable, image);
    return result;
  }

  private async applyAndRollOutCanary(
    item: AppliedObject,
    stable: DeploymentLike,
    image: string,
  ): Promise<DeployResult> {
    const written = await this.apply<DeploymentLike>(item);
    this.log(`Applied ${describeObject(item.object)}.`);
    const outcome = await this.waiter().waitForDeployment(written);
    const report: DeploymentReport = {
      name: item.object.metadata.name!,
      ...beforeAndAfter(stable, outcome.deployment, image),
      revisionAfter: revisionOf(outcome.deployment),
      outcome,
    };
    let deletedCanary = false;
    if (!outcome.ok && this.params.rollbackOnFailure) {
      deletedCanary = await this.client.delete(item.path);
      this.note(`The canary failed, so it was deleted; the stable deployment was never touched.`);
    } else if (!outcome.ok) {
      report.noRollback = 'automatic rollback is off (rollbackOnFailure: false); the failed canary is left in place';
    }
    return {
      action: 'deploy',
      strategy: 'canary',
      applied: [item],
      deployments: [report],
      target: report,
      deployedImage: report.imageAfter,
      deletedCanary,
      notes: this.notes,
    };
  }

  /** Rolls the stable Deployment to the canary's image, then deletes the canary. */
  async promote(): Promise<DeployResult> {
    const name = this.params.name!;
    const canaryPath = resourcePath(mappingOf('Deployment'), this.params.namespace, canaryName(name));
    const canary = await this.client.get<DeploymentLike>(canaryPath);
    if (!canary)
      throw new TaskError(
        `There is no canary deployment "${canaryName(name)}" in namespace ${this.params.namespace} to promote. Run the task with strategy: canary first.`,
      );
    const images = imagesOf(canary);
    const image = images[name] ?? Object.values(images)[0];
    if (!image) throw new TaskError(`The canary deployment "${canaryName(name)}" has no container image.`);
    if (this.params.image && this.params.image.text !== image && formatReference(this.params.image.ref) !== image) {
      throw new TaskError(
        `Input 'imageRef' is ${this.params.image.text}, but the canary runs ${image}. Promote promotes what the canary runs: leave imageRef empty, or deploy that image as a canary first.`,
      );
    }
    this.log(`Promoting the canary's image ${image} to deployment "${name}".`);
    const result = await this.deploy(image, 'rolling');
    const target = result.target;
    if (target?.outcome.ok) {
      await this.client.delete(canaryPath);
      this.log(`Deleted the canary deployment "${canaryName(name)}".`);
      return { ...result, action: 'promote', deletedCanary: true };
    }
    this.note(
      `The promotion failed, so the canary deployment "${canaryName(name)}" is kept for inspection; reject it to remove it.`,
    );
    return { ...result, action: 'promote', deletedCanary: false };
  }

  async reject(): Promise<DeployResult> {
    const name = this.params.name!;
    const canaryPath = resourcePath(mappingOf('Deployment'), this.params.namespace, canaryName(name));
    const stable = await this.client.get<DeploymentLike>(
      resourcePath(mappingOf('Deployment'), this.params.namespace, name),
    );
    const deleted = await this.client.delete(canaryPath);
    if (deleted) this.log(`Deleted the canary deployment "${canaryName(name)}"; the stable deployment keeps serving.`);
    else
      this.note(
        `There was no canary deployment "${canaryName(name)}" in namespace ${this.params.namespace}: nothing to reject.`,
      );
    const report: DeploymentReport | undefined = stable
      ? {
          name,
          imageAfter: primaryImage(stable),
          revisionAfter: revisionOf(stable),
          outcome: { ok: true, deployment: stable, problems: [] },
        }
      : undefined;
    return {
      action: 'reject',
      strategy: 'canary',
      applied: [],
      deployments: report ? [report] : [],
      target: report,
      deployedImage: report?.imageAfter,
      deletedCanary: deleted,
      notes: this.notes,
    };
  }
}
