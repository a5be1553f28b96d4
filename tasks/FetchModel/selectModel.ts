import * as path from 'node:path';

import { InputError, TaskError } from '../common/errors';
import { safeRelativePath } from '../common/fsutil';
import { compareByteOrder, folderEtag } from '../common/model/modelManifest';
import { mapLimited, type ObjectStore, type ObjectVersion, type StoredObject } from '../common/storage/objectStore';
import { compareSemVer, findSemVer, type SemVer } from './semver';

export type VersionSelector = 'exact' | 'latest' | 'semver' | 'metadata' | 'tags' | 'versionId' | 'snapshot';

export interface Selection {
  selector: VersionSelector;
  /** Blob name, or prefix (folder model, or where versions live). */
  modelPath: string;
  metadataFilter?: Record<string, string>;
  tagFilter?: string;
  versionId?: string;
  snapshot?: string;
  includePrerelease?: boolean;
}

/** A model that could be picked: one object, or every object under a folder prefix. */
export interface Candidate {
  /** Blob name (file) or prefix ending in `/` (folder). */
  key: string;
  layout: 'file' | 'folder';
  objects: StoredObject[];
  lastModified: Date;
  semver?: SemVer;
}

export interface ResolvedFile {
  object: StoredObject;
  /** Where it goes under the target folder: `/`-separated, checked to stay inside it. */
  relativePath: string;
}

export interface ResolvedModel {
  name: string;
  version: string;
  layout: 'file' | 'folder';
  /** The blob, or the folder prefix, without credentials. */
  uri: string;
  etag: string;
  lastModified: Date;
  versionId?: string;
  files: ResolvedFile[];
  sizeBytes: number;
  /** Why this one: one sentence for the log and the summary. */
  reason: string;
  /** Every candidate seen and what became of it, for the debug log and the summary. */
  considered: Array<{ key: string; note: string }>;
}

function asPrefix(modelPath: string): string {
  const trimmed = modelPath.replace(/^\/+/, '');
  return trimmed === '' || trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}

/**
 * Groups objects under `prefix` into candidates: a name with no further `/` is a single-file
 * candidate; anything deeper belongs to the folder candidate named by its first segment
 * (`models/churn/1.4.2/model.onnx` under `models/churn/` → folder `models/churn/1.4.2/`).
 */
export function groupCandidates(prefix: string, objects: readonly StoredObject[]): Candidate[] {
  const groups = new Map<string, Candidate>();
  for (const obj of objects) {
    if (!obj.name.startsWith(prefix) || obj.name.endsWith('/')) continue;
    const rest = obj.name.slice(prefix.length);
    const slash = rest.indexOf('/');
    const key = slash >= 0 ? prefix + rest.slice(0, slash + 1) : obj.name;
    let group = groups.get(key);
    if (!group) {
      const segment = slash >= 0 ? rest.slice(0, slash) : rest.slice(0, rest.length - path.posix.extname(rest).length);
      group = {
        key,
        layout: slash >= 0 ? 'folder' : 'file',
        objects: [],
        lastModified: obj.lastModified,
        semver: findSemVer(segment),
      };
      groups.set(key, group);
    }
    group.objects.push(obj);
    if (obj.lastModified > group.lastModified) group.lastModified = obj.lastModified;
  }
  return [...groups.values()];
}

const newestFirst = (a: Candidate, b: Candidate) =>
  b.lastModified.getTime() - a.lastModified.getTime() || compareByteOrder(b.key, a.key);

function describe(c: Candidate): string {
  return `${c.key} (${c.layout === 'folder' ? `${c.objects.length} files, ` : ''}modified ${c.lastModified.toISOString()}${c.semver ? `, version ${c.semver.text}` : ''})`;
}

/** Finds the one model the selection means, or fails listing what exists. */
export async function resolveModel(store: ObjectStore, sel: Selection): Promise<ResolvedModel> {
  switch (sel.selector) {
    case 'exact':
      return resolveExact(store, sel);
    case 'versionId':
    case 'snapshot':
      return resolvePinned(store, sel);
    default:
      return resolveAmongCandidates(store, sel);
  }
}

async function resolveExact(store: ObjectStore, sel: Selection): Promise<ResolvedModel> {
  const name = sel.modelPath.replace(/^\/+/, '');
  if (!name.endsWith('/')) {
    const single = await store.stat(name);
    if (single)
      return finish(
        store,
        {
          key: name,
          layout: 'file',
          objects: [single],
          lastModified: single.lastModified,
          semver: findSemVer(path.posix.basename(name)),
        },
        `'${name}' is the blob named in modelPath`,
        [],
        sel,
      );
  }
  const prefix = asPrefix(name);
  const objects = (await store.list(prefix)).filter((o) => !o.name.endsWith('/'));
  if (objects.length === 0)
    throw await nothingThere(store, name, `No blob is named '${name}' and nothing is stored under '${prefix}'`);
  const lastModified = objects.reduce((d, o) => (o.lastModified > d ? o.lastModified : d), objects[0].lastModified);
  return finish(
    store,
    { key: prefix, layout: 'folder', objects, lastModified, semver: findSemVer(path.posix.basename(prefix)) },
    `'${prefix}' is the folder named in modelPath (${objects.length} files)`,
    [],
    sel,
  );
}

async function resolvePinned(store: ObjectStore, sel: Selection): Promise<ResolvedModel> {
  const name = sel.modelPath.replace(/^\/+/, '');
  const pin = sel.selector === 'versionId' ? { versionId: sel.versionId } : { snapshot: sel.snapshot };
  const what = sel.selector === 'versionId' ? `version id ${sel.versionId}` : `snapshot ${sel.snapshot}`;
  if (name.endsWith('/'))
    throw new InputError(
      'modelPath',
      `a ${sel.selector} pins one blob, but '${name}' is a folder prefix. Name the blob.`,
    );
  const obj = await store.stat(name, pin);
  if (!obj) {
    // A deleted blob's versions outlive it, so list them whether or not the blob exists now.
    const versions = (await store.listVersions?.(name)) ?? [];
    if (versions.length)
      throw new TaskError(`'${name}' has no ${what}. ${describeVersions(versions)} Check the ${sel.selector}.`);
    const current = await store.stat(name);
    throw new TaskError(
      current
        ? `'${name}' exists, but has no ${what}. Check the ${sel.selector} (the portal lists a blob's versions and snapshots).`
        : (await nothingThere(store, name, `No blob is named '${name}'`)).message,
    );
  }
  return finish(
    store,
    {
      key: name,
      layout: 'file',
      objects: [obj],
      lastModified: obj.lastModified,
      semver: findSemVer(path.posix.basename(name)),
    },
    `'${name}' pinned to ${what}`,
    [],
    sel,
  );
}

/** "Its versions: <id> (current, 70 KB, modified ...), ...; its snapshots: ..." with the newest first, bounded. */
export function describeVersions(versions: ObjectVersion[]): string {
  const newestFirst = [...versions].sort((a, b) => b.lastModified.getTime() - a.lastModified.getTime());
  const line = (label: string, list: ObjectVersion[], id: (v: ObjectVersion) => string) => {
    if (!list.length) return undefined;
    const shown = list
      .slice(0, 20)
      .map(
        (v) =>
          `${id(v)} (${v.isCurrentVersion ? 'current, ' : ''}${v.sizeBytes} bytes, modified ${v.lastModified.toISOString()})`,
      );
    return `Its ${label}: ${shown.join(', ')}${list.length > shown.length ? `, and ${list.length - shown.length} more` : ''}.`;
  };
  const parts = [
    line(
      'versions',
      newestFirst.filter((v) => v.versionId && !v.snapshot),
      (v) => v.versionId!,
    ),
    line(
      'snapshots',
      newestFirst.filter((v) => v.snapshot),
      (v) => v.snapshot!,
    ),
  ].filter(Boolean);
  return parts.length ? parts.join(' ') : 'It has no versions or snapshots (is blob versioning on for the account?).';
}

async function resolveAmongCandidates(store: ObjectStore, sel: Selection): Promise<ResolvedModel> {
  const prefix = asPrefix(sel.modelPath);
  let candidates = groupCandidates(prefix, await store.list(prefix));
  if (candidates.length === 0) throw await nothingThere(store, prefix, `Nothing is stored under '${prefix}'`);
  const considered: Array<{ key: string; note: string }> = [];
  let reason: string;
  let winner: Candidate | undefined;

  if (sel.selector === 'latest') {
    candidates.sort(newestFirst);
    winner = candidates[0];
    candidates.forEach((c, i) =>
      considered.push({
        key: c.key,
        note: i === 0 ? 'newest: picked' : `older (modified ${c.lastModified.toISOString()})`,
      }),
    );
    reason = `newest last-modified (${winner.lastModified.toISOString()}) of ${candidates.length} under '${prefix}'`;
  } else if (sel.selector === 'semver') {
    const versioned: Candidate[] = [];
    for (const c of candidates) {
      if (!c.semver) considered.push({ key: c.key, note: 'no semantic version in its name: skipped' });
      else if (c.semver.prerelease.length && !sel.includePrerelease)
        considered.push({ key: c.key, note: `prerelease ${c.semver.text}: skipped (includePrerelease is false)` });
      else versioned.push(c);
    }
    if (versioned.length === 0) {
      throw new TaskError(
        `No name under '${prefix}' carries a semantic version (like 1.4.2)${sel.includePrerelease ? '' : ' that is not a prerelease'}. Found: ${candidates.slice(0, 20).map(describe).join('; ')}.`,
      );
    }
    versioned.sort((a, b) => compareSemVer(b.semver!, a.semver!) || newestFirst(a, b));
    winner = versioned[0];
    versioned.forEach((c, i) =>
      considered.push({
        key: c.key,
        note: i === 0 ? `highest version ${c.semver!.text}: picked` : `version ${c.semver!.text}: lower`,
      }),
    );
    reason = `highest semantic version (${winner.semver!.text}) of ${versioned.length} under '${prefix}'`;
  } else if (sel.selector === 'metadata') {
    const filter = sel.metadataFilter ?? {};
    const wanted = Object.entries(filter)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ');
    // S3 listings carry no metadata: fetch it (bounded) only for what is needed.
    candidates = await mapLimited(candidates, 8, async (c) => ({
      ...c,
      objects: await mapLimited(c.objects, 8, (o) => store.details(o)),
    }));
    const matches = candidates.filter((c) => {
      const matching = c.objects.filter((o) =>
        Object.entries(filter).every(([k, v]) => o.metadata?.[k.toLowerCase()] === v),
      ).length;
      if (matching !== c.objects.length)
        considered.push({
          key: c.key,
          note: matching
            ? `only ${matching} of ${c.objects.length} files have ${wanted}: skipped`
            : `metadata ${JSON.stringify(c.objects[0].metadata ?? {})} does not match`,
        });
      return matching === c.objects.length;
    });
    if (matches.length === 0)
      throw new TaskError(
        `No model under '${prefix}' has metadata ${wanted} (on every file). Seen: ${considered
          .slice(0, 20)
          .map((c) => `${c.key}: ${c.note}`)
          .join('; ')}.`,
      );
    matches.sort(newestFirst);
    winner = matches[0];
    matches.forEach((c, i) =>
      considered.push({ key: c.key, note: i === 0 ? `has ${wanted}, newest: picked` : `has ${wanted}, older` }),
    );
    reason = `metadata ${wanted}${matches.length > 1 ? `, newest of ${matches.length} matches` : ''}`;
  } else if (sel.selector === 'tags') {
    if (!store.findByTags)
      throw new InputError(
        'versionSelector',
        `'tags' (blob index tags) works with Azure Blob Storage only; for ${store.kind} use metadata, semver or latest.`,
      );
    const found = await store.findByTags(sel.tagFilter!);
    const tagged = new Map(found.map((f) => [f.name, f.tags]));
    const matches = candidates.filter((c) => {
      const matching = c.objects.filter((o) => tagged.has(o.name)).length;
      if (matching !== c.objects.length)
        considered.push({
          key: c.key,
          note: matching
            ? `only ${matching} of ${c.objects.length} files match the tag filter: skipped`
            : 'tags do not match',
        });
      return matching === c.objects.length;
    });
    if (matches.length === 0) {
      const elsewhere = found
        .filter((f) => !f.name.startsWith(prefix))
        .slice(0, 10)
        .map((f) => f.name);
      throw new TaskError(
        `No model under '${prefix}' matches the tag filter ${sel.tagFilter}.${elsewhere.length ? ` Blobs outside the prefix that match: ${elsewhere.join(', ')}.` : ''} Seen under the prefix: ${candidates.slice(0, 20).map(describe).join('; ')}.`,
      );
    }
    matches.sort(newestFirst);
    winner = matches[0];
    for (const o of winner.objects) o.tags = tagged.get(o.name);
    matches.forEach((c, i) =>
      considered.push({
        key: c.key,
        note: i === 0 ? 'matches the tag filter, newest: picked' : 'matches the tag filter, older',
      }),
    );
    reason = `tags match ${sel.tagFilter}${matches.length > 1 ? `, newest of ${matches.length} matches` : ''}`;
  } else {
    throw new Error(`internal: selector ${sel.selector as string}`);
  }
  return finish(store, winner, reason, considered, sel, prefix);
}

/** Turns the winning candidate into files to download, refusing names that would escape the target. */
async function finish(
  store: ObjectStore,
  c: Candidate,
  reason: string,
  considered: Array<{ key: string; note: string }>,
  sel: Selection,
  parentPrefix?: string,
): Promise<ResolvedModel> {
  const objects = await mapLimited(c.objects, 8, (o) => store.details(o));
  const files: ResolvedFile[] = objects.map((object) => {
    const rel = c.layout === 'file' ? path.posix.basename(object.name) : object.name.slice(c.key.length);
    const safe = safeRelativePath(rel);
    if (!safe || safe !== rel.replace(/\\/g, '/')) {
      throw new TaskError(
        `Refusing '${object.name}': its path '${rel}' would be written outside the target folder (it has '..', a leading '/', a drive letter or an empty segment). Rename the blob.`,
      );
    }
    return { object, relativePath: safe };
  });
  const seen = new Set<string>();
  for (const f of files) {
    const lower = f.relativePath.toLowerCase();
    if (seen.has(lower))
      throw new TaskError(
        `Two files of the model would land on '${f.relativePath}' (names differing only in case). Rename one of them.`,
      );
    seen.add(lower);
  }
  files.sort((a, b) => compareByteOrder(a.relativePath, b.relativePath));
  const meta = objects[0].metadata ?? {};
  const single = c.layout === 'file' ? objects[0] : undefined;
  const name = meta.modelname ?? deriveName(c, parentPrefix);
  const version =
    meta.modelversion ??
    c.semver?.text ??
    sel.versionId ??
    sel.snapshot ??
    (parentPrefix !== undefined && c.layout === 'folder' ? path.posix.basename(c.key) : undefined) ??
    (single ? single.etag : folderEtag(objects).slice(0, 12));
  return {
    name,
    version,
    layout: c.layout,
    uri: single ? single.uri : `${store.locationUri}/${c.key}`,
    etag: single ? single.etag : folderEtag(objects),
    lastModified: c.lastModified,
    versionId: single?.versionId ?? single?.snapshot,
    files,
    sizeBytes: objects.reduce((n, o) => n + o.sizeBytes, 0),
    reason,
    considered,
  };
}

function deriveName(c: Candidate, parentPrefix?: string): string {
  const segments = c.key.split('/').filter(Boolean);
  if (parentPrefix !== undefined && c.layout === 'folder') {
    const parent = parentPrefix.split('/').filter(Boolean);
    if (parent.length) return parent[parent.length - 1];
  }
  const last = segments[segments.length - 1] ?? 'model';
  if (c.layout === 'folder') return findSemVer(last) && segments.length > 1 ? segments[segments.length - 2] : last;
  const base = last.slice(0, last.length - path.posix.extname(last).length);
  return base.replace(/[-_]?v?\d+\.\d+\.\d+.*$/, '') || base;
}

async function nothingThere(store: ObjectStore, name: string, what: string): Promise<TaskError> {
  const parent = name.replace(/\/+$/, '').split('/').slice(0, -1).join('/');
  const parentPrefix = parent ? `${parent}/` : '';
  const nearby = groupCandidates(parentPrefix, await store.list(parentPrefix));
  if (nearby.length) {
    const shown = nearby.slice(0, 25).map((c) => c.key);
    return new TaskError(
      `${what} in ${store.locationUri}. Under '${parentPrefix || '(container root)'}' there is: ${shown.join(', ')}${nearby.length > shown.length ? `, and ${nearby.length - shown.length} more` : ''}. Check modelPath.`,
    );
  }
  const top = groupCandidates('', await store.list(''));
  if (top.length)
    return new TaskError(
      `${what} in ${store.locationUri}, and nothing under '${parentPrefix}' either. At the top level there is: ${top
        .slice(0, 25)
        .map((c) => c.key)
        .join(', ')}. Check modelPath.`,
    );
  return new TaskError(
    `${what} in ${store.locationUri}: the container is empty. Publish a model first (PublishModel), or check the container name.`,
  );
}
