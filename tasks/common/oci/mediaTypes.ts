/** The two manifest families a registry serves: Docker's v2 schema 2 and OCI's. */
export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  dockerManifestV1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export type ManifestFamily = 'oci' | 'docker';
export type LayerCompression = 'gzip' | 'none';

/** What a registry may answer a manifest GET with, in our order of preference. */
export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.dockerManifestList,
  MediaType.ociManifest,
  MediaType.dockerManifest,
].join(', ');

export function isIndexMediaType(mediaType: string | undefined): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

export function isImageManifestMediaType(mediaType: string | undefined): boolean {
  return mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest;
}

export function familyOf(manifestMediaType: string): ManifestFamily {
  return manifestMediaType === MediaType.dockerManifest || manifestMediaType === MediaType.dockerManifestList
    ? 'docker'
    : 'oci';
}

export function manifestMediaTypeOf(family: ManifestFamily): string {
  return family === 'docker' ? MediaType.dockerManifest : MediaType.ociManifest;
}

export function configMediaTypeOf(family: ManifestFamily): string {
  return family === 'docker' ? MediaType.dockerConfig : MediaType.ociConfig;
}

/** Layer media type for an appended layer, in the base manifest's own family. */
export function layerMediaTypeOf(family: ManifestFamily, compression: LayerCompression): string {
  if (family === 'docker') return compression === 'gzip' ? MediaType.dockerLayerGzip : MediaType.dockerLayer;
  return compression === 'gzip' ? MediaType.ociLayerGzip : MediaType.ociLayer;
}
