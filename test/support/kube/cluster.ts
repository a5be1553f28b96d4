/** Cluster state shared by the REST handlers and the controllers: object lifecycle, garbage collection, events. */
import { applyDefaults, ServiceAllocator, validateObject, validateUpdate } from './admission';
import { recordUpdate } from './managedFields';
import { clone, deepEqual, type KubeObject, newUid, randomSuffix, timestamp } from './objects';
import { apiVersionOf, type ResourceType, resourceTypeOfKind, resourceTypes } from './resources';
import { alreadyExists, failure, notFound } from './status';
import { ObjectStore } from './store';

export interface WriteOptions {
  dryRun?: boolean;
  /** Field manager recorded in managedFields for API writes; controllers pass none. */
  manager?: string;
  /** Set when managedFields were already computed (server-side apply). */
  managedFieldsDone?: boolean;
}

export type Propagation = 'Background' | 'Foreground' | 'Orphan';

export interface InvolvedObject {
  kind: string;
  apiVersion: string;
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  fieldPath?: string;
}

export class Cluster {
  readonly store = new ObjectStore();
  readonly allocator = new ServiceAllocator();

  constructor() {
    for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      this.create(resourceTypeOfKind('Namespace'), { metadata: { name } });
    }
  }

  requireNamespace(namespace: string | undefined): void {
    if (namespace !== undefined && !this.store.get(resourceTypeOfKind('Namespace'), undefined, namespace)) {
      throw notFound('namespaces', '', namespace);
    }
  }

  create(type: ResourceType, input: KubeObject, options: WriteOptions = {}): KubeObject {
    const object = clone(input);
    object.metadata ??= { name: '' };
    if (!type.namespaced) delete object.metadata.namespace;
    if (type.namespaced) this.requireNamespace(object.metadata.namespace);
    const namespace = type.namespaced ? object.metadata.namespace : undefined;
    if (object.metadata.namespace) {
      const ns = this.store.get(resourceTypeOfKind('Namespace'), undefined, object.metadata.namespace);
      if (ns?.metadata.deletionTimestamp) {
        throw failure(
          403,
          'Forbidden',
          `${type.resource} "${object.metadata.name}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`,
        );
      }
    }
    if (!object.metadata.name && object.metadata.generateName)
      object.metadata.name = `${object.metadata.generateName}${randomSuffix()}`;
    applyDefaults(type, object, this.allocator);
    validateObject(type, object);
    if (this.store.get(type, namespace, object.metadata.name))
      throw alreadyExists(type.resource, type.group, object.metadata.name);
    object.apiVersion = apiVersionOf(type);
    object.kind = type.kind;
    object.metadata.uid = newUid();
    object.metadata.creationTimestamp = timestamp();
    delete object.metadata.resourceVersion;
    delete object.metadata.deletionTimestamp;
    if (type.hasSpecGeneration || type.kind === 'Pod') object.metadata.generation = 1;
    else delete object.metadata.generation;
    if (options.manager && !options.managedFieldsDone)
      recordUpdate(undefined, object, options.manager, apiVersionOf(type));
    if (options.dryRun) return object;
    return this.store.put(type, object);
  }

  /** Stores a new version of an existing object; `next` carries the caller's status handling already. */
  update(
    type: ResourceType,
    before: KubeObject,
    input: KubeObject,
    options: WriteOptions & { subresource?: string } = {},
  ): KubeObject {
    const next = clone(input);
    next.metadata = {
      ...next.metadata,
      name: before.metadata.name,
      uid: before.metadata.uid!,
      creationTimestamp: before.metadata.creationTimestamp!,
      ...(before.metadata.namespace ? { namespace: before.metadata.namespace } : {}),
      ...(before.metadata.deletionTimestamp ? { deletionTimestamp: before.metadata.deletionTimestamp } : {}),
    };
    if (type.kind === 'Service') {
      // Omitted allocated fields keep their values on update, as the service registry does.
      const beforeSpec = before.spec as Record<string, unknown>;
      const nextSpec = (next.spec ??= {}) as Record<string, unknown>;
      nextSpec.clusterIP ??= beforeSpec.clusterIP;
      nextSpec.clusterIPs ??= beforeSpec.clusterIPs;
      const beforePorts = (beforeSpec.ports ?? []) as Record<string, unknown>[];
      for (const port of (nextSpec.ports ?? []) as Record<string, unknown>[]) {
        port.nodePort ??= beforePorts.find((p) => p.port === port.port)?.nodePort;
      }
    }
    applyDefaults(type, next, this.allocator);
    validateObject(type, next);
    validateUpdate(type, before, next);
    if (type.hasSpecGeneration) {
      const specChanged = !deepEqual(before.spec, next.spec);
      next.metadata.generation = (before.metadata.generation ?? 1) + (specChanged ? 1 : 0);
    } else if (before.metadata.generation !== undefined) next.metadata.generation = before.metadata.generation;
    if (options.manager && !options.managedFieldsDone)
      recordUpdate(before, next, options.manager, apiVersionOf(type), options.subresource);
    const unchanged = deepEqual(
      { ...next, metadata: { ...next.metadata, resourceVersion: undefined } },
      { ...before, metadata: { ...before.metadata, resourceVersion: undefined } },
    );
    // A no-op write keeps the resourceVersion and sends no watch event, like the apiserver.
    if (options.dryRun || unchanged)
      return { ...next, metadata: { ...next.metadata, resourceVersion: before.metadata.resourceVersion! } };
    return this.store.put(type, next);
  }

  /** Controller write of status (or any field), bypassing admission like the status subresource. */
  writeStatus(type: ResourceType, object: KubeObject, status: Record<string, unknown>): KubeObject {
    const current = this.store.get(type, object.metadata.namespace, object.metadata.name);
    if (!current || deepEqual(current.status, status)) return current ?? object;
    return this.store.put(type, { ...current, status });
  }

  /** Controller write of a whole object (spec/metadata changes by controllers). */
  writeObject(type: ResourceType, object: KubeObject): KubeObject {
    const current = this.store.get(type, object.metadata.namespace, object.metadata.name);
    if (!current) return object;
    const next: KubeObject = {
      ...object,
      metadata: { ...object.metadata, resourceVersion: current.metadata.resourceVersion },
    };
    if (type.hasSpecGeneration && !deepEqual(current.spec, next.spec))
      next.metadata.generation = (current.metadata.generation ?? 1) + 1;
    if (deepEqual(current, next)) return current;
    return this.store.put(type, next);
  }

  /**
   * Deletes an object and, unless orphaned, its dependents (by ownerReferences), as the
   * garbage collector does. Pods with a grace period stay Terminating until the kubelet
   * simulation removes them on the next tick.
   */
  delete(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    options: { propagation?: Propagation; gracePeriodSeconds?: number; dryRun?: boolean } = {},
  ): KubeObject {
    const existing = this.store.get(type, namespace, name);
    if (!existing) throw notFound(type.resource, type.group, name);
    if (options.dryRun) return existing;
    const propagation = options.propagation ?? 'Background';
    if (type.kind === 'Namespace') {
      for (const t of resourceTypes.filter((r) => r.namespaced)) {
        for (const item of this.store.list(t, name)) this.store.remove(t, name, item.metadata.name);
      }
      const terminating = clone(existing);
      terminating.metadata.deletionTimestamp = timestamp();
      (terminating.status as Record<string, unknown>) = { phase: 'Terminating' };
      return this.store.put(type, terminating);
    }
    const uid = existing.metadata.uid;
    for (const dependentType of resourceTypes.filter((r) => r.namespaced)) {
      for (const dependent of this.store.list(dependentType, namespace)) {
        const owners = dependent.metadata.ownerReferences ?? [];
        if (!owners.some((o) => o.uid === uid)) continue;
        if (propagation === 'Orphan') {
          const orphan = clone(dependent);
          orphan.metadata.ownerReferences = owners.filter((o) => o.uid !== uid);
          if (orphan.metadata.ownerReferences.length === 0) delete orphan.metadata.ownerReferences;
          this.store.put(dependentType, orphan);
        } else {
          this.delete(dependentType, namespace, dependent.metadata.name, { propagation: 'Background' });
        }
      }
    }
    const grace =
      options.gracePeriodSeconds ??
      (type.kind === 'Pod'
        ? Number((existing.spec as Record<string, unknown>)?.terminationGracePeriodSeconds ?? 30)
        : 0);
    if (type.kind === 'Pod' && grace > 0) {
      if (existing.metadata.deletionTimestamp) return existing;
      const terminating = clone(existing);
      terminating.metadata.deletionTimestamp = timestamp(new Date(Date.now() + grace * 1000));
      terminating.metadata.deletionGracePeriodSeconds = grace;
      return this.store.put(type, terminating);
    }
    return this.store.remove(type, namespace, name)!;
  }

  /** Records an Event, counting repeats of the same reason and message like the event recorder's aggregation. */
  recordEvent(
    involved: KubeObject,
    eventType: 'Normal' | 'Warning',
    reason: string,
    message: string,
    component: string,
    fieldPath?: string,
  ): void {
    const namespace = involved.metadata.namespace ?? 'default';
    if (!this.store.get(resourceTypeOfKind('Namespace'), undefined, namespace)) return;
    const eventTypeInfo = resourceTypeOfKind('Event');
    const now = timestamp();
    const existing = this.store.list(eventTypeInfo, namespace).find((e) => {
      const io = e.involvedObject as InvolvedObject;
      return io.uid === involved.metadata.uid && e.reason === reason && e.message === message && e.type === eventType;
    });
    if (existing) {
      this.store.put(eventTypeInfo, { ...existing, count: Number(existing.count ?? 1) + 1, lastTimestamp: now });
      return;
    }
    const involvedObject: InvolvedObject = {
      kind: String(involved.kind),
      namespace,
      name: involved.metadata.name,
      uid: involved.metadata.uid!,
      apiVersion: String(involved.apiVersion),
      resourceVersion: involved.metadata.resourceVersion!,
      ...(fieldPath ? { fieldPath } : {}),
    };
    this.store.put(eventTypeInfo, {
      metadata: {
        name: `${involved.metadata.name}.${Date.now().toString(16)}${randomSuffix(3)}`,
        namespace,
        uid: newUid(),
        creationTimestamp: now,
      },
      involvedObject,
      reason,
      message,
      source: { component, ...(component === 'kubelet' ? { host: nodeName } : {}) },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      type: eventType,
      eventTime: null,
      reportingComponent: component,
      reportingInstance: component === 'kubelet' ? nodeName : '',
    });
  }

  /** Pods owned (as controller) by the object with this uid. */
  ownedBy(type: ResourceType, namespace: string | undefined, ownerUid: string | undefined): KubeObject[] {
    return this.store
      .list(type, namespace)
      .filter((o) => (o.metadata.ownerReferences ?? []).some((r) => r.uid === ownerUid && r.controller));
  }
}

export const nodeName = 'aks-nodepool1-31718369-vmss000000';
