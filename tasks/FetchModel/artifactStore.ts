import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

import { getBearerHandler, WebApi } from 'azure-devops-node-api';
import type { IBuildApi } from 'azure-devops-node-api/BuildApi';
import {
  type Build,
  type BuildArtifact,
  type BuildDefinitionReference,
  BuildQueryOrder,
  BuildResult,
  BuildStatus,
} from 'azure-devops-node-api/interfaces/BuildInterfaces';
import * as tl from 'azure-pipelines-task-lib/task';

import { errorMessage, TaskError } from '../common/errors';
import { isTransientStatus, parseRetryAfter, TransientHttpError, withRetry } from '../common/retry';
import { scrub } from '../common/secrets';
import { type ObjectStore, sliceStream, type StoredObject } from '../common/storage/objectStore';
import type { PipelineArtifactParameters } from './parameters';

/**
 * Another pipeline's artifact (published with PublishPipelineArtifact) as an ObjectStore.
 *
 * Discovery goes through azure-devops-node-api's BuildApi with the job's System.AccessToken
 * (bearer). The library finds its routes the way every Azure DevOps client does:
 *   OPTIONS {collection}/_apis/Location         → the ResourceAreas location (7.2-preview.1)
 *   GET     {collection}/_apis/ResourceAreas    → the Build area's base URL
 *   OPTIONS {buildArea}/_apis/build             → route templates and versions of the build area
 * then calls Definitions - List / Get (7.2-preview.7), Builds - List / Get (7.2-preview.7),
 * Artifacts - Get Artifact / List / Get File (7.2-preview.5), api-version in the Accept header.
 *
 * A pipeline artifact's resource.data is the id of its dedup manifest; Get File with that id
 * returns `{ manifestFormat, items: [{ path, blob: { id, size } }] }`, and with an item's blob id,
 * the file. The file bytes are read with our own fetch at the URL the library negotiated:
 * BuildApi.getFile hands back a bare IncomingMessage with no AbortSignal, so the ranged
 * downloader could neither abort a stalled transfer nor tell a resumed one from a new one. The
 * service serves whole files (no Range), so a resumed download re-reads and skips what it has.
 */

/** The dedup manifest a pipeline artifact's resource.data points to. */
interface ArtifactManifest {
  manifestFormat?: string;
  items: Array<{ path: string; blob?: { id: string; size: number } }>;
}

const ARTIFACTS_LOCATION = '1db06c96-014e-44e1-ac91-90b2d4b3e984';
const ARTIFACTS_API_VERSION = '7.2-preview.5';

function statusOf(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown })?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** `folder\name` or `folder/name` (definition names cannot hold either) → folder path and name. */
export function splitPipelinePath(pipeline: string): { folder?: string; name: string } {
  const parts = pipeline.split(/[\\/]+/).filter(Boolean);
  const name = parts.pop() ?? pipeline;
  return parts.length ? { folder: `\\${parts.join('\\')}`, name } : { name };
}

export function branchRef(branch: string): string {
  return branch.startsWith('refs/') ? branch : `refs/heads/${branch}`;
}

export class PipelineArtifactStore implements ObjectStore {
  readonly kind = 'pipelineArtifact' as const;
  locationUri: string;
  private buildApi?: Promise<IBuildApi>;
  private definition?: { id: number; name: string };
  private build?: Build;
  private artifact?: BuildArtifact;
  private items?: StoredObject[];
  private readonly blobIds = new Map<string, string>();

  constructor(
    private readonly p: PipelineArtifactParameters,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {
    this.locationUri = `${p.collectionUri}${encodeURIComponent(p.project)}/_build?pipeline=${encodeURIComponent(p.pipeline)} artifact ${p.artifactName}`;
  }

  private api(): Promise<IBuildApi> {
    // Our withRetry (logged, bounded, honouring Retry-After) retries; the library's own retries are off.
    this.buildApi ??= new WebApi(this.p.collectionUri.replace(/\/+$/, ''), getBearerHandler(this.p.accessToken), {
      allowRetries: false,
      socketTimeout: 120_000,
    }).getBuildApi();
    // A failed discovery (bad token, network) must be retried from scratch, not replayed.
    this.buildApi.catch(() => (this.buildApi = undefined));
    return this.buildApi;
  }

  /** One library call, retried on transient faults, its failures turned into messages a user can act on. */
  private async call<T>(what: string, fn: (build: IBuildApi) => Promise<T>): Promise<T> {
    try {
      return await withRetry(async () => fn(await this.api()), { what });
    } catch (err) {
      throw this.explain(err, what);
    }
  }

  private explain(err: unknown, what: string): Error {
    if (err instanceof TaskError) return err;
    const status = statusOf(err);
    if (status === 401 || status === 203) {
      return new TaskError(
        `Azure DevOps rejected System.AccessToken (HTTP ${status}) when asked to ${what}. The task authenticates with the job's OAuth token: in YAML it is there by default (check that no step overrides SYSTEM_ACCESSTOKEN); in a classic pipeline tick "Allow scripts to access the OAuth token" on the agent job. A token from another organization or an expired one is refused too.`,
        { cause: err },
      );
    }
    if (status === 403) {
      return new TaskError(
        `Azure DevOps refused to ${what} (HTTP 403): the job's build service identity may not read project '${this.p.project}' or its pipelines. For another project, turn off "Limit job authorization scope to current project" (Project settings > Pipelines > Settings) or give "<project> Build Service" read access to '${this.p.project}'.`,
        { cause: err },
      );
    }
    const detail = scrub(errorMessage(err)).split('\n')[0];
    return new TaskError(`Could not ${what} in ${this.p.collectionUri}: ${status ? `HTTP ${status}: ` : ''}${detail}`, {
      cause: err,
    });
  }

  private async resolveDefinition(): Promise<{ id: number; name: string }> {
    if (this.definition) return this.definition;
    const project = this.p.project;
    if (/^\d+$/.test(this.p.pipeline)) {
      const id = Number(this.p.pipeline);
      const def = await this.call(`read pipeline ${id}`, (b) => b.getDefinition(project, id));
      if (
        !def?.id &&
        !(await this.call('list pipelines', (b) =>
          b.getDefinitions(project, undefined, undefined, undefined, undefined, 1),
        ))
      )
        throw this.projectMissing();
      if (!def?.id)
        throw new TaskError(
          `Project '${project}' has no pipeline with id ${id} (or the job's identity cannot see it). ${await this.describePipelines()}`,
        );
      this.definition = { id: def.id, name: def.name ?? String(id) };
      return this.definition;
    }
    const { folder, name } = splitPipelinePath(this.p.pipeline);
    const defs = await this.call(`find pipeline '${this.p.pipeline}'`, (b) => b.getDefinitions(project, name));
    // The library turns a 404 into null; Definitions - List only answers 404 for the project.
    if (!defs) throw this.projectMissing();
    const named = defs.filter((d) => d.name?.toLowerCase() === name.toLowerCase());
    const matches = folder ? named.filter((d) => d.path?.toLowerCase() === folder.toLowerCase()) : named;
    if (matches.length === 0) {
      const elsewhere = named.map((d) => `${d.path}\\${d.name}`);
      throw new TaskError(
        elsewhere.length
          ? `No pipeline '${name}' in folder '${folder}' of project '${project}'; there is ${elsewhere.join(', ')}.`
          : `No pipeline named '${this.p.pipeline}' in project '${project}'. ${await this.describePipelines()}`,
      );
    }
    if (matches.length > 1) {
      throw new TaskError(
        `${matches.length} pipelines in project '${project}' are named '${name}': ${matches.map((d) => `${d.path}\\${d.name} (id ${d.id})`).join(', ')}. Give the folder (folder\\name) or the numeric id.`,
      );
    }
    this.definition = { id: matches[0].id!, name: matches[0].name! };
    return this.definition;
  }

  private projectMissing(): TaskError {
    return new TaskError(
      `Project '${this.p.project}' does not exist in ${this.p.collectionUri}, or the job's identity cannot see it. Check the project input (empty means this pipeline's project); for another project, turn off "Limit job authorization scope to current project" in Project settings > Pipelines > Settings.`,
    );
  }

  private async describePipelines(): Promise<string> {
    const all: BuildDefinitionReference[] =
      (await this.call('list pipelines', (b) =>
        b.getDefinitions(this.p.project, undefined, undefined, undefined, undefined, 50),
      )) ?? [];
    return `Pipelines there: ${all.map((d) => `${d.name} (id ${d.id})`).join(', ') || '(none visible to this job)'}.`;
  }

  private async resolveRun(): Promise<Build> {
    if (this.build) return this.build;
    const def = await this.resolveDefinition();
    const project = this.p.project;
    if (this.p.runId !== undefined) {
      const runId = this.p.runId;
      const run = await this.call(`read run ${runId}`, (b) => b.getBuild(project, runId));
      if (!run?.id)
        throw new TaskError(
          `Run ${runId} does not exist in project '${project}'. ${await this.describeRecentRuns(def)}`,
        );
      if (run.definition?.id !== undefined && run.definition.id !== def.id) {
        throw new TaskError(
          `Run ${runId} belongs to pipeline '${run.definition.name}' (id ${run.definition.id}), not '${def.name}' (id ${def.id}). ${await this.describeRecentRuns(def)}`,
        );
      }
      if (run.result !== BuildResult.Succeeded)
        tl.warning(
          `Run ${run.buildNumber} (id ${runId}) of '${def.name}' ${run.status === BuildStatus.Completed ? `ended ${BuildResult[run.result ?? 0]?.toLowerCase()}` : 'has not completed'}; taking its artifact anyway because runId names it.`,
        );
      this.build = run;
    } else {
      const branch = this.p.branch ? branchRef(this.p.branch) : undefined;
      const runs = await this.call(`find the latest successful run of '${def.name}'`, (b) =>
        b.getBuilds(
          project,
          [def.id],
          undefined,
          undefined,
          undefined,
          undefined,
          undefined,
          undefined,
          BuildStatus.Completed,
          BuildResult.Succeeded,
          undefined,
          undefined,
          1,
          undefined,
          undefined,
          undefined,
          BuildQueryOrder.FinishTimeDescending,
          branch,
        ),
      );
      const run = runs?.[0];
      if (!run?.id)
        throw new TaskError(
          `Pipeline '${def.name}' (id ${def.id}) has no successful completed run${branch ? ` on ${branch}` : ''}. Run it first, or give runId. ${await this.describeRecentRuns(def)}`,
        );
      this.build = run;
    }
    tl.debug(
      `pipeline artifact: run ${this.build.id} (${this.build.buildNumber}, ${this.build.sourceBranch}) of definition ${def.id}`,
    );
    return this.build;
  }

  private async describeRecentRuns(def: { id: number; name: string }): Promise<string> {
    const runs =
      (await this.call(`list the runs of '${def.name}'`, (b) =>
        b.getBuilds(
          this.p.project,
          [def.id],
          undefined,
          undefined,
          undefined,
          undefined,
          undefined,
          undefined,
          undefined,
          undefined,
          undefined,
          undefined,
          10,
          undefined,
          undefined,
          undefined,
          BuildQueryOrder.FinishTimeDescending,
        ),
      )) ?? [];
    if (!runs.length) return `'${def.name}' has no runs.`;
    const describe = (r: Build) =>
      `${r.id} (${r.buildNumber}, ${r.status === BuildStatus.Completed ? BuildResult[r.result ?? 0]?.toLowerCase() : BuildStatus[r.status ?? 0]?.toLowerCase()}, ${(r.sourceBranch ?? '').replace(/^refs\/heads\//, '')})`;
    return `Recent runs of '${def.name}': ${runs.map(describe).join(', ')}.`;
  }

  private async resolveArtifact(): Promise<{ build: Build; artifact: BuildArtifact }> {
    const build = await this.resolveRun();
    if (!this.artifact) {
      const buildId = build.id!;
      const artifact = await this.call(`read artifact '${this.p.artifactName}' of run ${buildId}`, (b) =>
        b.getArtifact(this.p.project, buildId, this.p.artifactName),
      );
      if (!artifact?.resource) {
        const all =
          (await this.call(`list the artifacts of run ${buildId}`, (b) => b.getArtifacts(this.p.project, buildId))) ??
          [];
        throw new TaskError(
          `Run ${build.buildNumber} (id ${buildId}) of '${build.definition?.name ?? this.p.pipeline}' has no artifact '${this.p.artifactName}'. Its artifacts: ${all.map((a) => a.name).join(', ') || '(none)'}.`,
        );
      }
      if (artifact.resource.type !== 'PipelineArtifact') {
        throw new TaskError(
          `Artifact '${this.p.artifactName}' is a ${artifact.resource.type} artifact (published with PublishBuildArtifacts); this task reads pipeline artifacts (PublishPipelineArtifact). Publish the model with PublishPipelineArtifact.`,
        );
      }
      this.artifact = artifact;
      this.locationUri = `${this.p.collectionUri}${encodeURIComponent(this.p.project)}/_build/results?buildId=${buildId}&view=artifacts artifact ${artifact.name}`;
    }
    return { build, artifact: this.artifact };
  }

  /** The Get File URL, from the route template and api-version the service advertised. */
  private async fileRequest(
    buildId: number,
    fileId: string,
    fileName: string,
  ): Promise<{ url: string; accept: string }> {
    const build = await this.api();
    const v = await build.vsoClient.getVersioningData(
      ARTIFACTS_API_VERSION,
      'build',
      ARTIFACTS_LOCATION,
      { project: this.p.project, buildId },
      { artifactName: this.p.artifactName, fileId, fileName },
    );
    return { url: v.requestUrl!, accept: `application/octet-stream;api-version=${v.apiVersion}` };
  }

  private async requestFile(
    buildId: number,
    fileId: string,
    fileName: string,
    what: string,
    signal?: AbortSignal,
  ): Promise<Response> {
    const { url, accept } = await this.fileRequest(buildId, fileId, fileName);
    const res = await this.fetchImpl(url, {
      headers: { Authorization: `Bearer ${this.p.accessToken}`, Accept: accept },
      signal,
      redirect: 'follow',
    });
    if (res.ok && res.body) return res;
    await res.body?.cancel();
    if (isTransientStatus(res.status))
      throw new TransientHttpError(
        res.status,
        `${what} answered ${res.status}`,
        parseRetryAfter(res.headers.get('retry-after')),
      );
    throw this.explain(Object.assign(new Error(`HTTP ${res.status}`), { statusCode: res.status }), what);
  }

  async list(prefix: string): Promise<StoredObject[]> {
    if (!this.items) {
      const { build, artifact } = await this.resolveArtifact();
      const what = `read the file list of artifact '${artifact.name}'`;
      const manifest = await withRetry(
        async () =>
          (await (
            await this.requestFile(build.id!, artifact.resource!.data!, 'manifest.json', what)
          ).json()) as ArtifactManifest,
        { what },
      );
      if (!Array.isArray(manifest?.items))
        throw new TaskError(
          `Artifact '${artifact.name}' returned a file list this task does not understand (manifestFormat ${manifest?.manifestFormat ?? 'unknown'}).`,
        );
      const finished = build.finishTime ? new Date(build.finishTime) : new Date(0);
      this.items = manifest.items
        .filter((i) => i.blob)
        .map((i) => {
          const name = i.path.replace(/^\/+/, '');
          this.blobIds.set(name, i.blob!.id);
          // The dedup id is content-addressed: it changes exactly when the bytes do, so it serves as the ETag.
          return {
            name,
            sizeBytes: i.blob!.size,
            lastModified: finished,
            etag: i.blob!.id,
            metadata: {},
            uri: `${this.locationUri}/${name}`,
          } satisfies StoredObject;
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

  async readRange(
    obj: StoredObject,
    offset: number,
    count: number,
    opts: { signal: AbortSignal },
  ): Promise<AsyncIterable<Uint8Array>> {
    const { build } = await this.resolveArtifact();
    const blobId = this.blobIds.get(obj.name);
    if (!blobId) throw new TaskError(`'${obj.name}' is not in artifact '${this.p.artifactName}'.`);
    const res = await this.requestFile(
      build.id!,
      blobId,
      obj.name.split('/').pop()!,
      `download '${obj.name}' from artifact '${this.p.artifactName}'`,
      opts.signal,
    );
    const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
    return sliceStream(body, offset, count);
  }

  async describeWhatExists(): Promise<string> {
    return `Artifact '${this.p.artifactName}' of run ${this.build?.buildNumber ?? '?'}.`;
  }
}
