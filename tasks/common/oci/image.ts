import * as crypto from 'node:crypto';

import { configMediaTypeOf, familyOf, type ManifestFamily, MediaType } from './mediaTypes';

/**
 * Image mutation with no I/O: appending a layer updates `manifest.layers`,
 * `config.rootfs.diff_ids` and `config.history` together; config changes merge into the
 * base's; `serializeImage` re-serialises the config and points the manifest at it.
 */

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  [extra: string]: unknown;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
  [extra: string]: unknown;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  [extra: string]: unknown;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  comment?: string;
  author?: string;
  empty_layer?: boolean;
}

export interface ContainerConfig {
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Labels?: Record<string, string> | null;
  [extra: string]: unknown;
}

export interface ImageConfig {
  created?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
  [extra: string]: unknown;
}

/** The manifest's media type is the image's family: the output stays Docker or OCI as the base was. */
export interface Image {
  manifestMediaType: string;
  manifest: ImageManifest;
  config: ImageConfig;
}

export interface LayerToAppend {
  descriptor: Descriptor;
  diffId: string;
  history: HistoryEntry;
}

export function familyOfImage(image: Image): ManifestFamily {
  return familyOf(image.manifestMediaType);
}

/** Checks the base is an image we can append to, before anything is changed. */
export function checkImage(image: Image): void {
  const diffIds = image.config.rootfs?.diff_ids;
  if (!Array.isArray(diffIds)) throw new Error('the image config has no rootfs.diff_ids');
  if (diffIds.length !== image.manifest.layers.length) {
    throw new Error(
      `the image config lists ${diffIds.length} layer diff IDs but the manifest has ${image.manifest.layers.length} layers`,
    );
  }
}

export function appendLayer(image: Image, layer: LayerToAppend): Image {
  const config = structuredClone(image.config);
  config.rootfs = { type: 'layers', diff_ids: [...config.rootfs.diff_ids, layer.diffId] };
  config.history = [...(config.history ?? []), { ...layer.history }];
  const manifest = structuredClone(image.manifest);
  manifest.layers = [...manifest.layers, { ...layer.descriptor }];
  return { ...image, manifest, config };
}

export interface ConfigChanges {
  /** Set (or replaced, by name) in this order after the base's own. */
  env?: Array<[string, string]>;
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  user?: string;
  /** e.g. "3000/tcp"; a bare number means tcp. */
  exposedPorts?: string[];
  labels?: Record<string, string>;
  created?: string;
  /** Recorded as a history entry with no layer. */
  history?: HistoryEntry;
}

export function mergeEnv(base: readonly string[], changes: ReadonlyArray<[string, string]>): string[] {
  const env = [...base];
  for (const [name, value] of changes) {
    const at = env.findIndex((e) => e === name || e.startsWith(`${name}=`));
    if (at >= 0) env[at] = `${name}=${value}`;
    else env.push(`${name}=${value}`);
  }
  return env;
}

export function normalisePort(port: string): string {
  const trimmed = port.trim().toLowerCase();
  return /^\d+$/.test(trimmed) ? `${trimmed}/tcp` : trimmed;
}

export function mutateConfig(image: Image, changes: ConfigChanges): Image {
  const config = structuredClone(image.config);
  const container: ContainerConfig = { ...(config.config ?? {}) };
  if (changes.env?.length) container.Env = mergeEnv(container.Env ?? [], changes.env);
  if (changes.entrypoint) {
    container.Entrypoint = changes.entrypoint;
    // As in a Dockerfile: a new ENTRYPOINT drops the base's CMD unless a CMD is given too.
    if (!changes.cmd) container.Cmd = null;
  }
  if (changes.cmd) container.Cmd = changes.cmd;
  if (changes.workingDir !== undefined) container.WorkingDir = changes.workingDir;
  if (changes.user !== undefined) container.User = changes.user;
  if (changes.exposedPorts?.length) {
    const ports = { ...(container.ExposedPorts ?? {}) };
    for (const p of changes.exposedPorts) ports[normalisePort(p)] = {};
    container.ExposedPorts = ports;
  }
  if (changes.labels && Object.keys(changes.labels).length)
    container.Labels = { ...(container.Labels ?? {}), ...changes.labels };
  config.config = container;
  if (changes.created !== undefined) config.created = changes.created;
  if (changes.history) config.history = [...(config.history ?? []), { ...changes.history, empty_layer: true }];
  return { ...image, config };
}

export function setManifestAnnotations(image: Image, annotations: Record<string, string>): Image {
  if (familyOfImage(image) !== 'oci' || Object.keys(annotations).length === 0) return image;
  const manifest = structuredClone(image.manifest);
  manifest.annotations = { ...(manifest.annotations ?? {}), ...annotations };
  return { ...image, manifest };
}

export function sha256Digest(bytes: Buffer | string): string {
  return `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
}

export interface SerializedImage {
  configBytes: Buffer;
  configDescriptor: Descriptor;
  manifestBytes: Buffer;
  manifestDigest: string;
  manifestMediaType: string;
  manifest: ImageManifest;
}

/** Config and manifest as the bytes pushed; JSON key order is kept, so equal images give equal digests. */
export function serializeImage(image: Image): SerializedImage {
  const configBytes = Buffer.from(JSON.stringify(image.config));
  const configDescriptor: Descriptor = {
    mediaType: image.manifest.config?.mediaType ?? configMediaTypeOf(familyOfImage(image)),
    digest: sha256Digest(configBytes),
    size: configBytes.length,
  };
  const manifest: ImageManifest = { ...image.manifest, mediaType: image.manifestMediaType, config: configDescriptor };
  // schemaVersion and mediaType first, as registries and other clients write them.
  const ordered: ImageManifest = Object.assign(
    { schemaVersion: 2 as const, mediaType: image.manifestMediaType },
    manifest,
  );
  const manifestBytes = Buffer.from(JSON.stringify(ordered));
  return {
    configBytes,
    configDescriptor,
    manifestBytes,
    manifestDigest: sha256Digest(manifestBytes),
    manifestMediaType: image.manifestMediaType,
    manifest: ordered,
  };
}

export function platformOf(config: ImageConfig): Platform {
  return { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
}

/** "linux/arm64/v8" → {os, architecture, variant}. */
export function parsePlatform(text: string): Platform | undefined {
  const parts = text.trim().toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) return undefined;
  return { os: parts[0], architecture: parts[1], ...(parts[2] ? { variant: parts[2] } : {}) };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** Variants that mean the same thing when one side leaves them out (arm64 is v8, arm is v7). */
function variantMatches(wanted: Platform, candidate: Platform): boolean {
  if (!wanted.variant) return true;
  const implicit = wanted.architecture === 'arm64' ? 'v8' : wanted.architecture === 'arm' ? 'v7' : undefined;
  return (candidate.variant ?? implicit) === wanted.variant;
}

/** The index entry for the platform, or undefined; entries without a platform are skipped (attestations). */
export function selectPlatform(index: ImageIndex, wanted: Platform): Descriptor | undefined {
  return index.manifests.find(
    (m) =>
      m.platform?.os === wanted.os &&
      m.platform.architecture === wanted.architecture &&
      variantMatches(wanted, m.platform),
  );
}

const DOCKER_TO_OCI_LAYER: Record<string, string> = {
  [MediaType.dockerLayerGzip]: MediaType.ociLayerGzip,
  [MediaType.dockerLayer]: MediaType.ociLayer,
  [MediaType.dockerForeignLayerGzip]: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
};

/**
 * The same image with OCI media types (same blobs, so the same layers and config bytes): what an
 * OCI image layout must hold, since skopeo and podman only read OCI manifests from a layout.
 */
export function withOciMediaTypes(image: Image): Image {
  if (familyOfImage(image) === 'oci') return image;
  const manifest = structuredClone(image.manifest);
  manifest.mediaType = MediaType.ociManifest;
  manifest.config = { ...manifest.config, mediaType: MediaType.ociConfig };
  manifest.layers = manifest.layers.map((l) => ({ ...l, mediaType: DOCKER_TO_OCI_LAYER[l.mediaType] ?? l.mediaType }));
  return { ...image, manifestMediaType: MediaType.ociManifest, manifest };
}
