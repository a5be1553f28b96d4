/** The resource types this server serves, and the discovery documents describing them. */

export interface ResourceType {
  /** Plural resource name in paths, e.g. `deployments`. */
  resource: string;
  singular: string;
  kind: string;
  group: string;
  version: string;
  namespaced: boolean;
  shortNames?: string[];
  subresources: string[];
  /** Whether `metadata.generation` tracks spec changes (and status is a subresource). */
  hasSpecGeneration: boolean;
  /** Field selector labels the apiserver accepts for this type, beyond metadata.name/namespace. */
  fieldLabels: string[];
}

const verbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function type(
  spec: Omit<ResourceType, 'fieldLabels' | 'subresources' | 'hasSpecGeneration'> & Partial<ResourceType>,
): ResourceType {
  return { fieldLabels: [], subresources: [], hasSpecGeneration: false, ...spec };
}

export const resourceTypes: ResourceType[] = [
  type({
    resource: 'namespaces',
    singular: 'namespace',
    kind: 'Namespace',
    group: '',
    version: 'v1',
    namespaced: false,
    shortNames: ['ns'],
    subresources: ['status', 'finalize'],
    fieldLabels: ['status.phase'],
  }),
  type({
    resource: 'pods',
    singular: 'pod',
    kind: 'Pod',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['po'],
    subresources: ['status', 'log'],
    fieldLabels: [
      'spec.nodeName',
      'spec.restartPolicy',
      'spec.schedulerName',
      'spec.serviceAccountName',
      'status.phase',
      'status.podIP',
      'status.nominatedNodeName',
    ],
  }),
  type({
    resource: 'services',
    singular: 'service',
    kind: 'Service',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['svc'],
    subresources: ['status', 'proxy'],
  }),
  type({
    resource: 'secrets',
    singular: 'secret',
    kind: 'Secret',
    group: '',
    version: 'v1',
    namespaced: true,
    fieldLabels: ['type'],
  }),
  type({
    resource: 'configmaps',
    singular: 'configmap',
    kind: 'ConfigMap',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['cm'],
  }),
  type({
    resource: 'serviceaccounts',
    singular: 'serviceaccount',
    kind: 'ServiceAccount',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['sa'],
  }),
  type({
    resource: 'events',
    singular: 'event',
    kind: 'Event',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['ev'],
    fieldLabels: [
      'involvedObject.kind',
      'involvedObject.namespace',
      'involvedObject.name',
      'involvedObject.uid',
      'involvedObject.apiVersion',
      'involvedObject.resourceVersion',
      'involvedObject.fieldPath',
      'reason',
      'reportingComponent',
      'source',
      'type',
    ],
  }),
  type({
    resource: 'deployments',
    singular: 'deployment',
    kind: 'Deployment',
    group: 'apps',
    version: 'v1',
    namespaced: true,
    shortNames: ['deploy'],
    subresources: ['status'],
    hasSpecGeneration: true,
  }),
  type({
    resource: 'replicasets',
    singular: 'replicaset',
    kind: 'ReplicaSet',
    group: 'apps',
    version: 'v1',
    namespaced: true,
    shortNames: ['rs'],
    subresources: ['status'],
    hasSpecGeneration: true,
    fieldLabels: ['status.replicas'],
  }),
  type({
    resource: 'horizontalpodautoscalers',
    singular: 'horizontalpodautoscaler',
    kind: 'HorizontalPodAutoscaler',
    group: 'autoscaling',
    version: 'v2',
    namespaced: true,
    shortNames: ['hpa'],
    subresources: ['status'],
    hasSpecGeneration: true,
  }),
  type({
    resource: 'poddisruptionbudgets',
    singular: 'poddisruptionbudget',
    kind: 'PodDisruptionBudget',
    group: 'policy',
    version: 'v1',
    namespaced: true,
    shortNames: ['pdb'],
    subresources: ['status'],
    hasSpecGeneration: true,
  }),
];

export function apiVersionOf(type: ResourceType): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

export function findResourceType(group: string, version: string, resource: string): ResourceType | undefined {
  return resourceTypes.find((t) => t.group === group && t.version === version && t.resource === resource);
}

export function resourceTypeOfKind(kind: string): ResourceType {
  const found = resourceTypes.find((t) => t.kind === kind);
  if (!found) throw new Error(`unknown kind ${kind}`);
  return found;
}

export function listKind(type: ResourceType): string {
  return `${type.kind}List`;
}

export const serverVersion = {
  major: '1',
  minor: '31',
  gitVersion: 'v1.31.2',
  gitCommit: '5864a4677267e6adeae276ad85882a8714d69d9d',
  gitTreeState: 'clean',
  buildDate: '2024-10-22T20:28:14Z',
  goVersion: 'go1.22.8',
  compiler: 'gc',
  platform: 'linux/amd64',
};

export function coreApiVersions(): Record<string, unknown> {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '10.0.0.1:443' }],
  };
}

function groupVersions(): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const t of resourceTypes) {
    if (!t.group) continue;
    const versions = groups.get(t.group) ?? [];
    if (!versions.includes(t.version)) versions.push(t.version);
    groups.set(t.group, versions);
  }
  return groups;
}

function apiGroup(group: string, versions: string[]): Record<string, unknown> {
  const entries = versions.map((version) => ({ groupVersion: `${group}/${version}`, version }));
  return { name: group, versions: entries, preferredVersion: entries[0] };
}

export function apiGroupList(): Record<string, unknown> {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: [...groupVersions()].map(([group, versions]) => apiGroup(group, versions)),
  };
}

export function apiGroupDocument(group: string): Record<string, unknown> | undefined {
  const versions = groupVersions().get(group);
  return versions ? { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(group, versions) } : undefined;
}

export function apiResourceList(group: string, version: string): Record<string, unknown> | undefined {
  const types = resourceTypes.filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  const resources: Record<string, unknown>[] = [];
  for (const t of types) {
    resources.push({
      name: t.resource,
      singularName: t.singular,
      namespaced: t.namespaced,
      kind: t.kind,
      verbs,
      ...(t.shortNames ? { shortNames: t.shortNames } : {}),
      storageVersionHash: Buffer.from(t.kind).toString('base64').slice(0, 11),
    });
    for (const sub of t.subresources) {
      const subVerbs =
        sub === 'log'
          ? ['get']
          : sub === 'proxy'
            ? ['create', 'delete', 'get', 'patch', 'update']
            : ['get', 'patch', 'update'];
      resources.push({
        name: `${t.resource}/${sub}`,
        singularName: '',
        namespaced: t.namespaced,
        kind: sub === 'log' || sub === 'proxy' ? (sub === 'log' ? 'Pod' : 'ServiceProxyOptions') : t.kind,
        verbs: subVerbs,
      });
    }
  }
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group ? `${group}/${version}` : version,
    resources,
  };
}
