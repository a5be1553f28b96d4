import * as crypto from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local stand-in for the Azure DevOps routes FetchModel's pipelineArtifact source calls
 * through azure-devops-node-api 17, answering with bodies shaped like the service's and
 * requiring the bearer token on every route (OPTIONS included, as the service does):
 *
 *   OPTIONS /_apis/Location        Location area's resource locations (ApiResourceLocation[])
 *   GET     /_apis/ResourceAreas   ResourceAreaInfo[]: { id, name, locationUrl } per area
 *   OPTIONS /_apis/build           build area's locations: Definitions, Builds, artifacts
 *   GET     {project}/_apis/build/definitions[/{id}]   Definitions - List (name filter) / Get
 *   GET     {project}/_apis/build/builds[/{id}]        Builds - List (definitions, statusFilter,
 *           resultFilter, branchName, queryOrder, $top; enums by name or number) / Get
 *   GET     {project}/_apis/build/builds/{id}/artifacts[?artifactName=[&fileId=&fileName=]]
 *           Artifacts - List / Get Artifact / Get File
 *
 * api-versions: the client asks 7.2-preview.1 (ResourceAreas), 7.2-preview.7 (Definitions,
 * Builds), 7.2-preview.5 (artifacts) in the Accept header; the locations below advertise what
 * dev.azure.com does (releasedVersion 7.1, maxVersion 7.2), so that is what is negotiated. A
 * version above maxVersion gets the service's 400 VssVersionOutOfRangeException.
 *
 * A pipeline artifact's resource.data is a dedup manifest id; Get File with it returns the
 * manifest `{ manifestFormat, items: [{ path, blob: { id, size } }] }`; with an item's blob id it
 * returns that file's bytes, whole (no Range), as the service does.
 */

export interface FakeRun {
  id: number;
  buildNumber: string;
  result: 'succeeded' | 'failed' | 'partiallySucceeded' | 'canceled';
  sourceBranch: string;
  finishTime: string;
  /** artifact name → files (path inside → bytes) */
  artifacts: Record<string, Record<string, Buffer>>;
  /** Publish as a build (Container) artifact instead of a pipeline artifact. */
  containerArtifacts?: string[];
}

export interface FakePipeline {
  id: number;
  name: string;
  /** Folder, e.g. `\ML`; `\` when absent. */
  path?: string;
  runs: FakeRun[];
}

export interface FakeDevOps {
  /** Collection URL, ending in '/'. */
  url: string;
  token: string;
  /** "METHOD /path?query api-version=x", in arrival order. */
  requests: string[];
  /** The URL clients should be sent to in ResourceAreas (e.g. a fault proxy in front), ending in '/'. */
  setPublicUrl(url: string): void;
  stop(): Promise<void>;
}

const BUILD_AREA = '965220d5-5bb9-42cf-8d67-9b146df2a5a4';
const CORE_AREA = '79134c72-4a58-4b42-976c-04e7115f32bf';

interface Location {
  id: string;
  area: string;
  resourceName: string;
  routeTemplate: string;
  resourceVersion: number;
}

const LOCATIONS: Record<string, Location[]> = {
  location: [
    {
      id: 'e81700f7-3be2-46de-8624-2eb35882fcaa',
      area: 'Location',
      resourceName: 'ResourceAreas',
      routeTemplate: '_apis/{resource}/{areaId}',
      resourceVersion: 1,
    },
    {
      id: '00d9565f-ed9c-4a06-9a50-00e7896ccab4',
      area: 'Location',
      resourceName: 'ConnectionData',
      routeTemplate: '_apis/{resource}',
      resourceVersion: 1,
    },
  ],
  build: [
    {
      id: 'dbeaf647-6167-421a-bda9-c9327b25e2e6',
      area: 'build',
      resourceName: 'Definitions',
      routeTemplate: '{project}/_apis/build/{resource}/{definitionId}',
      resourceVersion: 7,
    },
    {
      id: '0cd358e1-9217-4d94-8269-1c1ee6f93dcf',
      area: 'build',
      resourceName: 'Builds',
      routeTemplate: '{project}/_apis/build/{resource}/{buildId}',
      resourceVersion: 7,
    },
    {
      id: '1db06c96-014e-44e1-ac91-90b2d4b3e984',
      area: 'build',
      resourceName: 'artifacts',
      routeTemplate: '{project}/_apis/build/builds/{buildId}/{resource}',
      resourceVersion: 5,
    },
  ],
};

const RESULT_BY_NUMBER: Record<string, string> = {
  '2': 'succeeded',
  '4': 'partiallySucceeded',
  '8': 'failed',
  '32': 'canceled',
};
const STATUS_BY_NUMBER: Record<string, string> = {
  '1': 'inProgress',
  '2': 'completed',
  '4': 'cancelling',
  '8': 'postponed',
  '32': 'notStarted',
  '47': 'all',
};
const ORDER_BY_NUMBER: Record<string, string> = {
  '2': 'finishTimeAscending',
  '3': 'finishTimeDescending',
  '4': 'queueTimeDescending',
  '5': 'queueTimeAscending',
};

/** `7.2-preview.7` → 7.2; undefined when absent. */
function requestedVersion(req: http.IncomingMessage, url: URL): string | undefined {
  return (
    /api-version=([\d.]+(?:-preview(?:\.\d+)?)?)/.exec(String(req.headers.accept ?? ''))?.[1] ??
    url.searchParams.get('api-version') ??
    undefined
  );
}

export async function startDevOpsServer(opts: {
  project: string;
  pipelines: FakePipeline[];
  token?: string;
}): Promise<FakeDevOps> {
  const token = opts.token ?? crypto.randomBytes(24).toString('base64url');
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, string>();
  const blobId = (data: Buffer) => crypto.createHash('sha256').update(data).digest('hex').toUpperCase() + '01';
  for (const p of opts.pipelines) {
    for (const run of p.runs) {
      for (const [name, files] of Object.entries(run.artifacts)) {
        const items = Object.entries(files).map(([filePath, data]) => {
          const id = blobId(data);
          blobs.set(id, data);
          return { path: `/${filePath}`, blob: { id, size: data.length } };
        });
        const manifest = JSON.stringify({ manifestFormat: '1.1.0', items, manifestReferences: [] });
        const manifestId = blobId(Buffer.from(manifest));
        manifests.set(`${run.id}/${name}`, manifestId);
        blobs.set(manifestId, Buffer.from(manifest));
      }
    }
  }
  const requests: string[] = [];
  let publicBase = '';
  const projectRef = {
    id: '6f1c2b0e-0000-4000-8000-000000000001',
    name: opts.project,
    state: 'wellFormed',
    visibility: 'private',
  };
  const json = (res: http.ServerResponse, status: number, body: unknown, version = '7.1') => {
    res.writeHead(status, {
      'Content-Type': `application/json; charset=utf-8; api-version=${version}`,
      'X-VSS-E2EID': crypto.randomUUID(),
      ActivityId: crypto.randomUUID(),
    });
    res.end(JSON.stringify(body));
  };
  const error = (res: http.ServerResponse, status: number, typeKey: string, message: string) =>
    json(res, status, {
      $id: '1',
      innerException: null,
      message,
      typeName: `Microsoft.TeamFoundation.Build.WebApi.${typeKey}, Microsoft.TeamFoundation.Build2.WebApi`,
      typeKey,
      errorCode: 0,
      eventId: 3000,
    });
  const locationJson = (l: Location) => ({
    ...l,
    routeName: `${l.area}-${l.resourceName}`.toLowerCase(),
    minVersion: '1.0',
    maxVersion: '7.2',
    releasedVersion: '7.1',
  });
  const definitionJson = (p: FakePipeline) => ({
    id: p.id,
    name: p.name,
    path: p.path ?? '\\',
    revision: 3,
    type: 'build',
    queueStatus: 'enabled',
    quality: 'definition',
    url: `${publicBase}${projectRef.id}/_apis/build/Definitions/${p.id}?revision=3`,
    uri: `vstfs:///Build/Definition/${p.id}`,
    project: projectRef,
    _links: { web: { href: `${publicBase}${opts.project}/_build/definition?definitionId=${p.id}` } },
  });
  const runJson = (p: FakePipeline, r: FakeRun) => ({
    id: r.id,
    buildNumber: r.buildNumber,
    status: 'completed',
    result: r.result,
    sourceBranch: r.sourceBranch,
    finishTime: r.finishTime,
    queueTime: r.finishTime,
    startTime: r.finishTime,
    reason: 'individualCI',
    priority: 'normal',
    definition: { id: p.id, name: p.name, path: p.path ?? '\\', type: 'build', project: projectRef },
    project: projectRef,
    uri: `vstfs:///Build/Build/${r.id}`,
    url: `${publicBase}${projectRef.id}/_apis/build/Builds/${r.id}`,
  });
  const allRuns = () => opts.pipelines.flatMap((p) => p.runs.map((r) => ({ p, r })));

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const version = requestedVersion(req, url);
    requests.push(`${req.method} ${url.pathname}${url.search} api-version=${version ?? ''}`);
    if (req.headers.authorization !== `Bearer ${token}`) {
      // The service answers a bad or expired bearer token with 401 and a challenge (203 + sign-in page for browsers).
      res.writeHead(401, {
        'WWW-Authenticate':
          'Bearer authorization_uri=https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000, Basic realm="https://dev.azure.com/", TFS-Federated',
        'X-TFS-ProcessId': crypto.randomUUID(),
      });
      res.end();
      return;
    }
    if (req.method === 'OPTIONS') {
      const area = /^\/_apis\/([^/]+)\/?$/.exec(url.pathname)?.[1]?.toLowerCase();
      const locations = area ? LOCATIONS[area] : undefined;
      if (!locations) return json(res, 404, { message: `no area ${url.pathname}` });
      return json(res, 200, { count: locations.length, value: locations.map(locationJson) });
    }
    if (req.method !== 'GET') return error(res, 405, 'MethodNotAllowed', `${req.method} is not supported here.`);
    if (!version)
      return error(res, 400, 'VssVersionNotSpecifiedException', 'No api-version was supplied for the GET request.');
    if (Number.parseFloat(version) > 7.2)
      return error(
        res,
        400,
        'VssVersionOutOfRangeException',
        `The requested REST API version of ${version} is out of range for this server. The latest REST API version this server supports is 7.2.`,
      );
    if (/^\/_apis\/resourceareas\/?$/i.test(url.pathname)) {
      const areas = [
        { id: BUILD_AREA, name: 'build', locationUrl: publicBase },
        { id: CORE_AREA, name: 'core', locationUrl: publicBase },
      ];
      return json(res, 200, { count: areas.length, value: areas }, version);
    }
    const prefix = `/${encodeURIComponent(opts.project)}/_apis/build/`;
    if (!url.pathname.startsWith(prefix))
      return error(
        res,
        404,
        'ProjectDoesNotExistWithNameException',
        `TF200016: The following project does not exist: ${decodeURIComponent(url.pathname.split('/')[1] ?? '')}. Verify that the name of the project is correct and that the project exists on the specified Azure DevOps Server.`,
      );
    const route = url.pathname.slice(prefix.length).replace(/\/+$/, '');

    const def = /^definitions(?:\/(\d+))?$/i.exec(route);
    if (def) {
      if (def[1]) {
        const p = opts.pipelines.find((x) => x.id === Number(def[1]));
        if (!p)
          return error(
            res,
            404,
            'DefinitionNotFoundException',
            `The requested build definition ${def[1]} cannot be found.`,
          );
        return json(res, 200, definitionJson(p), version);
      }
      const name = url.searchParams.get('name');
      const top = Number(url.searchParams.get('$top') ?? 10_000);
      const defs = opts.pipelines
        .filter((p) => !name || p.name.toLowerCase() === name.toLowerCase())
        .slice(0, top)
        .map(definitionJson);
      return json(res, 200, { count: defs.length, value: defs }, version);
    }
    if (/^builds$/i.test(route)) {
      const ids = (url.searchParams.get('definitions') ?? '').split(',').filter(Boolean).map(Number);
      const named = (value: string | null, byNumber: Record<string, string>) =>
        value ? (byNumber[value] ?? value) : undefined;
      const resultFilter = named(url.searchParams.get('resultFilter'), RESULT_BY_NUMBER);
      const statusFilter = named(url.searchParams.get('statusFilter'), STATUS_BY_NUMBER);
      const order = named(url.searchParams.get('queryOrder'), ORDER_BY_NUMBER) ?? 'queueTimeDescending';
      const branch = url.searchParams.get('branchName');
      const top = Number(url.searchParams.get('$top') ?? 1000);
      if (statusFilter && !['completed', 'all'].includes(statusFilter))
        return json(res, 200, { count: 0, value: [] }, version);
      const sign = order.endsWith('Ascending') ? 1 : -1;
      const runs = allRuns()
        .filter(({ p }) => !ids.length || ids.includes(p.id))
        .filter(({ r }) => (!resultFilter || r.result === resultFilter) && (!branch || r.sourceBranch === branch))
        .sort((a, b) => sign * (Date.parse(a.r.finishTime) - Date.parse(b.r.finishTime)))
        .slice(0, top)
        .map(({ p, r }) => runJson(p, r));
      return json(res, 200, { count: runs.length, value: runs }, version);
    }
    const m = /^builds\/(\d+)(\/artifacts)?$/i.exec(route);
    if (m) {
      const found = allRuns().find(({ r }) => r.id === Number(m[1]));
      if (!found) return error(res, 404, 'BuildNotFoundException', `The requested build ${m[1]} could not be found.`);
      if (!m[2]) return json(res, 200, runJson(found.p, found.r), version);
      const artifactUrl = (name: string) =>
        `${publicBase}${projectRef.id}/_apis/build/builds/${found.r.id}/artifacts?artifactName=${encodeURIComponent(name)}&api-version=7.2-preview.5`;
      const artifactJson = (name: string) => {
        const container = found.r.containerArtifacts?.includes(name);
        const manifestId = manifests.get(`${found.r.id}/${name}`);
        return {
          id: 1000 + Object.keys(found.r.artifacts).indexOf(name),
          name,
          source: '2f0d093c-1064-5c86-fc5b-b7b1eca8e66a',
          resource: container
            ? {
                type: 'Container',
                data: `#/6297361/${name}`,
                properties: { localpath: `D:\\a\\1\\a\\${name}`, artifactsize: '0' },
                url: artifactUrl(name),
                downloadUrl: `${artifactUrl(name)}&%24format=zip`,
              }
            : {
                type: 'PipelineArtifact',
                data: manifestId,
                properties: {
                  RootId: manifestId,
                  artifactsize: String(Object.values(found.r.artifacts[name]).reduce((n, b) => n + b.length, 0)),
                  HashType: 'DEDUPNODEORCHUNK',
                  DomainId: '0',
                },
                url: artifactUrl(name),
                downloadUrl: `https://artprodcus3.artifacts.visualstudio.com/contoso/${projectRef.id}/_apis/artifact/cGlwZWxpbmVhcnRpZmFjdA2/content?format=zip`,
              },
        };
      };
      const name = url.searchParams.get('artifactName');
      if (!name)
        return json(
          res,
          200,
          { count: Object.keys(found.r.artifacts).length, value: Object.keys(found.r.artifacts).map(artifactJson) },
          version,
        );
      if (!(name in found.r.artifacts))
        return error(
          res,
          404,
          'ArtifactNotFoundException',
          `No artifact with name ${name} found for build ${found.r.id}.`,
        );
      const fileId = url.searchParams.get('fileId');
      if (!fileId) return json(res, 200, artifactJson(name), version);
      const data = blobs.get(fileId);
      if (!data) return error(res, 404, 'ArtifactNotFoundException', `File ${fileId} not found.`);
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length });
      res.end(data);
      return;
    }
    return error(res, 404, 'RouteNotFound', `no route ${route}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  publicBase = base;
  return {
    url: base,
    token,
    requests,
    setPublicUrl: (url: string) => {
      publicBase = url.replace(/\/*$/, '/');
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
