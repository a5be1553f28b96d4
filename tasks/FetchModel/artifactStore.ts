import { Readable } from 'node:stream';
import * as tl from 'azure-pipelines-task-lib/task';
import { TaskError } from '../common/errors';
import { TransientHttpError, isTransientStatus, parseRetryAfter, withRetry } from '../common/retry';
import { scrub } from '../common/secrets';
import { sliceStream, type ObjectStore, type StoredObject } from '../common/storage/objectStore';
import type { PipelineArtifactParameters } from './parameters';

/**
 * Another pipeline's artifact (published with PublishPipelineArtifact) as an ObjectStore, through
 * the Azure DevOps REST API 7.1 with the job's System.AccessToken:
 *   GET {project}/_apis/build/definitions?name=            the pipeline, by name
 *   GET {project}/_apis/build/builds?definitions=&resultFilter=succeeded&...   its latest good run
 *   GET {project}/_apis/build/builds/{id}/artifacts?artifactName=              the artifact
 *   GET .../artifacts?artifactName=&fileId={resource.data}&fileName=            its manifest (items)
 *   GET .../artifacts?artifactName=&fileId={item.blob.id}&fileName=             one file
 * Names are artifact paths without the leading '/'. The service serves whole files, so a resumed
 * download re-reads and skips what it already has.
 */

const API_VERSION = '7.1';

interface BuildRef {
  id: number;
  buildNumber: string;
  status?: string;
  result?: string;
  sourceBranch?: string;
  finishTime?: string;
}

interface ArtifactRef {
  id: number;
  name: string;
  resource: { type: string; data: string; downloadUrl?: string; properties?: Record<string, string> };
}

/** The dedup manifest a pipeline artifact's resource.data points to. */
interface ArtifactManifest {
  manifestFormat?: string;
  items: Array<{ path: string; blob: { id: string; size: number } }>;
}

export class PipelineArtifactStore implements ObjectStore {
  readonly kind = 'pipelineArtifact' as const;
  locationUri: string;
  private build?: BuildRef;
  private artifact?: ArtifactRef;
  private items?: StoredObject[];
  private readonly blobIds = new Map<string, string>();

  constructor(
    private readonly p: PipelineArtifactParameters,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {
    this.locationUri = `${p.collectionUri}${encodeURIComponent(p.project)}/_build?pipeline=${encodeURIComponent(p.pipeline)} artifact ${p.artifactName}`;
  }

  private projectUrl(pathAndQuery: string): string {
    return `${this.p.collectionUri}${encodeURIComponent(this.p.project)}/_apis/${pathAndQuery}${pathAndQuery.includes('?') ? '&' : '?'}api-version=${API_VERSION}`;
  }

  private async request(url: string, what: string, signal?: AbortSignal): Promise<Response> {
    const res = await this.fetchImpl(url, { headers: { Authorization: `Bearer ${this.p.accessToken}`, Accept: 'application/json' }, signal, redirect: 'follow' });
    if (isTransientStatus(res.status)) {
      await res.body?.cancel();
      throw new TransientHttpError(res.status, `${what} answered ${res.status}`, parseRetryAfter(res.headers.get('retry-after')));
    }
    if (res.status === 401 || res.status === 403 || res.status === 203) {
      await res.body?.cancel();
      throw new TaskError(`Azure DevOps refused to ${what} (HTTP ${res.status}). The job's build service identity needs read access to project '${this.p.project}' and its pipelines; for another project, allow it in the project settings (limit job authorization scope).`);
    }
    return res;
  }

  private async getJson<T>(pathAndQuery: string, what: string): Promise<T | undefined> {
    return withRetry(async () => {
      const res = await this.request(this.projectUrl(pathAndQuery), what);
      if (res.status === 404) {
        await res.body?.cancel();
        return undefined;
      }
      if (!res.ok) throw new TaskError(`Could not ${what}: HTTP ${res.status} ${scrub((await res.text()).slice(0, 300))}`);
      return (await res.json()) as T;
    }, { what });
  }

  private async resolveRun(): Promise<BuildRef> {
    if (this.build) return this.build;
    let definitionId: number;
    if (/^\d+$/.test(this.p.pipeline)) {
      definitionId = Number(this.p.pipeline);
    } else {
      const defs = await this.getJson<{ value: Array<{ id: number; name: string }> }>(`build/definitions?name=${encodeURIComponent(this.p.pipeline)}`, `find pipeline '${this.p.pipeline}'`);
      const def = defs?.value.find((d) => d.name.toLowerCase() === this.p.pipeline.toLowerCase()) ?? defs?.value[0];
      if (!def) {
        const all = await this.getJson<{ value: Array<{ name: string }> }>('build/definitions?$top=50', 'list pipelines');
        throw new TaskError(`No pipeline named '${this.p.pipeline}' in project '${this.p.project}'. Pipelines there: ${(all?.value ?? []).map((d) => d.name).join(', ') || '(none visible)'}.`);
      }
      definitionId = def.id;
    }
    if (this.p.runId !== undefined) {
      const run = await this.getJson<BuildRef & { definition?: { id: number } }>(`build/builds/${this.p.runId}`, `read run ${this.p.runId}`);
      if (!run) throw new TaskError(`Run ${this.p.runId} does not exist in project '${this.p.project}'.`);
      if (run.definition && run.definition.id !== definitionId) throw new TaskError(`Run ${this.p.runId} belongs to another pipeline (definition ${run.definition.id}), not '${this.p.pipeline}'.`);
      this.build = run;
    } else {
      const branch = this.p.branch ? (this.p.branch.startsWith('refs/') ? this.p.branch : `refs/heads/${this.p.branch}`) : undefined;
      const query = `build/builds?definitions=${definitionId}&statusFilter=completed&resultFilter=succeeded&queryOrder=finishTimeDescending&$top=1${branch ? `&branchName=${encodeURIComponent(branch)}` : ''}`;
      const runs = await this.getJson<{ value: BuildRef[] }>(query, `find the latest successful run of '${this.p.pipeline}'`);
      const run = runs?.value[0];
      if (!run) throw new TaskError(`Pipeline '${this.p.pipeline}' has no successful completed run${branch ? ` on ${branch}` : ''}. Run it first, or give runId.`);
      this.build = run;
    }
    tl.debug(`pipeline artifact: run ${this.build.id} (${this.build.buildNumber}) of definition ${definitionId}`);
    return this.build;
  }

  private async resolveArtifact(): Promise<{ build: BuildRef; artifact: ArtifactRef }> {
    const build = await this.resolveRun();
    if (!this.artifact) {
      const artifact = await this.getJson<ArtifactRef>(`build/builds/${build.id}/artifacts?artifactName=${encodeURIComponent(this.p.artifactName)}`, `read artifact '${this.p.artifactName}' of run ${build.id}`);
      if (!artifact) {
        const all = await this.getJson<{ value: ArtifactRef[] }>(`build/builds/${build.id}/artifacts`, `list the artifacts of run ${build.id}`);
        throw new TaskError(`Run ${build.buildNumber} (id ${build.id}) of '${this.p.pipeline}' has no artifact '${this.p.artifactName}'. Its artifacts: ${(all?.value ?? []).map((a) => a.name).join(', ') || '(none)'}.`);
      }
      if (artifact.resource.type !== 'PipelineArtifact') {
        throw new TaskError(`Artifact '${this.p.artifactName}' is a ${artifact.resource.type} artifact (published with PublishBuildArtifacts); this task reads pipeline artifacts (PublishPipelineArtifact). Publish the model with PublishPipelineArtifact.`);
      }
      this.artifact = artifact;
      this.locationUri = `${this.p.collectionUri}${encodeURIComponent(this.p.project)}/_build/results?buildId=${build.id}&view=artifacts artifact ${artifact.name}`;
    }
    return { build, artifact: this.artifact };
  }

  private fileUrl(buildId: number, fileId: string, fileName: string): string {
    return this.projectUrl(`build/builds/${buildId}/artifacts?artifactName=${encodeURIComponent(this.p.artifactName)}&fileId=${encodeURIComponent(fileId)}&fileName=${encodeURIComponent(fileName)}`);
  }

  async list(prefix: string): Promise<StoredObject[]> {
    if (!this.items) {
      const { build, artifact } = await this.resolveArtifact();
      const manifest = await withRetry(async () => {
        const res = await this.request(this.fileUrl(build.id, artifact.resource.data, 'manifest.json'), `read the file list of artifact '${artifact.name}'`);
        if (!res.ok) throw new TaskError(`Could not read the file list of artifact '${artifact.name}': HTTP ${res.status}`);
        return (await res.json()) as ArtifactManifest;
      }, { what: `artifact manifest of ${artifact.name}` });
      if (!Array.isArray(manifest?.items)) throw new TaskError(`Artifact '${artifact.name}' returned a file list this task does not understand (manifestFormat ${manifest?.manifestFormat ?? 'unknown'}).`);
      const finished = new Date(build.finishTime ?? 0);
      this.items = manifest.items
        .filter((i) => i.blob)
        .map((i) => {
          const name = i.path.replace(/^\/+/, '');
          this.blobIds.set(name, i.blob.id);
          // The dedup id is content-addressed: it changes exactly when the bytes do, so it serves as the ETag.
          return { name, sizeBytes: i.blob.size, lastModified: finished, etag: i.blob.id, metadata: {}, uri: `${this.locationUri}/${name}` } satisfies StoredObject;
        })
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    }
    return this.items.filter((i) => i.name.startsWith(prefix));
  }

  async stat(name: string): Promise<StoredObject | undefined> {
    return (await this.list('')).find((i) => i.name === name);
  }

  async details(obj: StoredObject): Promise<StoredObject> {
    return obj;
  }

  async readRange(obj: StoredObject, offset: number, count: number, opts: { signal: AbortSignal }): Promise<AsyncIterable<Uint8Array>> {
    const { build } = await this.resolveArtifact();
    const blobId = this.blobIds.get(obj.name);
    if (!blobId) throw new TaskError(`'${obj.name}' is not in artifact '${this.p.artifactName}'.`);
    const res = await this.request(this.fileUrl(build.id, blobId, obj.name.split('/').pop()!), `download '${obj.name}'`, opts.signal);
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw new TaskError(`Could not download '${obj.name}' from artifact '${this.p.artifactName}': HTTP ${res.status}`);
    }
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
    return sliceStream(body, offset, count);
  }

  async describeWhatExists(): Promise<string> {
    return `Artifact '${this.p.artifactName}' of run ${this.build?.buildNumber ?? '?'}.`;
  }
}
