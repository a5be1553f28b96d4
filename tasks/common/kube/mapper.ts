import type { KubeClient } from './client';
import { groupVersionPath, type ResourceMapping, wellKnownMapping } from './objects';

interface APIResourceList {
  resources?: Array<{ name: string; kind: string; namespaced: boolean }>;
}

/**
 * kind + apiVersion → REST resource, as kubectl's RESTMapper does: well-known kinds from a table,
 * the rest (custom resources) from API discovery, one request per group-version.
 */
export class ResourceMapper {
  private readonly discovered = new Map<string, APIResourceList | undefined>();

  constructor(private readonly client: KubeClient) {}

  async find(apiVersion: string, kind: string): Promise<ResourceMapping | undefined> {
    const known = wellKnownMapping(apiVersion, kind);
    if (known) return known;
    if (!this.discovered.has(apiVersion)) {
      this.discovered.set(apiVersion, await this.client.get<APIResourceList>(groupVersionPath(apiVersion)));
    }
    const list = this.discovered.get(apiVersion);
    const found = list?.resources?.find((r) => r.kind === kind && !r.name.includes('/'));
    return found ? { apiVersion, kind, resource: found.name, namespaced: found.namespaced } : undefined;
  }

  /** After find() missed: whether the server serves the apiVersion at all (for a clearer error). */
  groupVersionServed(apiVersion: string): boolean {
    return this.discovered.get(apiVersion) !== undefined;
  }
}
