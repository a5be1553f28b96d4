/** Object storage with one resourceVersion counter and a bounded change history, like etcd behind the apiserver. */
import { clone, type KubeObject } from './objects';
import { apiVersionOf, type ResourceType } from './resources';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoredChange {
  resourceVersion: number;
  type: WatchEventType;
  resource: ResourceType;
  object: KubeObject;
}

export type ChangeListener = (change: StoredChange) => void;

function keyOf(type: ResourceType, namespace: string | undefined, name: string): string {
  return `${type.group}/${type.resource}/${namespace ?? ''}/${name}`;
}

export class ObjectStore {
  private readonly objects = new Map<string, KubeObject>();
  private readonly history: StoredChange[] = [];
  private readonly listeners = new Set<ChangeListener>();
  private revision: number;
  /** Changes at or below this revision are gone from history (compacted). */
  private compactedRevision: number;

  constructor(private readonly historyLimit = 5000) {
    // Real clusters start far from 1; starting high also catches clients that assume small numbers.
    this.revision = 1000;
    this.compactedRevision = this.revision;
  }

  get resourceVersion(): number {
    return this.revision;
  }

  get oldestWatchableRevision(): number {
    return this.compactedRevision;
  }

  get(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    const object = this.objects.get(keyOf(type, namespace, name));
    return object ? clone(object) : undefined;
  }

  /** Objects of a type, sorted by namespace then name as etcd returns them. */
  list(type: ResourceType, namespace?: string): KubeObject[] {
    const prefix = `${type.group}/${type.resource}/${namespace ?? ''}`;
    return [...this.objects.entries()]
      .filter(([key]) =>
        namespace === undefined ? key.startsWith(`${type.group}/${type.resource}/`) : key.startsWith(`${prefix}/`),
      )
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, object]) => clone(object));
  }

  /** Stores the object with a new resourceVersion and returns the stored copy. */
  put(type: ResourceType, object: KubeObject): KubeObject {
    const key = keyOf(type, object.metadata.namespace, object.metadata.name);
    const existed = this.objects.has(key);
    const stored = clone(object);
    stored.apiVersion = apiVersionOf(type);
    stored.kind = type.kind;
    stored.metadata.resourceVersion = String(++this.revision);
    this.objects.set(key, stored);
    this.record(existed ? 'MODIFIED' : 'ADDED', type, stored);
    return clone(stored);
  }

  remove(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    const key = keyOf(type, namespace, name);
    const existing = this.objects.get(key);
    if (!existing) return undefined;
    this.objects.delete(key);
    const deleted = clone(existing);
    deleted.metadata.resourceVersion = String(++this.revision);
    this.record('DELETED', type, deleted);
    return clone(deleted);
  }

  /** Changes after `revision`, oldest first; undefined when history no longer reaches back that far. */
  changesSince(revision: number): StoredChange[] | undefined {
    if (revision < this.compactedRevision) return undefined;
    return this.history.filter((change) => change.resourceVersion > revision);
  }

  /** Drops all history, as etcd compaction does; older resourceVersions then get 410 Gone. */
  compact(): void {
    this.history.length = 0;
    this.compactedRevision = this.revision;
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private record(type: WatchEventType, resource: ResourceType, object: KubeObject): void {
    const change: StoredChange = { resourceVersion: this.revision, type, resource, object };
    this.history.push(change);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.compactedRevision = dropped[dropped.length - 1].resourceVersion;
    }
    for (const listener of this.listeners) listener(change);
  }
}
