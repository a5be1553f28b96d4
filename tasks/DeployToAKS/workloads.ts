/** Where pods are described inside each workload kind, and the labels/annotations the task puts on them. */
import type { KubeObject } from '../common/kube/objects';

export interface Container {
  name: string;
  image?: string;
  [key: string]: unknown;
}

export interface PodSpec {
  containers?: Container[];
  initContainers?: Container[];
  imagePullSecrets?: Array<{ name: string }>;
  [key: string]: unknown;
}

export interface PodTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string>; [key: string]: unknown };
  spec?: PodSpec;
}

const TEMPLATE_KINDS = new Set([
  'Deployment',
  'StatefulSet',
  'DaemonSet',
  'ReplicaSet',
  'ReplicationController',
  'Job',
]);

/** The pod template of a workload, or for a bare Pod the Pod itself; undefined for other kinds. */
export function podTemplateOf(obj: KubeObject): PodTemplate | undefined {
  const spec = obj.spec as Record<string, unknown> | undefined;
  if (!spec || typeof spec !== 'object') return undefined;
  if (TEMPLATE_KINDS.has(obj.kind)) return spec.template as PodTemplate | undefined;
  if (obj.kind === 'CronJob')
    return (spec.jobTemplate as { spec?: { template?: PodTemplate } } | undefined)?.spec?.template ?? undefined;
  if (obj.kind === 'Pod') return obj;
  return undefined;
}

export function containersOf(spec: PodSpec | undefined): Array<{ container: Container; init: boolean }> {
  if (!spec) return [];
  return [
    ...(spec.initContainers ?? []).map((container) => ({ container, init: true })),
    ...(spec.containers ?? []).map((container) => ({ container, init: false })),
  ];
}

/** Image of every container of a Deployment's template, by container name. */
export function imagesOf(obj: KubeObject): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { container } of containersOf(podTemplateOf(obj)?.spec))
    if (container.image) out[container.name] = container.image;
  return out;
}

/**
 * The one image a Deployment is "running" for outputs and summaries: the container with `preferred`,
 * else the container named like the Deployment, else the first.
 */
export function primaryImage(obj: KubeObject | undefined, preferred?: string): string | undefined {
  if (!obj) return undefined;
  const containers = podTemplateOf(obj)?.spec?.containers ?? [];
  const chosen =
    containers.find((c) => preferred !== undefined && c.image === preferred) ??
    containers.find((c) => c.name === obj.metadata.name) ??
    containers[0];
  return chosen?.image;
}

/** The image of the container called `name`, e.g. to say what a container ran before. */
export function imageOfContainer(obj: KubeObject | undefined, name: string | undefined): string | undefined {
  return (podTemplateOf(obj ?? ({} as KubeObject))?.spec?.containers ?? []).find((c) => c.name === name)?.image;
}

export const ANNOTATIONS = {
  runUrl: 'model-delivery.io/run-url',
  pipeline: 'model-delivery.io/pipeline',
  runName: 'model-delivery.io/run',
  modelName: 'model-delivery.io/model-name',
  modelVersion: 'model-delivery.io/model-version',
  modelSha256: 'model-delivery.io/model-sha256',
  image: 'model-delivery.io/image',
} as const;

export interface DeploymentFacts {
  run: { url?: string; pipeline?: string; buildNumber?: string };
  model: { name?: string; version?: string; sha256?: string };
  image?: string;
}

function defined(entries: Array<[string, string | undefined]>): Record<string, string> {
  return Object.fromEntries(entries.filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
}

/**
 * Pipeline and model facts on each object; on pod templates only the facts that describe what runs
 * (model, image), so re-running a pipeline with the same image does not restart every pod.
 */
export function annotate(objects: KubeObject[], facts: DeploymentFacts): void {
  const what = defined([
    [ANNOTATIONS.modelName, facts.model.name],
    [ANNOTATIONS.modelVersion, facts.model.version],
    [ANNOTATIONS.modelSha256, facts.model.sha256],
    [ANNOTATIONS.image, facts.image],
  ]);
  const who = defined([
    [ANNOTATIONS.runUrl, facts.run.url],
    [ANNOTATIONS.pipeline, facts.run.pipeline],
    [ANNOTATIONS.runName, facts.run.buildNumber],
  ]);
  for (const obj of objects) {
    obj.metadata.annotations = { ...(obj.metadata.annotations ?? {}), ...who, ...what };
    const template = podTemplateOf(obj);
    if (template && obj.kind !== 'Pod') {
      template.metadata = template.metadata ?? {};
      template.metadata.annotations = { ...(template.metadata.annotations ?? {}), ...what };
    }
  }
}

/** Adds the pull secret to every pod spec that does not list it yet. */
export function addImagePullSecret(objects: KubeObject[], secretName: string): void {
  for (const obj of objects) {
    const spec = podTemplateOf(obj)?.spec;
    if (!spec) continue;
    const secrets = spec.imagePullSecrets ?? [];
    if (!secrets.some((s) => s.name === secretName)) spec.imagePullSecrets = [...secrets, { name: secretName }];
  }
}
