/**
 * Field ownership for server-side apply: which manager set which field, recorded in
 * `metadata.managedFields` in the FieldsV1 format (`f:name`, `k:{"name":"app"}`, `.`).
 */
import { clone, deepEqual, isPlainObject, type KubeObject, type ManagedFieldsEntry, timestamp } from './objects';
import { itemKey, listMapKeys, sameItem } from './patches';
import { failure } from './status';

/** One field path as FieldsV1 segments, e.g. ["f:spec","f:template",…,"k:{\"name\":\"app\"}","f:image"]. */
type Segments = string[];
/** Paths serialised with JSON.stringify so sets compare them by value. */
export type FieldSet = Set<string>;

// An item of an associative list is itself owned (FieldsV1 writes it as ".").
const itemMarker = '.';

const ignoredMetadata = new Set([
  'name',
  'namespace',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'managedFields',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'selfLink',
]);

function collect(value: unknown, path: Segments, fieldPath: string[], out: FieldSet): void {
  if (isPlainObject(value)) {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined);
    if (keys.length === 0 && path.length > 0) {
      out.add(JSON.stringify(path));
      return;
    }
    for (const key of keys) {
      if (path.length === 0 && (key === 'apiVersion' || key === 'kind' || key === 'status')) continue;
      if (path.length === 1 && path[0] === 'f:metadata' && ignoredMetadata.has(key)) continue;
      collect(value[key], [...path, `f:${key}`], [...fieldPath, key], out);
    }
    return;
  }
  const keys = Array.isArray(value) ? listMapKeys(fieldPath) : undefined;
  if (Array.isArray(value) && keys) {
    for (const item of value) {
      if (!isPlainObject(item)) continue;
      const itemPath = [...path, `k:${JSON.stringify(itemKey(item, keys))}`];
      out.add(JSON.stringify([...itemPath, itemMarker]));
      collect(item, itemPath, fieldPath, out);
    }
    return;
  }
  out.add(JSON.stringify(path));
}

/** Every leaf field (and associative-list item) that `object` sets. */
export function fieldSetOf(object: unknown): FieldSet {
  const out: FieldSet = new Set();
  if (isPlainObject(object) && Object.keys(object).length > 0) collect(object, [], [], out);
  return out;
}

export function toFieldsV1(fields: FieldSet): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const serialised of [...fields].sort()) {
    let node = root;
    for (const segment of JSON.parse(serialised) as Segments) {
      node[segment] ??= {};
      node = node[segment] as Record<string, unknown>;
    }
  }
  return root;
}

export function fromFieldsV1(trie: Record<string, unknown>, path: Segments = [], out: FieldSet = new Set()): FieldSet {
  for (const [segment, child] of Object.entries(trie)) {
    const childPath = [...path, segment];
    if (isPlainObject(child) && Object.keys(child).length > 0) fromFieldsV1(child, childPath, out);
    else out.add(JSON.stringify(childPath));
  }
  return out;
}

/** The value at a FieldsV1 path, or undefined; `.` paths give the list item. */
function valueAt(object: unknown, segments: Segments): unknown {
  let current = object;
  for (const segment of segments) {
    if (segment === itemMarker) return current;
    if (segment.startsWith('f:')) {
      current = isPlainObject(current) ? current[segment.slice(2)] : undefined;
    } else if (segment.startsWith('k:') && Array.isArray(current)) {
      const key = JSON.parse(segment.slice(2)) as Record<string, unknown>;
      current = current.find((item) => sameItem(item, key, Object.keys(key)));
    } else return undefined;
    if (current === undefined) return undefined;
  }
  return current;
}

function removeAt(object: unknown, segments: Segments): void {
  const last = segments[segments.length - 1];
  const target = last === itemMarker ? segments.slice(0, -1) : segments;
  const parent = valueAt(object, target.slice(0, -1));
  const leaf = target[target.length - 1];
  if (leaf.startsWith('f:') && isPlainObject(parent)) delete parent[leaf.slice(2)];
  if (leaf.startsWith('k:') && Array.isArray(parent)) {
    const key = JSON.parse(leaf.slice(2)) as Record<string, unknown>;
    const index = parent.findIndex((item) => sameItem(item, key, Object.keys(key)));
    if (index >= 0) parent.splice(index, 1);
  }
}

/** Deep-merges an apply configuration into the live object: maps merge, associative lists merge by key. */
function mergeApplied(live: unknown, applied: unknown, fieldPath: string[]): unknown {
  if (isPlainObject(applied)) {
    const result: Record<string, unknown> = isPlainObject(live) ? clone(live) : {};
    for (const [key, value] of Object.entries(applied)) {
      result[key] = mergeApplied(result[key], value, [...fieldPath, key]);
    }
    return result;
  }
  const keys = Array.isArray(applied) ? listMapKeys(fieldPath) : undefined;
  if (Array.isArray(applied) && keys && Array.isArray(live)) {
    // Applied items come first in applied order; items only others own stay after them.
    const merged = applied.map((item) => {
      const existing = live.find((liveItem) => sameItem(liveItem, item, keys));
      return mergeApplied(existing, item, fieldPath);
    });
    for (const liveItem of live) {
      if (!applied.some((item) => sameItem(liveItem, item, keys))) merged.push(clone(liveItem));
    }
    return merged;
  }
  return clone(applied);
}

export interface ManagerFields {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  subresource?: string;
  fields: FieldSet;
}

export function readManagedFields(object: KubeObject): ManagerFields[] {
  return (object.metadata.managedFields ?? []).map((entry) => ({
    manager: entry.manager,
    operation: entry.operation,
    apiVersion: entry.apiVersion,
    time: entry.time,
    ...(entry.subresource ? { subresource: entry.subresource } : {}),
    fields: fromFieldsV1(entry.fieldsV1 ?? {}),
  }));
}

export function writeManagedFields(object: KubeObject, managers: ManagerFields[]): void {
  const entries: ManagedFieldsEntry[] = managers
    .filter((m) => m.fields.size > 0)
    .map((m) => ({
      manager: m.manager,
      operation: m.operation,
      apiVersion: m.apiVersion,
      time: m.time,
      fieldsType: 'FieldsV1',
      fieldsV1: toFieldsV1(m.fields),
      ...(m.subresource ? { subresource: m.subresource } : {}),
    }));
  if (entries.length > 0) object.metadata.managedFields = entries;
  else delete object.metadata.managedFields;
}

function describePath(serialised: string): string {
  return (JSON.parse(serialised) as Segments)
    .filter((s) => s !== itemMarker)
    .map((s) =>
      s.startsWith('f:')
        ? `.${s.slice(2)}`
        : `[${s
            .slice(2)
            .replace(/^\{|\}$/g, '')
            .replace(/"(\w+)":/g, '$1=')}]`,
    )
    .join('');
}

export interface ApplyRequest {
  live: KubeObject | undefined;
  applied: KubeObject;
  manager: string;
  force: boolean;
  apiVersion: string;
  subresource?: string;
}

/**
 * Server-side apply: a field another manager owns and the applier sets to a different
 * value is a conflict (409) unless `force`; fields this manager applied before and
 * no longer applies, and nobody else owns, are removed.
 */
export function serverSideApply({ live, applied, manager, force, apiVersion, subresource }: ApplyRequest): KubeObject {
  const appliedFields = fieldSetOf(applied);
  const now = timestamp();
  if (!live) {
    const created = clone(applied);
    writeManagedFields(created, [
      {
        manager,
        operation: 'Apply',
        apiVersion,
        time: now,
        fields: appliedFields,
        ...(subresource ? { subresource } : {}),
      },
    ]);
    return created;
  }
  const managers = readManagedFields(live);
  const isMine = (m: ManagerFields) =>
    m.manager === manager && m.operation === 'Apply' && m.subresource === subresource;
  const conflicts: { manager: string; apiVersion: string; path: string }[] = [];
  for (const other of managers.filter((m) => !isMine(m))) {
    for (const path of appliedFields) {
      if (!other.fields.has(path)) continue;
      const segments = JSON.parse(path) as Segments;
      if (segments[segments.length - 1] === itemMarker) continue;
      if (!deepEqual(valueAt(applied, segments), valueAt(live, segments))) {
        conflicts.push({ manager: other.manager, apiVersion: other.apiVersion, path });
      }
    }
  }
  if (conflicts.length > 0 && !force) {
    const causes = conflicts.map((c) => ({
      reason: 'FieldManagerConflict',
      message: `conflict with "${c.manager}" using ${c.apiVersion}`,
      field: describePath(c.path),
    }));
    const lines = causes.map((c) => `- ${c.message}: ${c.field}`);
    const message =
      conflicts.length === 1
        ? `Apply failed with 1 conflict: ${causes[0].message}: ${causes[0].field}`
        : `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`;
    throw failure(409, 'Conflict', message, {
      name: applied.metadata.name,
      ...(apiVersion.includes('/') ? { group: apiVersion.split('/')[0] } : {}),
      kind: String(applied.kind ?? '').toLowerCase() + 's',
      causes,
    });
  }
  const mine = managers.find(isMine);
  const ownedByOthers = new Set<string>();
  for (const other of managers.filter((m) => !isMine(m))) {
    // Forcing takes only the conflicting fields; fields applied with equal values become shared.
    if (force) for (const c of conflicts) if (c.manager === other.manager) other.fields.delete(c.path);
    for (const path of other.fields) ownedByOthers.add(path);
  }
  const result = clone(live);
  if (mine) {
    const dropped = [...mine.fields].filter((p) => !appliedFields.has(p) && !ownedByOthers.has(p));
    // Deepest first, so an item is removed after (and regardless of) its own fields.
    dropped.sort((a, b) => b.length - a.length);
    for (const path of dropped) removeAt(result, JSON.parse(path) as Segments);
  }
  const { metadata: appliedMetadata, ...appliedRest } = applied;
  const merged = mergeApplied(result, appliedRest, []) as KubeObject;
  merged.metadata = mergeApplied(
    result.metadata,
    {
      labels: appliedMetadata.labels,
      annotations: appliedMetadata.annotations,
      ownerReferences: appliedMetadata.ownerReferences,
      finalizers: appliedMetadata.finalizers,
    },
    ['metadata'],
  ) as KubeObject['metadata'];
  for (const key of ['labels', 'annotations', 'ownerReferences', 'finalizers'] as const) {
    if (merged.metadata[key] === undefined) delete merged.metadata[key];
  }
  const next: ManagerFields[] = managers.filter((m) => !isMine(m));
  next.unshift({
    manager,
    operation: 'Apply',
    apiVersion,
    time: now,
    fields: appliedFields,
    ...(subresource ? { subresource } : {}),
  });
  writeManagedFields(merged, next);
  return merged;
}

/**
 * A non-apply write (create, update, patch): the writer takes the fields it changed,
 * and fields that no longer exist leave every manager's set.
 */
export function recordUpdate(
  before: KubeObject | undefined,
  after: KubeObject,
  manager: string,
  apiVersion: string,
  subresource?: string,
): void {
  const afterFields = fieldSetOf(after);
  const changed = [...afterFields].filter((path) => {
    const segments = JSON.parse(path) as Segments;
    return !before || !deepEqual(valueAt(before, segments), valueAt(after, segments));
  });
  const managers = before ? readManagedFields(before) : [];
  for (const m of managers) {
    for (const path of [...m.fields]) if (!afterFields.has(path) || changed.includes(path)) m.fields.delete(path);
  }
  if (changed.length > 0) {
    let entry = managers.find(
      (m) => m.manager === manager && m.operation === 'Update' && m.subresource === subresource,
    );
    if (!entry) {
      entry = {
        manager,
        operation: 'Update',
        apiVersion,
        time: timestamp(),
        fields: new Set(),
        ...(subresource ? { subresource } : {}),
      };
      managers.push(entry);
    }
    entry.time = timestamp();
    for (const path of changed) entry.fields.add(path);
  }
  writeManagedFields(after, managers);
}
