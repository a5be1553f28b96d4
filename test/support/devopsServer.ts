import * as crypto from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local stand-in for the Azure DevOps REST routes FetchModel's pipelineArtifact source uses,
 * api-version 7.1, answering with bodies shaped like the service's (Build - Definitions - List,
 * Builds - List / Get, Artifacts - Get Artifact / Get File), and requiring the bearer token.
 * A pipeline artifact's resource.data is a manifest id; Get File with it returns the dedup
 * manifest `{ manifestFormat, items: [{ path, blob: { id, size } }] }`; with an item's blob id it
 * returns that file's bytes.
 */

export interface FakeRun {
  id: number;
  buildNumber: string;
  result: 'succeeded' | 'failed' | 'partiallySucceeded';
  sourceBranch: string;
  finishTime: string;
  /** artifact name → files (path inside → bytes) */
  artifacts: Record<string, Record<string, Buffer>>;
  /** Publish as a build (Container) artifact instead of a pipeline artifact. */
  containerArtifacts?: string[];
}

export interface FakeDevOps {
  /** Collection URL, ending in '/'. */
  url: string;
  token: string;
  requests: string[];
  stop(): Promise<void>;
}

export async function startDevOpsServer(opts: { project: string; pipelines: Array<{ id: number; name: string; runs: FakeRun[] }>; token?: string }): Promise<FakeDevOps> {
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
  let base = '';
  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8; api-version=7.1' });
    res.end(JSON.stringify(body));
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    if (req.headers.authorization !== `Bearer ${token}`) {
      // The service answers an anonymous or bad token with 401 (203 + sign-in page for browsers).
      res.writeHead(401, { 'WWW-Authenticate': 'Bearer' });
      res.end();
      return;
    }
    if (url.searchParams.get('api-version') !== '7.1') return json(res, 400, { message: `The requested REST API version of ${url.searchParams.get('api-version')} is out of range for this server.`, typeKey: 'VssVersionOutOfRangeException' });
    const prefix = `/${encodeURIComponent(opts.project)}/_apis/build/`;
    if (!url.pathname.startsWith(prefix)) return json(res, 404, { message: `project or route not found: ${url.pathname}`, typeKey: 'ProjectDoesNotExistWithNameException' });
    const route = url.pathname.slice(prefix.length);
    const projectRef = { id: '6f1c2b0e-0000-4000-8000-000000000001', name: opts.project };
    const runJson = (p: { id: number; name: string }, r: FakeRun) => ({
      id: r.id, buildNumber: r.buildNumber, status: 'completed', result: r.result, sourceBranch: r.sourceBranch, finishTime: r.finishTime,
      definition: { id: p.id, name: p.name, project: projectRef }, project: projectRef, url: `${base}${opts.project}/_apis/build/Builds/${r.id}`,
    });
    if (route === 'definitions') {
      const name = url.searchParams.get('name');
      const defs = opts.pipelines.filter((p) => !name || p.name.toLowerCase() === name.toLowerCase()).map((p) => ({ id: p.id, name: p.name, path: '\\', revision: 3, type: 'build', queueStatus: 'enabled', project: projectRef }));
      return json(res, 200, { count: defs.length, value: defs });
    }
    if (route === 'builds') {
      const ids = (url.searchParams.get('definitions') ?? '').split(',').filter(Boolean).map(Number);
      const resultFilter = url.searchParams.get('resultFilter');
      const branch = url.searchParams.get('branchName');
      const top = Number(url.searchParams.get('$top') ?? 1000);
      const all = opts.pipelines.filter((p) => !ids.length || ids.includes(p.id)).flatMap((p) => p.runs.map((r) => ({ p, r })));
      const runs = all
        .filter(({ r }) => (!resultFilter || r.result === resultFilter) && (!branch || r.sourceBranch === branch))
        .sort((a, b) => Date.parse(b.r.finishTime) - Date.parse(a.r.finishTime))
        .slice(0, top)
        .map(({ p, r }) => runJson(p, r));
      return json(res, 200, { count: runs.length, value: runs });
    }
    const m = /^builds\/(\d+)(\/artifacts)?$/.exec(route);
    if (m) {
      const found = opts.pipelines.flatMap((p) => p.runs.map((r) => ({ p, r }))).find(({ r }) => r.id === Number(m[1]));
      if (!found) return json(res, 404, { message: `The requested build ${m[1]} could not be found.`, typeKey: 'BuildNotFoundException' });
      if (!m[2]) return json(res, 200, runJson(found.p, found.r));
      const artifactJson = (name: string) => {
        const container = found.r.containerArtifacts?.includes(name);
        return {
          id: 1000 + Object.keys(found.r.artifacts).indexOf(name),
          name,
          source: '2f0d093c-1064-5c86-fc5b-b7b1eca8e66a',
          resource: container
            ? { type: 'Container', data: `#/6297361/${name}`, properties: { artifactsize: '0' }, url: `${base}${opts.project}/_apis/build/builds/${found.r.id}/artifacts?artifactName=${name}&api-version=7.1`, downloadUrl: `${base}${opts.project}/_apis/build/builds/${found.r.id}/artifacts?artifactName=${name}&api-version=7.1&%24format=zip` }
            : { type: 'PipelineArtifact', data: manifests.get(`${found.r.id}/${name}`), properties: { RootId: manifests.get(`${found.r.id}/${name}`), artifactsize: String(Object.values(found.r.artifacts[name]).reduce((n, b) => n + b.length, 0)), HashType: 'DEDUPNODEORCHUNK', DomainId: '0' }, url: `${base}${opts.project}/_apis/build/builds/${found.r.id}/artifacts?artifactName=${name}&api-version=7.1`, downloadUrl: `https://artprodcus3.artifacts.visualstudio.com/contoso/${projectRef.id}/_apis/artifact/cGlwZWxpbmVhcnRpZmFjdA2/content?format=zip` },
        };
      };
      const name = url.searchParams.get('artifactName');
      if (!name) return json(res, 200, { count: Object.keys(found.r.artifacts).length, value: Object.keys(found.r.artifacts).map(artifactJson) });
      if (!(name in found.r.artifacts)) return json(res, 404, { message: `Artifact ${name} not found for build ${found.r.id}.`, typeKey: 'ArtifactNotFoundException' });
      const fileId = url.searchParams.get('fileId');
      if (!fileId) return json(res, 200, artifactJson(name));
      const data = blobs.get(fileId);
      if (!data) return json(res, 404, { message: `File ${fileId} not found.`, typeKey: 'ArtifactNotFoundException' });
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length });
      res.end(data);
      return;
    }
    return json(res, 404, { message: `no route ${route}` });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    url: base,
    token,
    requests,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
