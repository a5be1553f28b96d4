/** The apiserver's patch types: JSON merge patch, strategic merge patch, JSON patch. */
import { clone, deepEqual, isPlainObject } from './objects';
import { failure } from './status';

/**
 * Keys that identify items of associative lists (the `x-kubernetes-list-map-keys` /
 * `patchMergeKey` of the built-in types the task touches). `path` is the field path to the list.
 */
export function listMapKeys(path: string[]): string[] | undefined {
  const field = path[path.length - 1];
  const inContainer = path.some((p) => p === 'containers' || p === 'initContainers' || p === 'ephemeralContainers');
  switch (field) {
    case 'containers':
    case 'initContainers':
    case 'ephemeralContainers':
    case 'env':
    case 'volumes':
    case 'imagePullSecrets':
      return ['name'];
    case 'volumeMounts':
      return ['mountPath'];
    case 'ports':
      return inContainer ? ['containerPort', 'protocol'] : ['port', 'protocol'];
    case 'ownerReferences':
      return ['uid'];
    case 'conditions':
      return path.includes('status') ? ['type'] : undefined;
    default:
      return undefined;
  }
}

/** Defaults a key field may take when an item leaves it out (a port's protocol is TCP). */
export function itemKey(item: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const key: Record<string, unknown> = {};
  for (const k of keys) key[k] = item[k] ?? (k === 'protocol' ? 'TCP' : undefined);
  return key;
}

export function sameItem(a: unknown, b: unknown, keys: string[]): boolean {
  return isPlainObject(a) && isPlainObject(b) && deepEqual(itemKey(a, keys), itemKey(b, keys));
}

/** RFC 7386: objects merge recursively, null deletes, everything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return clone(patch);
  const result: Record<string, unknown> = isPlainObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/**
 * Strategic merge patch for the fields the task touches: like a merge patch, but
 * associative lists (containers, env, ports, volumes…) merge item by item on their
 * merge key, and items carrying `$patch: delete` are removed.
 */
export function strategicMergePatch(target: unknown, patch: unknown, path: string[] = []): unknown {
  if (!isPlainObject(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _ignored, ...rest } = patch;
    return clone(rest);
  }
  const result: Record<string, unknown> = isPlainObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) continue;
    const childPath = [...path, key];
    if (value === null) {
      delete result[key];
      continue;
    }
    const keys = listMapKeys(childPath);
    if (Array.isArray(value) && keys && Array.isArray(result[key])) {
      const merged = clone(result[key] as unknown[]);
      for (const item of value) {
        const index = merged.findIndex((existing) => sameItem(existing, item, keys.slice(0, 1)));
        if (isPlainObject(item) && item.$patch === 'delete') {
          if (index >= 0) merged.splice(index, 1);
        } else if (index >= 0) merged[index] = strategicMergePatch(merged[index], item, childPath);
        else merged.push(strategicMergePatch(undefined, item, childPath));
      }
      result[key] = merged;
    } else {
      result[key] = strategicMergePatch(result[key], value, childPath);
    }
  }
  return result;
}

function unescapePointer(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

function jsonPatchError(message: string) {
  return failure(422, 'Invalid', message);
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw jsonPatchError(`invalid JSON pointer "${pointer}"`);
  return pointer.slice(1).split('/').map(unescapePointer);
}

function locate(document: unknown, tokens: string[]): { parent: Record<string, unknown> | unknown[]; key: string } {
  let current = document;
  for (const token of tokens.slice(0, -1)) {
    if (Array.isArray(current)) current = current[Number(token)];
    else if (isPlainObject(current)) current = current[token];
    else current = undefined;
    if (current === undefined) throw jsonPatchError(`doc is missing path: "/${tokens.join('/')}": missing value`);
  }
  if (!Array.isArray(current) && !isPlainObject(current)) {
    throw jsonPatchError(`doc is missing path: "/${tokens.join('/')}": missing value`);
  }
  return { parent: current, key: tokens[tokens.length - 1] };
}

function readAt(document: unknown, pointer: string): unknown {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return document;
  const { parent, key } = locate(document, tokens);
  const value = Array.isArray(parent) ? parent[Number(key)] : parent[key];
  if (value === undefined) throw jsonPatchError(`doc is missing path: "${pointer}": missing value`);
  return value;
}

function removeAt(document: unknown, pointer: string): unknown {
  const { parent, key } = locate(document, parsePointer(pointer));
  if (Array.isArray(parent)) {
    const index = Number(key);
    if (!(index >= 0 && index < parent.length))
      throw jsonPatchError(`Unable to remove nonexistent key: ${key}: missing value`);
    return parent.splice(index, 1)[0];
  }
  if (!Object.hasOwn(parent, key)) throw jsonPatchError(`Unable to remove nonexistent key: ${key}: missing value`);
  const value = parent[key];
  delete parent[key];
  return value;
}

function addAt(document: unknown, pointer: string, value: unknown, replace: boolean): unknown {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return clone(value);
  const { parent, key } = locate(document, tokens);
  if (Array.isArray(parent)) {
    const index = key === '-' ? parent.length : Number(key);
    if (!(index >= 0 && index <= parent.length))
      throw jsonPatchError(`add operation does not apply: doc is missing path: "${pointer}": missing value`);
    if (replace) parent[index] = clone(value);
    else parent.splice(index, 0, clone(value));
  } else {
    if (replace && !Object.hasOwn(parent, key))
      throw jsonPatchError(`replace operation does not apply: doc is missing key: ${pointer}: missing value`);
    parent[key] = clone(value);
  }
  return document;
}

/** RFC 6902, applied to a copy; a failing `test` or a missing path is a 422 like the apiserver's. */
export function jsonPatch(target: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations))
    throw failure(400, 'BadRequest', 'json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let document = clone(target);
  for (const operation of operations) {
    if (!isPlainObject(operation) || typeof operation.op !== 'string' || typeof operation.path !== 'string') {
      throw jsonPatchError('Unable to decode JSON patch operation: missing op or path');
    }
    const { op, path } = operation;
    switch (op) {
      case 'add':
        document = addAt(document, path, operation.value, false);
        break;
      case 'replace':
        document = addAt(document, path, operation.value, true);
        break;
      case 'remove':
        removeAt(document, path);
        break;
      case 'move':
        document = addAt(document, path, removeAt(document, String(operation.from)), false);
        break;
      case 'copy':
        document = addAt(document, path, readAt(document, String(operation.from)), false);
        break;
      case 'test':
        if (!deepEqual(readAt(document, path), operation.value)) {
          throw jsonPatchError(
            `the server rejected our request due to an error in our request: testing value ${path} failed`,
          );
        }
        break;
      default:
        throw jsonPatchError(`Unexpected kind: ${op}`);
    }
  }
  return document;
}
