/** The shape every Kubernetes object shares, and the REST paths objects live at. */

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }>;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

export interface KubeList<T = KubeObject> {
  apiVersion: string;
  kind: string;
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface WatchEvent<T = KubeObject> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** Where a kind is served: the plural resource name and whether objects live in a namespace. */
export interface ResourceMapping {
  apiVersion: string;
  kind: string;
  resource: string;
  namespaced: boolean;
}

/** Kinds a deployment manifest commonly holds; anything else is looked up through API discovery. */
const WELL_KNOWN: ResourceMapping[] = [
  ['v1', 'Namespace', 'namespaces', false],
  ['v1', 'ConfigMap', 'configmaps', true],
  ['v1', 'Secret', 'secrets', true],
  ['v1', 'Service', 'services', true],
  ['v1', 'ServiceAccount', 'serviceaccounts', true],
  ['v1', 'Pod', 'pods', true],
  ['v1', 'PersistentVolumeClaim', 'persistentvolumeclaims', true],
  ['v1', 'ReplicationController', 'replicationcontrollers', true],
  ['v1', 'Event', 'events', true],
  ['apps/v1', 'Deployment', 'deployments', true],
  ['apps/v1', 'StatefulSet', 'statefulsets', true],
  ['apps/v1', 'DaemonSet', 'daemonsets', true],
  ['apps/v1', 'ReplicaSet', 'replicasets', true],
  ['batch/v1', 'Job', 'jobs', true],
  ['batch/v1', 'CronJob', 'cronjobs', true],
  ['autoscaling/v2', 'HorizontalPodAutoscaler', 'horizontalpodautoscalers', true],
  ['autoscaling/v1', 'HorizontalPodAutoscaler', 'horizontalpodautoscalers', true],
  ['policy/v1', 'PodDisruptionBudget', 'poddisruptionbudgets', true],
  ['networking.k8s.io/v1', 'Ingress', 'ingresses', true],
  ['networking.k8s.io/v1', 'NetworkPolicy', 'networkpolicies', true],
  ['rbac.authorization.k8s.io/v1', 'Role', 'roles', true],
  ['rbac.authorization.k8s.io/v1', 'RoleBinding', 'rolebindings', true],
  ['rbac.authorization.k8s.io/v1', 'ClusterRole', 'clusterroles', false],
  ['rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', 'clusterrolebindings', false],
].map(([apiVersion, kind, resource, namespaced]) => ({ apiVersion, kind, resource, namespaced }) as ResourceMapping);

export function wellKnownMapping(apiVersion: string, kind: string): ResourceMapping | undefined {
  return WELL_KNOWN.find((m) => m.apiVersion === apiVersion && m.kind === kind);
}

/** `/api/v1` for the core group, `/apis/<group>/<version>` otherwise. */
export function groupVersionPath(apiVersion: string): string {
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

/** The collection path (no name) or the object path (with name). */
export function resourcePath(mapping: ResourceMapping, namespace: string | undefined, name?: string): string {
  const ns = mapping.namespaced ? `/namespaces/${encodeURIComponent(namespace ?? 'default')}` : '';
  const tail = name === undefined ? '' : `/${encodeURIComponent(name)}`;
  return `${groupVersionPath(mapping.apiVersion)}${ns}/${mapping.resource}${tail}`;
}

export function mappingOf(
  kind: 'Deployment' | 'ReplicaSet' | 'Pod' | 'Service' | 'Secret' | 'Namespace' | 'Event',
): ResourceMapping {
  const found = WELL_KNOWN.find((m) => m.kind === kind);
  if (!found) throw new Error(`no mapping for ${kind}`);
  return found;
}

/** `Deployment/scoring` in namespace `ml` → `Deployment ml/scoring`, the way people name objects in logs. */
export function describeObject(obj: Pick<KubeObject, 'kind' | 'metadata'>): string {
  const ns = obj.metadata.namespace ? `${obj.metadata.namespace}/` : '';
  return `${obj.kind} ${ns}${obj.metadata.name ?? obj.metadata.generateName ?? '(unnamed)'}`;
}

/** A label selector's matchLabels as the `labelSelector` query string the API takes. */
export function labelSelectorQuery(matchLabels: Record<string, string> | undefined): string {
  return Object.entries(matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
