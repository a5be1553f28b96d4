/**
 * The built-in manifests: a Deployment and a Service for one scoring container, with an optional
 * HorizontalPodAutoscaler and PodDisruptionBudget. Pure: inputs in, objects out.
 */
import type { KubeObject } from '../common/kube/objects';
import type { BuiltInSettings } from './parameters';

export const NAME_LABEL = 'app.kubernetes.io/name';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
/** Stable and canary pods carry the same name label (the Service selects on it) and differ here. */
export const TRACK_LABEL = 'model-delivery.io/track';
export const MANAGED_BY = 'model-delivery';

export interface BuiltInManifestInput {
  name: string;
  namespace: string;
  image: string;
  settings: BuiltInSettings;
  progressDeadlineSeconds: number;
  imagePullSecrets: string[];
}

function resources(settings: BuiltInSettings): Record<string, Record<string, string>> | undefined {
  const pick = (r: { cpu?: string; memory?: string }) =>
    Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as Record<string, string>;
  const requests = pick(settings.resources.requests);
  const limits = pick(settings.resources.limits);
  const out: Record<string, Record<string, string>> = {};
  if (Object.keys(requests).length) out.requests = requests;
  if (Object.keys(limits).length) out.limits = limits;
  return Object.keys(out).length ? out : undefined;
}

function probe(path: string, port: number, kind: 'liveness' | 'readiness'): Record<string, unknown> {
  // Liveness is lenient (a slow model load must not restart the pod); readiness reacts fast.
  return kind === 'liveness'
    ? { httpGet: { path, port }, initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 6 }
    : { httpGet: { path, port }, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 3 };
}

export function renderBuiltInManifests(input: BuiltInManifestInput): KubeObject[] {
  const { name, namespace, settings } = input;
  const labels = { [NAME_LABEL]: name, [MANAGED_BY_LABEL]: MANAGED_BY };
  const podLabels = { [NAME_LABEL]: name, [TRACK_LABEL]: 'stable' };
  const env = { PORT: String(settings.containerPort), ...settings.env };
  const container: Record<string, unknown> = {
    name,
    image: input.image,
    ports: [{ name: 'http', containerPort: settings.containerPort, protocol: 'TCP' }],
    env: Object.entries(env).map(([k, v]) => ({ name: k, value: v })),
  };
  const res = resources(settings);
  if (res) container.resources = res;
  if (settings.livenessPath) container.livenessProbe = probe(settings.livenessPath, settings.containerPort, 'liveness');
  if (settings.readinessPath)
    container.readinessProbe = probe(settings.readinessPath, settings.containerPort, 'readiness');

  const podSpec: Record<string, unknown> = { containers: [container] };
  if (input.imagePullSecrets.length) podSpec.imagePullSecrets = input.imagePullSecrets.map((s) => ({ name: s }));

  const deploymentSpec: Record<string, unknown> = {
    selector: { matchLabels: podLabels },
    progressDeadlineSeconds: input.progressDeadlineSeconds,
    revisionHistoryLimit: 10,
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 0 } },
    template: {
      metadata: {
        labels: podLabels,
        ...(Object.keys(settings.podAnnotations).length ? { annotations: { ...settings.podAnnotations } } : {}),
      },
      spec: podSpec,
    },
  };
  // With an autoscaler the HPA owns replicas; applying a count would fight it on every deploy.
  if (!settings.autoscale) deploymentSpec.replicas = settings.replicas;

  const objects: KubeObject[] = [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name,
        namespace,
        labels,
        ...(Object.keys(settings.serviceAnnotations).length ? { annotations: { ...settings.serviceAnnotations } } : {}),
      },
      spec: {
        type: settings.serviceType,
        selector: { [NAME_LABEL]: name },
        ports: [{ name: 'http', port: settings.servicePort, targetPort: 'http', protocol: 'TCP' }],
      },
    },
    { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace, labels }, spec: deploymentSpec },
  ];
  if (settings.autoscale) {
    objects.push({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name, namespace, labels },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
        minReplicas: settings.autoscale.minReplicas,
        maxReplicas: settings.autoscale.maxReplicas,
        metrics: [
          {
            type: 'Resource',
            resource: {
              name: 'cpu',
              target: { type: 'Utilization', averageUtilization: settings.autoscale.targetCpuUtilization },
            },
          },
        ],
      },
    });
  }
  if (settings.podDisruptionBudget) {
    objects.push({
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name, namespace, labels },
      spec: { minAvailable: settings.podDisruptionBudget.minAvailable, selector: { matchLabels: podLabels } },
    });
  }
  return objects;
}
