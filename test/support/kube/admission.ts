/** Defaulting and validation of the built-in types, with the apiserver's field paths and messages. */
import { deepEqual, ensureObject, isPlainObject, type KubeObject } from './objects';
import type { ResourceType } from './resources';
import { labelSelectorMatches, type LabelSelectorSpec } from './selectors';
import { type FieldError, invalid } from './status';

type Obj = Record<string, unknown>;

const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const qualifiedNamePart = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const configKey = /^[-._a-zA-Z0-9]+$/;

const labelMessage =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character " +
  "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const subdomainMessage =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character " +
  "(e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const labelNameMessage =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character " +
  "(e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

function asObject(value: unknown): Obj {
  return isPlainObject(value) ? value : {};
}

function asArray(value: unknown): Obj[] {
  return Array.isArray(value) ? value.map(asObject) : [];
}

/** Hands out cluster IPs and node ports the way the service allocators do (unique, from fixed ranges). */
export class ServiceAllocator {
  private nextIp = 10;
  private nextNodePort = 30000 + Math.floor(Math.random() * 2000);
  clusterIp(): string {
    const n = this.nextIp++;
    return `10.0.${Math.floor(n / 250)}.${(n % 250) + 1}`;
  }
  nodePort(): number {
    return this.nextNodePort++;
  }
}

function defaultContainer(container: Obj): void {
  const image = typeof container.image === 'string' ? container.image : '';
  const lastSegment = image.split('/').pop() ?? '';
  const tagged = lastSegment.includes(':') || image.includes('@');
  container.imagePullPolicy ??= !tagged || lastSegment.endsWith(':latest') ? 'Always' : 'IfNotPresent';
  container.terminationMessagePath ??= '/dev/termination-log';
  container.terminationMessagePolicy ??= 'File';
  container.resources ??= {};
  for (const port of asArray(container.ports)) port.protocol ??= 'TCP';
}

function defaultPodSpec(spec: Obj): void {
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.securityContext ??= {};
  spec.schedulerName ??= 'default-scheduler';
  for (const container of [...asArray(spec.containers), ...asArray(spec.initContainers)]) defaultContainer(container);
}

function defaultTemplate(spec: Obj): void {
  const template = ensureObject(spec, 'template');
  ensureObject(template, 'metadata');
  defaultPodSpec(ensureObject(template, 'spec'));
}

export function applyDefaults(type: ResourceType, object: KubeObject, allocator: ServiceAllocator): void {
  const spec = ensureObject(object, 'spec') as Obj;
  switch (type.kind) {
    case 'Namespace':
      spec.finalizers ??= ['kubernetes'];
      object.metadata.labels = { ...object.metadata.labels, 'kubernetes.io/metadata.name': object.metadata.name };
      object.status = { phase: 'Active', ...asObject(object.status) };
      break;
    case 'Deployment':
      spec.replicas ??= 1;
      spec.revisionHistoryLimit ??= 10;
      spec.progressDeadlineSeconds ??= 600;
      spec.strategy ??= { type: 'RollingUpdate' };
      if (asObject(spec.strategy).type === 'RollingUpdate') {
        const rolling = ensureObject(asObject(spec.strategy), 'rollingUpdate');
        rolling.maxSurge ??= '25%';
        rolling.maxUnavailable ??= '25%';
      }
      defaultTemplate(spec);
      break;
    case 'ReplicaSet':
      spec.replicas ??= 1;
      defaultTemplate(spec);
      break;
    case 'Pod':
      defaultPodSpec(spec);
      spec.serviceAccountName ??= 'default';
      spec.enableServiceLinks ??= true;
      object.status = { phase: 'Pending', qosClass: 'BestEffort', ...asObject(object.status) };
      break;
    case 'Service': {
      spec.type ??= 'ClusterIP';
      spec.sessionAffinity ??= 'None';
      if (spec.type !== 'ExternalName') {
        spec.clusterIP ??= allocator.clusterIp();
        spec.clusterIPs ??= [spec.clusterIP];
        spec.ipFamilies ??= ['IPv4'];
        spec.ipFamilyPolicy ??= 'SingleStack';
        spec.internalTrafficPolicy ??= 'Cluster';
      }
      if (spec.type === 'LoadBalancer' || spec.type === 'NodePort') spec.externalTrafficPolicy ??= 'Cluster';
      for (const port of asArray(spec.ports)) {
        port.protocol ??= 'TCP';
        port.targetPort ??= port.port;
        if (spec.type === 'LoadBalancer' || spec.type === 'NodePort') port.nodePort ??= allocator.nodePort();
      }
      object.status = { loadBalancer: {}, ...asObject(object.status) };
      break;
    }
    case 'Secret': {
      delete object.spec;
      object.type ??= 'Opaque';
      const stringData = asObject(object.stringData);
      if (Object.keys(stringData).length > 0) {
        const data = ensureObject(object, 'data');
        for (const [key, value] of Object.entries(stringData))
          data[key] = Buffer.from(String(value)).toString('base64');
      }
      delete object.stringData;
      break;
    }
    case 'HorizontalPodAutoscaler':
      spec.minReplicas ??= 1;
      if (!Array.isArray(spec.metrics) || spec.metrics.length === 0) {
        spec.metrics = [
          { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } },
        ];
      }
      break;
    case 'ConfigMap':
    case 'ServiceAccount':
    case 'Event':
      delete object.spec;
      break;
    default:
      break;
  }
}

function validateMetadata(type: ResourceType, object: KubeObject, errors: FieldError[]): void {
  const name = object.metadata.name;
  if (!name) {
    errors.push({ field: 'metadata.name', type: 'FieldValueRequired', detail: 'name or generateName is required' });
  } else {
    const labelNamed = type.kind === 'Namespace' || type.kind === 'Service';
    const pattern = labelNamed ? dns1123Label : dns1123Subdomain;
    if (!pattern.test(name) || name.length > (labelNamed ? 63 : 253)) {
      errors.push({
        field: 'metadata.name',
        type: 'FieldValueInvalid',
        value: name,
        detail: labelNamed ? labelNameMessage : subdomainMessage,
      });
    }
  }
  validateLabels(object.metadata.labels, 'metadata.labels', errors);
}

function validateLabels(labels: unknown, field: string, errors: FieldError[]): void {
  for (const [key, value] of Object.entries(asObject(labels))) {
    const [prefix, name] = key.includes('/')
      ? [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)]
      : ['', key];
    if ((prefix && !dns1123Subdomain.test(prefix)) || !qualifiedNamePart.test(name) || name.length > 63) {
      errors.push({
        field,
        type: 'FieldValueInvalid',
        value: key,
        detail:
          "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
      });
    }
    if (typeof value !== 'string' || !labelValue.test(value) || value.length > 63) {
      errors.push({
        field,
        type: 'FieldValueInvalid',
        value,
        detail: value !== null && String(value).length > 63 ? 'must be no more than 63 characters' : labelMessage,
      });
    }
  }
}

function validatePodSpec(spec: Obj, field: string, errors: FieldError[], templateOfController: boolean): void {
  const containers = asArray(spec.containers);
  if (containers.length === 0) errors.push({ field: `${field}.containers`, type: 'FieldValueRequired', detail: '' });
  const names = new Set<string>();
  containers.forEach((container, index) => {
    const at = `${field}.containers[${index}]`;
    const name = container.name;
    if (typeof name !== 'string' || !name) errors.push({ field: `${at}.name`, type: 'FieldValueRequired', detail: '' });
    else if (!dns1123Label.test(name))
      errors.push({ field: `${at}.name`, type: 'FieldValueInvalid', value: name, detail: labelNameMessage });
    else if (names.has(name))
      errors.push({ field: `${at}.name`, type: 'FieldValueDuplicate', value: name, detail: '' });
    if (typeof name === 'string') names.add(name);
    if (typeof container.image !== 'string' || !container.image.trim())
      errors.push({ field: `${at}.image`, type: 'FieldValueRequired', detail: '' });
    asArray(container.ports).forEach((port, p) => {
      const value = port.containerPort;
      if (typeof value !== 'number' || value < 1 || value > 65535) {
        errors.push({
          field: `${at}.ports[${p}].containerPort`,
          type: value === undefined ? 'FieldValueRequired' : 'FieldValueInvalid',
          value,
          detail: 'must be between 1 and 65535, inclusive',
        });
      }
    });
  });
  if (templateOfController && spec.restartPolicy !== undefined && spec.restartPolicy !== 'Always') {
    errors.push({
      field: `${field}.restartPolicy`,
      type: 'FieldValueNotSupported',
      value: spec.restartPolicy,
      detail: 'supported values: "Always"',
    });
  }
}

function validateReplicated(object: KubeObject, errors: FieldError[]): void {
  const spec = asObject(object.spec);
  const selector = spec.selector as LabelSelectorSpec | undefined;
  const template = asObject(spec.template);
  const templateLabels = asObject(asObject(template.metadata).labels) as Record<string, string>;
  if (!isPlainObject(selector)) {
    errors.push({ field: 'spec.selector', type: 'FieldValueRequired', detail: '' });
  } else if (
    Object.keys(asObject(selector.matchLabels)).length === 0 &&
    asArray(selector.matchExpressions).length === 0
  ) {
    errors.push({
      field: 'spec.selector',
      type: 'FieldValueInvalid',
      value: selector,
      detail: `empty selector is invalid for ${object.kind === 'ReplicaSet' ? 'replicaset' : 'deployment'}`,
    });
  } else if (!labelSelectorMatches(selector, templateLabels)) {
    errors.push({
      field: 'spec.template.metadata.labels',
      type: 'FieldValueInvalid',
      value: templateLabels,
      detail: '`selector` does not match template `labels`',
    });
  }
  validateLabels(templateLabels, 'spec.template.metadata.labels', errors);
  const replicas = spec.replicas;
  if (replicas !== undefined && (typeof replicas !== 'number' || replicas < 0)) {
    errors.push({
      field: 'spec.replicas',
      type: 'FieldValueInvalid',
      value: replicas,
      detail: 'must be greater than or equal to 0',
    });
  }
  validatePodSpec(asObject(template.spec), 'spec.template.spec', errors, true);
  if (object.kind === 'Deployment') {
    const deadline = spec.progressDeadlineSeconds;
    const minReady = typeof spec.minReadySeconds === 'number' ? spec.minReadySeconds : 0;
    if (typeof deadline === 'number' && deadline <= minReady) {
      errors.push({
        field: 'spec.progressDeadlineSeconds',
        type: 'FieldValueInvalid',
        value: deadline,
        detail: 'must be greater than minReadySeconds',
      });
    }
    const strategy = asObject(spec.strategy);
    if (strategy.type !== undefined && strategy.type !== 'RollingUpdate' && strategy.type !== 'Recreate') {
      errors.push({
        field: 'spec.strategy.type',
        type: 'FieldValueNotSupported',
        value: strategy.type,
        detail: 'supported values: "Recreate", "RollingUpdate"',
      });
    }
    if (strategy.type === 'Recreate' && strategy.rollingUpdate !== undefined) {
      errors.push({
        field: 'spec.strategy.rollingUpdate',
        type: 'FieldValueForbidden',
        detail: "may not be specified when strategy `type` is 'Recreate'",
      });
    }
  }
}

function validateService(object: KubeObject, errors: FieldError[]): void {
  const spec = asObject(object.spec);
  const type = spec.type ?? 'ClusterIP';
  if (!['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'].includes(String(type))) {
    errors.push({
      field: 'spec.type',
      type: 'FieldValueNotSupported',
      value: type,
      detail: 'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
    });
  }
  const ports = asArray(spec.ports);
  if (ports.length === 0 && spec.clusterIP !== 'None' && type !== 'ExternalName') {
    errors.push({ field: 'spec.ports', type: 'FieldValueRequired', detail: '' });
  }
  ports.forEach((port, index) => {
    if (ports.length > 1 && !port.name)
      errors.push({ field: `spec.ports[${index}].name`, type: 'FieldValueRequired', detail: '' });
    if (typeof port.port !== 'number' || port.port < 1 || port.port > 65535) {
      errors.push({
        field: `spec.ports[${index}].port`,
        type: port.port === undefined ? 'FieldValueRequired' : 'FieldValueInvalid',
        value: port.port,
        detail: 'must be between 1 and 65535, inclusive',
      });
    }
  });
}

function validateData(object: KubeObject, errors: FieldError[], base64: boolean): void {
  for (const [key, value] of Object.entries(asObject(object.data))) {
    if (!configKey.test(key)) {
      errors.push({
        field: `data[${key}]`,
        type: 'FieldValueInvalid',
        value: key,
        detail: "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
      });
    }
    if (base64 && (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0)) {
      errors.push({
        field: `data[${key}]`,
        type: 'FieldValueInvalid',
        value: '<secret contents redacted>',
        detail: 'illegal base64 data',
      });
    }
  }
}

export function validateObject(type: ResourceType, object: KubeObject): void {
  const errors: FieldError[] = [];
  validateMetadata(type, object, errors);
  const spec = asObject(object.spec);
  switch (type.kind) {
    case 'Deployment':
    case 'ReplicaSet':
      validateReplicated(object, errors);
      break;
    case 'Pod':
      validatePodSpec(spec, 'spec', errors, false);
      break;
    case 'Service':
      validateService(object, errors);
      break;
    case 'Secret':
      validateData(object, errors, true);
      break;
    case 'ConfigMap':
      validateData(object, errors, false);
      break;
    case 'HorizontalPodAutoscaler': {
      const target = asObject(spec.scaleTargetRef);
      if (!target.kind) errors.push({ field: 'spec.scaleTargetRef.kind', type: 'FieldValueRequired', detail: '' });
      if (!target.name) errors.push({ field: 'spec.scaleTargetRef.name', type: 'FieldValueRequired', detail: '' });
      const max = spec.maxReplicas;
      const min = typeof spec.minReplicas === 'number' ? spec.minReplicas : 1;
      if (typeof max !== 'number' || max < 1)
        errors.push({
          field: 'spec.maxReplicas',
          type: 'FieldValueInvalid',
          value: max,
          detail: 'must be greater than or equal to 1',
        });
      else if (max < min)
        errors.push({
          field: 'spec.maxReplicas',
          type: 'FieldValueInvalid',
          value: max,
          detail: 'must be greater than or equal to `minReplicas`',
        });
      break;
    }
    case 'PodDisruptionBudget':
      if (spec.minAvailable !== undefined && spec.maxUnavailable !== undefined) {
        errors.push({
          field: 'spec',
          type: 'FieldValueInvalid',
          value: spec,
          detail: 'minAvailable and maxUnavailable cannot be both set',
        });
      }
      break;
    default:
      break;
  }
  if (errors.length > 0) throw invalid(type.kind, type.group, object.metadata.name ?? '', errors);
}

/** Fields the apiserver refuses to change after creation. */
export function validateUpdate(type: ResourceType, before: KubeObject, after: KubeObject): void {
  const errors: FieldError[] = [];
  const immutable = (field: string, a: unknown, b: unknown) => {
    if (!deepEqual(a, b)) errors.push({ field, type: 'FieldValueInvalid', value: b, detail: 'field is immutable' });
  };
  const beforeSpec = asObject(before.spec);
  const afterSpec = asObject(after.spec);
  if (type.kind === 'Deployment' || type.kind === 'ReplicaSet')
    immutable('spec.selector', beforeSpec.selector, afterSpec.selector);
  if (type.kind === 'Service' && beforeSpec.clusterIP !== 'None' && afterSpec.clusterIP !== undefined)
    immutable('spec.clusterIP', beforeSpec.clusterIP, afterSpec.clusterIP);
  if (type.kind === 'Secret' && after.type !== undefined) immutable('type', before.type, after.type);
  if (type.kind === 'Pod') {
    const strip = (spec: Obj) => asArray(spec.containers).map((c) => ({ ...c, image: undefined }));
    if (!deepEqual(strip(beforeSpec), strip(afterSpec))) {
      errors.push({
        field: 'spec',
        type: 'FieldValueForbidden',
        detail:
          'pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
      });
    }
  }
  if (errors.length > 0) throw invalid(type.kind, type.group, after.metadata.name, errors);
}
