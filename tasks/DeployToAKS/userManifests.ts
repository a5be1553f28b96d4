/**
 * The user's own manifests: multi-document YAML files, with $(name) tokens replaced and the
 * baked image put in place of the repository's old image. Every error names the file and document.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import * as yaml from 'js-yaml';

import { TaskError } from '../common/errors';
import type { KubeObject } from '../common/kube/objects';
import { InvalidReferenceError, parseReference } from '../common/oci/reference';
import { containersOf, podTemplateOf } from './workloads';

export interface ManifestDocument {
  file: string;
  /** 1-based position of the document in its file. */
  index: number;
  /** 1-based line the document starts on. */
  line: number;
  object: KubeObject;
}

export class ManifestError extends TaskError {
  constructor(file: string, index: number, problem: string) {
    super(`${file}, document ${index}: ${problem}`);
    this.name = 'ManifestError';
  }
}

export interface TokenResult {
  text: string;
  replaced: string[];
  /** Left as written: Kubernetes itself expands $(VAR) in command, args and env values. */
  untouched: string[];
}

const TOKEN = /\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g;

/** Replaces $(name) from `variables` first, then `lookup` (pipeline variables); unknown tokens stay. */
export function substituteTokens(
  text: string,
  variables: Record<string, string>,
  lookup: (name: string) => string | undefined = () => undefined,
): TokenResult {
  const replaced = new Set<string>();
  const untouched = new Set<string>();
  const out = text.replace(TOKEN, (whole, name: string) => {
    const value = Object.prototype.hasOwnProperty.call(variables, name) ? variables[name] : lookup(name);
    if (value === undefined) {
      untouched.add(name);
      return whole;
    }
    replaced.add(name);
    return value;
  });
  return { text: out, replaced: [...replaced], untouched: [...untouched] };
}

/** Splits at `---` lines (YAML document markers), keeping where each document starts. */
function splitDocuments(text: string): Array<{ text: string; line: number }> {
  const lines = text.split(/\r?\n/);
  const docs: Array<{ text: string; line: number }> = [];
  let start = 0;
  let current: string[] = [];
  lines.forEach((line, i) => {
    if (/^---(\s.*)?$/.test(line) || /^\.\.\.\s*$/.test(line)) {
      docs.push({ text: current.join('\n'), line: start + 1 });
      current = [];
      start = i + 1;
    } else {
      current.push(line);
    }
  });
  docs.push({ text: current.join('\n'), line: start + 1 });
  return docs.filter((d) => d.text.replace(/#.*$/gm, '').trim() !== '');
}

export function parseManifestText(file: string, text: string): ManifestDocument[] {
  const out: ManifestDocument[] = [];
  splitDocuments(text).forEach((doc, i) => {
    const index = i + 1;
    let parsed: unknown;
    try {
      parsed = yaml.load(doc.text);
    } catch (err) {
      const e = err as { reason?: string; message: string; mark?: { line?: number; column?: number } };
      const where =
        e.mark?.line !== undefined ? ` at line ${doc.line + e.mark.line}, column ${(e.mark.column ?? 0) + 1}` : '';
      throw new ManifestError(file, index, `invalid YAML${where}: ${e.reason ?? e.message.split('\n')[0]}`);
    }
    if (parsed === null || parsed === undefined) return;
    if (typeof parsed !== 'object' || Array.isArray(parsed))
      throw new ManifestError(
        file,
        index,
        'is not a Kubernetes object (a YAML mapping with apiVersion, kind and metadata).',
      );
    const obj = parsed as Record<string, unknown>;
    if (obj.kind === 'List' && Array.isArray(obj.items)) {
      (obj.items as unknown[]).forEach((item, j) =>
        out.push({ file, index, line: doc.line, object: checkObject(file, index, item, ` (item ${j + 1})`) }),
      );
      return;
    }
    out.push({ file, index, line: doc.line, object: checkObject(file, index, obj, '') });
  });
  return out;
}

function checkObject(file: string, index: number, value: unknown, where: string): KubeObject {
  if (!value || typeof value !== 'object' || Array.isArray(value))
    throw new ManifestError(file, index, `${where}is not a Kubernetes object.`.trim());
  const obj = value as Record<string, unknown>;
  if (typeof obj.apiVersion !== 'string' || !obj.apiVersion)
    throw new ManifestError(file, index, `has no apiVersion${where}. Add e.g. apiVersion: apps/v1.`);
  if (typeof obj.kind !== 'string' || !obj.kind)
    throw new ManifestError(file, index, `has no kind${where}. Add e.g. kind: Deployment.`);
  const metadata = obj.metadata as Record<string, unknown> | undefined;
  if (!metadata || typeof metadata !== 'object' || typeof metadata.name !== 'string' || !metadata.name) {
    throw new ManifestError(
      file,
      index,
      `the ${obj.kind}${where} has no metadata.name. Server-side apply needs a name (generateName is not enough).`,
    );
  }
  return obj as unknown as KubeObject;
}

export function readManifestFiles(
  files: string[],
  variables: Record<string, string>,
  lookup: (name: string) => string | undefined,
): { documents: ManifestDocument[]; replaced: string[]; untouched: string[] } {
  const documents: ManifestDocument[] = [];
  const replaced = new Set<string>();
  const untouched = new Set<string>();
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new TaskError(`Could not read the manifest ${file}: ${(err as Error).message}`);
    }
    const tokens = substituteTokens(text, variables, lookup);
    tokens.replaced.forEach((t) => replaced.add(t));
    tokens.untouched.forEach((t) => untouched.add(t));
    documents.push(...parseManifestText(file, tokens.text));
  }
  return { documents, replaced: [...replaced], untouched: [...untouched] };
}

/** Relative file names for messages, from the folder the patterns were resolved in. */
export function displayName(file: string, root: string): string {
  const rel = path.relative(root, file);
  return rel && !rel.startsWith('..') ? rel : file;
}

export interface ImageSubstitution {
  file: string;
  index: number;
  object: string;
  container: string;
  from: string;
}

function repositoryKey(image: string): string | undefined {
  try {
    const ref = parseReference(image);
    return `${ref.registry}/${ref.repository}`;
  } catch (err) {
    if (err instanceof InvalidReferenceError) return undefined;
    throw err;
  }
}

/**
 * Sets `image` on every container (init containers too, in every workload kind) whose image is
 * from `repository`, tag or digest aside. Throws when nothing matches, listing what the manifests use.
 */
export function substituteImage(documents: ManifestDocument[], image: string, repository: string): ImageSubstitution[] {
  const wanted = repositoryKey(repository);
  if (!wanted) throw new TaskError(`'${repository}' is not an image repository name.`);
  const done: ImageSubstitution[] = [];
  const seen = new Set<string>();
  for (const doc of documents) {
    for (const { container, init } of containersOf(podTemplateOf(doc.object)?.spec)) {
      if (typeof container.image !== 'string') continue;
      seen.add(container.image);
      if (repositoryKey(container.image) !== wanted) continue;
      done.push({
        file: doc.file,
        index: doc.index,
        object: `${doc.object.kind}/${doc.object.metadata.name}`,
        container: init ? `${container.name} (init)` : container.name,
        from: container.image,
      });
      container.image = image;
    }
  }
  if (done.length === 0) {
    const files = [...new Set(documents.map((d) => d.file))].join(', ');
    const used = seen.size ? `Their containers use: ${[...seen].join(', ')}.` : 'They hold no containers.';
    throw new TaskError(
      `The image repository ${repository} matches no container in the manifests (${files}). ${used} Point a container's image at ${repository}, or set imageRepositoryInManifests to the repository the manifests name.`,
    );
  }
  return done;
}
