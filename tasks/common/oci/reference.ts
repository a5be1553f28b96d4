/**
 * Image references as docker and containerd read them: `[registry/]repository[:tag][@digest]`.
 * A first path component is a registry only when it has a dot or a port or is `localhost`;
 * otherwise the image is on Docker Hub, where one-component names live under `library/`.
 */

export const DOCKER_HUB = 'docker.io';
/** The host Docker Hub's registry API answers on. */
export const DOCKER_HUB_API = 'registry-1.docker.io';

export interface ImageReference {
  /** Host (and port) as written, with docker.io for Docker Hub. */
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export class InvalidReferenceError extends Error {
  constructor(
    readonly reference: string,
    readonly problem: string,
  ) {
    super(`'${reference}' is not a valid image reference: ${problem}`);
    this.name = 'InvalidReferenceError';
  }
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const HOST =
  /^(?:localhost|\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::\d{1,5})?$/;

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

export function isValidDigest(digest: string): boolean {
  return DIGEST.test(digest);
}

/** Turns free text (a model version such as "2024/05 rc1") into a valid tag, or undefined when nothing is left. */
export function sanitizeTag(text: string): string | undefined {
  const cleaned = text
    .replace(/[^A-Za-z0-9_.-]+/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 128);
  return cleaned && TAG.test(cleaned) ? cleaned : undefined;
}

function splitRegistry(name: string): { registry: string; path: string } {
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    return { registry: first, path: name.slice(slash + 1) };
  }
  return { registry: DOCKER_HUB, path: name };
}

function checkRepository(input: string, registry: string, repoPath: string): string {
  if (!repoPath) throw new InvalidReferenceError(input, 'the repository name is missing.');
  if (repoPath !== repoPath.toLowerCase())
    throw new InvalidReferenceError(input, 'repository names must be lowercase.');
  for (const component of repoPath.split('/')) {
    if (!COMPONENT.test(component)) {
      throw new InvalidReferenceError(
        input,
        `'${component}' is not a valid repository path component (lowercase letters, digits, and . _ - between them).`,
      );
    }
  }
  if (registry === DOCKER_HUB && !repoPath.includes('/')) return `library/${repoPath}`;
  if (repoPath.length > 255)
    throw new InvalidReferenceError(input, 'the repository name is longer than 255 characters.');
  return repoPath;
}

export function parseReference(input: string): ImageReference {
  const text = input.trim();
  if (!text) throw new InvalidReferenceError(input, 'it is empty.');
  if (/\s/.test(text)) throw new InvalidReferenceError(input, 'it contains spaces.');
  if (/^[a-z]+:\/\//i.test(text))
    throw new InvalidReferenceError(input, 'leave out the URL scheme (write registry/repository:tag).');
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest))
      throw new InvalidReferenceError(input, `'${digest}' is not a digest (sha256: and 64 lowercase hex digits).`);
  }
  const { registry, path: afterRegistry } = splitRegistry(rest);
  if (registry !== DOCKER_HUB && !HOST.test(registry))
    throw new InvalidReferenceError(input, `'${registry}' is not a valid registry host.`);
  let repoPath = afterRegistry;
  let tag: string | undefined;
  const colon = afterRegistry.lastIndexOf(':');
  if (colon >= 0) {
    tag = afterRegistry.slice(colon + 1);
    repoPath = afterRegistry.slice(0, colon);
    if (!TAG.test(tag))
      throw new InvalidReferenceError(
        input,
        `'${tag}' is not a valid tag (letters, digits, _ . -, at most 128, not starting with . or -).`,
      );
  }
  const repository = checkRepository(input, registry, repoPath);
  const normalisedRegistry = registry === 'index.docker.io' ? DOCKER_HUB : registry;
  return { registry: normalisedRegistry, repository, tag, digest };
}

/** A push target: registry and repository, no tag or digest (tags have their own input). */
export function parseRepository(input: string): { registry: string; repository: string } {
  const ref = parseReference(input);
  if (ref.tag || ref.digest)
    throw new InvalidReferenceError(input, 'give the repository only, without a tag or digest.');
  return { registry: ref.registry, repository: ref.repository };
}

/** The host the registry API is served from (Docker Hub's differs from its name). */
export function apiHostOf(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

export function formatReference(ref: ImageReference): string {
  const base = `${ref.registry}/${ref.repository}`;
  if (ref.digest) return `${base}${ref.tag ? `:${ref.tag}` : ''}@${ref.digest}`;
  return `${base}:${ref.tag ?? 'latest'}`;
}

/** What to ask the registry for: the digest when pinned, else the tag (latest when neither). */
export function manifestReferenceOf(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/**
 * An OCI image layout folder as skopeo's `oci:` transport names it: `oci:<path>`,
 * `oci:<path>:<ref-name>`, and (ours) `oci:<path>@sha256:<digest>`.
 */
export interface LayoutReference {
  /** The folder as written (relative paths are resolved by the caller). */
  path: string;
  /** The `org.opencontainers.image.ref.name` to pick. */
  refName?: string;
  digest?: string;
}

export const LAYOUT_PREFIX = 'oci:';

/** The OCI image-layout grammar for `org.opencontainers.image.ref.name`. */
const REF_COMPONENT = '[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*';
const REF_NAME = new RegExp(`^${REF_COMPONENT}(?:/${REF_COMPONENT})*$`);
const WINDOWS_DRIVE = /^[A-Za-z]:[\\/]/;

export function isLayoutReference(text: string): boolean {
  return text.trim().startsWith(LAYOUT_PREFIX);
}

/**
 * skopeo's rule (containers/image splitPathAndImage): the path ends at the first colon, so a
 * folder whose name holds a colon cannot be named (a Windows drive `C:\` excepted); what follows
 * is the ref name. A trailing `@sha256:<digest>` right after the path picks a manifest by digest.
 */
export function parseLayoutReference(input: string): LayoutReference {
  const text = input.trim();
  if (!text.startsWith(LAYOUT_PREFIX))
    throw new InvalidReferenceError(input, `an OCI layout reference starts with '${LAYOUT_PREFIX}'.`);
  const rest = text.slice(LAYOUT_PREFIX.length);
  const drive = WINDOWS_DRIVE.exec(rest)?.[0] ?? '';
  const afterDrive = rest.slice(drive.length);
  const checkPath = (p: string) => {
    if (!p) throw new InvalidReferenceError(input, 'the layout folder is missing: write oci:<folder>[:<ref-name>].');
    return p;
  };
  const pinned = /^([^:]*)@(sha256:[a-f0-9]{64})$/.exec(afterDrive);
  if (pinned) return { path: checkPath(drive + pinned[1]), digest: pinned[2] };
  const badPin = /^[^:]*@(sha\d+:.*)$/.exec(afterDrive);
  if (badPin)
    throw new InvalidReferenceError(input, `'${badPin[1]}' is not a digest (sha256: and 64 lowercase hex digits).`);
  const colon = afterDrive.indexOf(':');
  if (colon < 0) return { path: checkPath(drive + afterDrive) };
  const refName = afterDrive.slice(colon + 1);
  const layoutPath = checkPath(drive + afterDrive.slice(0, colon));
  if (!REF_NAME.test(refName)) {
    throw new InvalidReferenceError(
      input,
      `'${refName}' is not a valid ref name (letters, digits, and - . _ : @ + / between them). The folder ends at the first ':', as in skopeo; a folder name with ':' in it cannot be used.`,
    );
  }
  return { path: layoutPath, refName };
}

export function formatLayoutReference(ref: LayoutReference): string {
  return `${LAYOUT_PREFIX}${ref.path}${ref.digest ? `@${ref.digest}` : ref.refName ? `:${ref.refName}` : ''}`;
}
