/** The REST surface: routing, auth, content negotiation, CRUD + patch + apply, logs, service proxy. */
import { type IncomingMessage, request as httpRequest, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';

import yaml from 'js-yaml';

import type { Cluster, Propagation } from './cluster';
import type { ControllerManager } from './controller';
import { containersOf } from './kubelet';
import { serverSideApply } from './managedFields';
import { clone, isPlainObject, type KubeObject } from './objects';
import { jsonPatch, mergePatch, strategicMergePatch } from './patches';
import {
  apiGroupDocument,
  apiGroupList,
  apiResourceList,
  apiVersionOf,
  coreApiVersions,
  findResourceType,
  listKind,
  type ResourceType,
  serverVersion,
} from './resources';
import { parseFieldSelector, parseLabelSelector } from './selectors';
import { badRequest, failure, invalid, KubeApiError, modifiedConflict, notFound, successStatus } from './status';
import type { WatchStreams } from './watch';

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
}

export interface ApiContext {
  cluster: Cluster;
  controller: ControllerManager;
  watches: WatchStreams;
  token: string;
  serviceBackends: Map<string, string>;
  requests: RequestRecord[];
  bookmarkIntervalMs: number;
}

const patchTypes = [
  'application/json-patch+json',
  'application/merge-patch+json',
  'application/apply-patch+yaml',
  'application/strategic-merge-patch+json',
];
const bodyTypes = ['application/json', 'application/yaml'];

function mediaType(req: IncomingMessage): string | undefined {
  return req.headers['content-type']?.split(';')[0]!.trim().toLowerCase();
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-cache, private',
  });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function parseJsonBody(raw: Buffer, type: string | undefined, what: string): unknown {
  const text = raw.toString('utf8');
  try {
    if (type === 'application/yaml' || type === 'application/apply-patch+yaml') return yaml.load(text);
    return JSON.parse(text);
  } catch (error) {
    throw badRequest(`error decoding ${what}: ${(error as Error).message.split('\n')[0]}`);
  }
}

interface Route {
  type: ResourceType;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
  rest: string[];
  watchPath: boolean;
}

function boolParam(query: URLSearchParams, name: string): boolean | undefined {
  const value = query.get(name);
  return value === null ? undefined : value === 'true' || value === '1';
}

export class KubeApi {
  constructor(private readonly ctx: ApiContext) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    this.ctx.requests.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      contentType: req.headers['content-type'],
    });
    try {
      if (req.headers.authorization !== `Bearer ${this.ctx.token}`) {
        throw failure(401, 'Unauthorized', 'Unauthorized');
      }
      await this.route(req, res, url);
    } catch (error) {
      if (res.headersSent) {
        res.end();
        return;
      }
      if (error instanceof KubeApiError) sendJson(res, error.status.code, error.status);
      else
        sendJson(
          res,
          500,
          failure(500, 'InternalError', `Internal error occurred: ${(error as Error).message}`).status,
        );
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const segments = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const method = req.method ?? 'GET';
    const path = `/${segments.join('/')}`;
    if (method === 'GET') {
      if (['/healthz', '/livez', '/readyz'].includes(path)) {
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end('ok');
        return;
      }
      if (path === '/version') return sendJson(res, 200, serverVersion);
      if (path === '/api') return sendJson(res, 200, coreApiVersions());
      if (path === '/apis') return sendJson(res, 200, apiGroupList());
      if (segments[0] === 'api' && segments.length === 2) {
        const list = apiResourceList('', segments[1]);
        if (list) return sendJson(res, 200, list);
      }
      if (segments[0] === 'apis' && segments.length === 2) {
        const group = apiGroupDocument(segments[1]);
        if (group) return sendJson(res, 200, group);
      }
      if (segments[0] === 'apis' && segments.length === 3) {
        const list = apiResourceList(segments[1], segments[2]);
        if (list) return sendJson(res, 200, list);
      }
    }
    const route = this.parseRoute(segments);
    if (!route) throw failure(404, 'NotFound', 'the server could not find the requested resource', {});
    const { type, namespace, name, subresource } = route;
    const query = url.searchParams;
    const watch = route.watchPath || boolParam(query, 'watch') === true;
    if (watch && method === 'GET') return this.watch(req, res, route, query);
    if (name === undefined) {
      if (method === 'GET') return sendJson(res, 200, this.list(type, namespace, query));
      if (method === 'POST') return this.create(req, res, type, namespace, query);
      if (method === 'DELETE') return sendJson(res, 200, this.deleteCollection(type, namespace, query));
      throw failure(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
    }
    if (subresource === 'log' && type.kind === 'Pod' && method === 'GET')
      return this.logs(res, namespace!, name, query);
    if (subresource === 'proxy' && type.kind === 'Service') return this.proxy(req, res, namespace!, name, url);
    if (subresource !== undefined && subresource !== 'status')
      throw failure(404, 'NotFound', 'the server could not find the requested resource', {});
    if (subresource === undefined || subresource === 'status') {
      switch (method) {
        case 'GET': {
          const object = this.cluster.store.get(type, namespace, name);
          if (!object) throw notFound(type.resource, type.group, name);
          return sendJson(res, 200, object);
        }
        case 'PUT':
          return this.replace(req, res, route, query);
        case 'PATCH':
          return this.patch(req, res, route, query);
        case 'DELETE':
          if (subresource) break;
          return this.delete(req, res, type, namespace, name, query);
        default:
          break;
      }
    }
    throw failure(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
  }

  private get cluster(): Cluster {
    return this.ctx.cluster;
  }

  private parseRoute(segments: string[]): Route | undefined {
    let group: string;
    let version: string;
    let rest: string[];
    if (segments[0] === 'api' && segments.length >= 3) [group, version, rest] = ['', segments[1], segments.slice(2)];
    else if (segments[0] === 'apis' && segments.length >= 4)
      [group, version, rest] = [segments[1], segments[2], segments.slice(3)];
    else return undefined;
    let watchPath = false;
    if (rest[0] === 'watch') {
      watchPath = true;
      rest = rest.slice(1);
    }
    if (rest[0] === 'namespaces' && rest.length >= 3 && rest[2] !== 'status' && rest[2] !== 'finalize') {
      const type = findResourceType(group, version, rest[2]);
      if (!type?.namespaced) return undefined;
      return { type, namespace: rest[1], name: rest[3], subresource: rest[4], rest: rest.slice(5), watchPath };
    }
    const type = findResourceType(group, version, rest[0]);
    if (!type) return undefined;
    if (type.namespaced && rest.length > 1) return undefined;
    return { type, namespace: undefined, name: rest[1], subresource: rest[2], rest: rest.slice(3), watchPath };
  }

  private selectorsOf(type: ResourceType, query: URLSearchParams) {
    const labels = parseLabelSelector(query.get('labelSelector'));
    const fields = parseFieldSelector(query.get('fieldSelector'), type);
    return (object: KubeObject) => labels(object) && fields(object);
  }

  private list(type: ResourceType, namespace: string | undefined, query: URLSearchParams): Record<string, unknown> {
    const matches = this.selectorsOf(type, query);
    let items = this.cluster.store.list(type, namespace).filter(matches);
    const limit = Number(query.get('limit') ?? 0);
    const token = query.get('continue');
    let start = 0;
    if (token) {
      try {
        start = Number(JSON.parse(Buffer.from(token, 'base64').toString('utf8')).start);
      } catch {
        throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
      }
    }
    const metadata: Record<string, unknown> = { resourceVersion: String(this.cluster.store.resourceVersion) };
    if (limit > 0) {
      const page = items.slice(start, start + limit);
      if (start + limit < items.length) {
        metadata.continue = Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', start: start + limit })).toString(
          'base64',
        );
        metadata.remainingItemCount = items.length - start - limit;
      }
      items = page;
    }
    // List items carry no kind/apiVersion on the wire; the list does.
    const bare = items.map(({ kind: _kind, apiVersion: _apiVersion, ...rest }) => rest);
    return { kind: listKind(type), apiVersion: apiVersionOf(type), metadata, items: bare };
  }

  private watch(req: IncomingMessage, res: ServerResponse, route: Route, query: URLSearchParams): void {
    const selectors = this.selectorsOf(route.type, query);
    const matches = route.name ? (o: KubeObject) => o.metadata.name === route.name && selectors(o) : selectors;
    const timeout = query.get('timeoutSeconds');
    const sendInitial = boolParam(query, 'sendInitialEvents');
    this.ctx.watches.serve(req, res, {
      type: route.type,
      namespace: route.namespace,
      matches,
      resourceVersion: query.get('resourceVersion'),
      timeoutSeconds: timeout === null ? undefined : Number(timeout),
      allowBookmarks: boolParam(query, 'allowWatchBookmarks') === true,
      sendInitialEvents: sendInitial,
      bookmarkIntervalMs: this.ctx.bookmarkIntervalMs,
    });
  }

  private managerOf(req: IncomingMessage, query: URLSearchParams): string {
    const explicit = query.get('fieldManager');
    if (explicit) return explicit;
    return (req.headers['user-agent'] ?? 'unknown').split('/')[0].trim() || 'unknown';
  }

  private validateFieldManager(query: URLSearchParams): void {
    const manager = query.get('fieldManager');
    if (manager && manager.length > 128) {
      throw invalid('PatchOptions', 'meta.k8s.io', '', [
        {
          field: 'fieldManager',
          type: 'FieldValueInvalid',
          value: manager,
          detail: 'may not be longer than 128 characters',
        },
      ]);
    }
  }

  private async readObject(
    req: IncomingMessage,
    type: ResourceType,
    namespace: string | undefined,
  ): Promise<KubeObject> {
    const contentType = mediaType(req);
    if (!contentType || !bodyTypes.includes(contentType)) {
      throw failure(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf`,
      );
    }
    const body = parseJsonBody(await readBody(req), contentType, 'object');
    if (!isPlainObject(body)) throw badRequest('the object provided is unrecognized (must be of type Object)');
    return this.checkIdentity(body as KubeObject, type, namespace);
  }

  /** apiVersion/kind/namespace in the body must agree with the URL, as the apiserver's decoder insists. */
  private checkIdentity(object: KubeObject, type: ResourceType, namespace: string | undefined): KubeObject {
    if (object.apiVersion !== undefined && object.apiVersion !== apiVersionOf(type)) {
      throw badRequest(
        `the API version in the data (${object.apiVersion}) does not match the expected API version (${apiVersionOf(type)})`,
      );
    }
    if (object.kind !== undefined && object.kind !== type.kind) {
      throw badRequest(
        `${object.kind} in version "${type.version}" cannot be handled as a ${type.kind}: no kind "${object.kind}" is registered for version "${apiVersionOf(type)}"`,
      );
    }
    if (!isPlainObject(object.metadata)) object.metadata = { name: '' };
    if (type.namespaced) {
      if (object.metadata.namespace && object.metadata.namespace !== namespace) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      object.metadata.namespace = namespace;
    }
    return object;
  }

  private dryRun(query: URLSearchParams): boolean {
    const value = query.get('dryRun');
    if (value !== null && value !== 'All') {
      throw invalid('CreateOptions', 'meta.k8s.io', '', [
        { field: 'dryRun', type: 'FieldValueNotSupported', value: [value], detail: 'supported values: "All"' },
      ]);
    }
    return value === 'All';
  }

  private async create(
    req: IncomingMessage,
    res: ServerResponse,
    type: ResourceType,
    namespace: string | undefined,
    query: URLSearchParams,
  ): Promise<void> {
    if (type.namespaced && namespace === undefined)
      throw failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    this.validateFieldManager(query);
    const object = await this.readObject(req, type, namespace);
    if (type.subresources.includes('status')) delete object.status;
    const created = this.cluster.create(type, object, {
      dryRun: this.dryRun(query),
      manager: this.managerOf(req, query),
    });
    sendJson(res, 201, created);
  }

  private requireExisting(route: Route): KubeObject {
    const existing = this.cluster.store.get(route.type, route.namespace, route.name!);
    if (!existing) throw notFound(route.type.resource, route.type.group, route.name!);
    return existing;
  }

  /** Main-resource writes keep status; status writes keep everything but status. */
  private combine(route: Route, before: KubeObject, proposed: KubeObject): KubeObject {
    if (route.subresource === 'status') return { ...clone(before), status: proposed.status };
    if (route.type.subresources.includes('status')) return { ...proposed, status: clone(before.status) };
    return proposed;
  }

  private async replace(
    req: IncomingMessage,
    res: ServerResponse,
    route: Route,
    query: URLSearchParams,
  ): Promise<void> {
    this.validateFieldManager(query);
    const object = await this.readObject(req, route.type, route.namespace);
    if (object.metadata.name !== route.name) {
      throw badRequest(
        `the name of the object (${object.metadata.name}) does not match the name on the URL (${route.name})`,
      );
    }
    const before = this.requireExisting(route);
    if (object.metadata.resourceVersion && object.metadata.resourceVersion !== before.metadata.resourceVersion) {
      throw modifiedConflict(route.type.resource, route.type.group, route.name);
    }
    delete object.metadata.managedFields;
    object.metadata.managedFields = before.metadata.managedFields;
    const next = this.combine(route, before, object);
    const updated = this.cluster.update(route.type, before, next, {
      dryRun: this.dryRun(query),
      manager: this.managerOf(req, query),
      ...(route.subresource ? { subresource: route.subresource } : {}),
    });
    sendJson(res, 200, updated);
  }

  private async patch(req: IncomingMessage, res: ServerResponse, route: Route, query: URLSearchParams): Promise<void> {
    const contentType = mediaType(req);
    if (!contentType || !patchTypes.includes(contentType)) {
      throw failure(
        415,
        'UnsupportedMediaType',
        'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json, application/apply-patch+cbor',
      );
    }
    const isApply = contentType === 'application/apply-patch+yaml';
    const force = boolParam(query, 'force');
    if (!isApply && force !== undefined) {
      throw invalid('PatchOptions', 'meta.k8s.io', '', [
        { field: 'force', type: 'FieldValueForbidden', detail: 'may not be specified for non-apply patch' },
      ]);
    }
    if (isApply && !query.get('fieldManager')) {
      throw invalid('PatchOptions', 'meta.k8s.io', '', [
        { field: 'fieldManager', type: 'FieldValueRequired', detail: 'is required for apply patch' },
      ]);
    }
    this.validateFieldManager(query);
    const body = parseJsonBody(await readBody(req), contentType, 'patch');
    const dryRun = this.dryRun(query);
    const { type } = route;
    if (isApply) {
      if (!isPlainObject(body)) throw badRequest('error decoding YAML: the apply configuration must be an object');
      const applied = this.checkIdentity(clone(body) as KubeObject, type, route.namespace);
      if (applied.apiVersion === undefined || applied.kind === undefined) {
        throw badRequest("Object 'Kind' is missing in '" + JSON.stringify(body) + "'");
      }
      if (applied.metadata.name !== route.name) {
        throw badRequest(
          `the name of the object (${applied.metadata.name ?? ''}) does not match the name on the URL (${route.name})`,
        );
      }
      if (applied.metadata.managedFields !== undefined) throw badRequest('metadata.managedFields must be nil');
      const live = this.cluster.store.get(type, route.namespace, route.name);
      const manager = query.get('fieldManager')!;
      if (!live) {
        if (route.subresource) throw notFound(type.resource, type.group, route.name);
        const object = serverSideApply({
          live: undefined,
          applied,
          manager,
          force: force === true,
          apiVersion: apiVersionOf(type),
        });
        if (type.subresources.includes('status')) delete object.status;
        return sendJson(res, 201, this.cluster.create(type, object, { dryRun, manager, managedFieldsDone: true }));
      }
      if (applied.metadata.resourceVersion && applied.metadata.resourceVersion !== live.metadata.resourceVersion) {
        throw modifiedConflict(type.resource, type.group, route.name);
      }
      delete applied.metadata.resourceVersion;
      const merged = serverSideApply({
        live,
        applied,
        manager,
        force: force === true,
        apiVersion: apiVersionOf(type),
        ...(route.subresource ? { subresource: route.subresource } : {}),
      });
      const next = this.combine(route, live, merged);
      return sendJson(res, 200, this.cluster.update(type, live, next, { dryRun, manager, managedFieldsDone: true }));
    }
    const before = this.requireExisting(route);
    let patched: unknown;
    if (contentType === 'application/json-patch+json') patched = jsonPatch(before, body);
    else if (!isPlainObject(body))
      throw badRequest('json: cannot unmarshal array into Go value of type map[string]interface {}');
    else
      patched =
        contentType === 'application/merge-patch+json' ? mergePatch(before, body) : strategicMergePatch(before, body);
    if (!isPlainObject(patched)) throw badRequest('the patched object is not an object');
    const patchedObject = patched as KubeObject;
    const requestedVersion = patchedObject.metadata?.resourceVersion;
    if (requestedVersion && requestedVersion !== before.metadata.resourceVersion)
      throw modifiedConflict(type.resource, type.group, route.name!);
    this.checkIdentity(patchedObject, type, route.namespace);
    if (patchedObject.metadata.name !== route.name)
      throw badRequest(
        `the name of the object (${patchedObject.metadata.name}) does not match the name on the URL (${route.name})`,
      );
    const next = this.combine(route, before, patchedObject);
    sendJson(
      res,
      200,
      this.cluster.update(type, before, next, {
        dryRun,
        manager: this.managerOf(req, query),
        ...(route.subresource ? { subresource: route.subresource } : {}),
      }),
    );
  }

  private async deleteOptions(
    req: IncomingMessage,
    query: URLSearchParams,
  ): Promise<{ propagation?: Propagation; gracePeriodSeconds?: number; uid?: string }> {
    const raw = await readBody(req);
    let body: Record<string, unknown> = {};
    if (raw.length > 0) {
      const parsed = parseJsonBody(raw, mediaType(req), 'DeleteOptions');
      if (isPlainObject(parsed)) body = parsed;
    }
    const propagation = (query.get('propagationPolicy') ?? body.propagationPolicy) as string | undefined;
    if (propagation !== undefined && !['Background', 'Foreground', 'Orphan'].includes(propagation)) {
      throw invalid('DeleteOptions', 'meta.k8s.io', '', [
        {
          field: 'propagationPolicy',
          type: 'FieldValueNotSupported',
          value: propagation,
          detail: 'supported values: "Foreground", "Background", "Orphan", "nil"',
        },
      ]);
    }
    const orphan = body.orphanDependents === true || query.get('orphanDependents') === 'true';
    const grace = query.get('gracePeriodSeconds') ?? body.gracePeriodSeconds;
    const preconditions = (body.preconditions ?? {}) as Record<string, unknown>;
    return {
      ...(propagation ? { propagation: propagation as Propagation } : orphan ? { propagation: 'Orphan' as const } : {}),
      ...(grace !== undefined && grace !== null ? { gracePeriodSeconds: Number(grace) } : {}),
      ...(typeof preconditions.uid === 'string' ? { uid: preconditions.uid } : {}),
    };
  }

  private async delete(
    req: IncomingMessage,
    res: ServerResponse,
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    query: URLSearchParams,
  ): Promise<void> {
    const options = await this.deleteOptions(req, query);
    const existing = this.cluster.store.get(type, namespace, name);
    if (!existing) throw notFound(type.resource, type.group, name);
    if (options.uid && options.uid !== existing.metadata.uid) {
      throw failure(
        409,
        'Conflict',
        `Precondition failed: UID in precondition: ${options.uid}, UID in object meta: ${existing.metadata.uid}`,
      );
    }
    const deleted = this.cluster.delete(type, namespace, name, { ...options, dryRun: this.dryRun(query) });
    // Pods and namespaces answer with the object (it lingers while terminating); other types with a Status.
    if (type.kind === 'Pod' || type.kind === 'Namespace') return sendJson(res, 200, deleted);
    sendJson(
      res,
      200,
      successStatus({
        name,
        ...(type.group ? { group: type.group } : {}),
        kind: type.resource,
        uid: existing.metadata.uid!,
      }),
    );
  }

  private deleteCollection(
    type: ResourceType,
    namespace: string | undefined,
    query: URLSearchParams,
  ): Record<string, unknown> {
    const matches = this.selectorsOf(type, query);
    const doomed = this.cluster.store.list(type, namespace).filter(matches);
    const items = doomed.map((object) => this.cluster.delete(type, object.metadata.namespace, object.metadata.name));
    return {
      kind: listKind(type),
      apiVersion: apiVersionOf(type),
      metadata: { resourceVersion: String(this.cluster.store.resourceVersion) },
      items,
    };
  }

  private logs(res: ServerResponse, namespace: string, name: string, query: URLSearchParams): void {
    const podType = findResourceType('', 'v1', 'pods')!;
    const pod = this.cluster.store.get(podType, namespace, name);
    if (!pod) throw notFound('pods', '', name);
    const containers = containersOf(pod).map((c) => String(c.name));
    let container = query.get('container');
    if (!container) {
      if (containers.length !== 1)
        throw badRequest(
          `a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]`,
        );
      container = containers[0]!;
    }
    if (!containers.includes(container)) throw badRequest(`container ${container} is not valid for pod ${name}`);
    const result = this.ctx.controller.kubelet.logsOf(pod, container, boolParam(query, 'previous') === true);
    if ('error' in result) throw badRequest(result.error);
    let lines = result.lines;
    const tail = query.get('tailLines');
    if (tail !== null) {
      const n = Number(tail);
      if (!Number.isInteger(n) || n < 0) {
        throw invalid('PodLogOptions', '', '', [
          { field: 'tailLines', type: 'FieldValueInvalid', value: tail, detail: 'must be greater than or equal to 0' },
        ]);
      }
      lines = n === 0 ? [] : lines.slice(-n);
    }
    if (boolParam(query, 'timestamps')) {
      const started = new Date(String(pod.metadata.creationTimestamp)).getTime();
      lines = lines.map((line, i) => `${new Date(started + 2000 + i).toISOString().replace('Z', '000000Z')} ${line}`);
    }
    const text = lines.map((line) => `${line}\n`).join('');
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  /**
   * `services/{[scheme:]name[:port]}/proxy/...`: forwarded to the backend registered for the
   * service, once the service has a ready endpoint, like the apiserver's service proxy.
   */
  private async proxy(
    req: IncomingMessage,
    res: ServerResponse,
    namespace: string,
    spec: string,
    url: URL,
  ): Promise<void> {
    const parts = spec.split(':');
    const [serviceName, portSpec] = parts.length === 3 ? [parts[1], parts[2]] : [parts[0], parts[1] ?? ''];
    const serviceType = findResourceType('', 'v1', 'services')!;
    const service = this.cluster.store.get(serviceType, namespace, serviceName);
    if (!service) throw notFound('services', '', serviceName);
    const ports = ((service.spec as Record<string, unknown>).ports ?? []) as Record<string, unknown>[];
    const port = portSpec === '' ? ports[0] : ports.find((p) => p.name === portSpec || String(p.port) === portSpec);
    const unavailable = () => failure(503, 'ServiceUnavailable', `no endpoints available for service "${spec}"`);
    if (!port) throw unavailable();
    if (this.ctx.controller.readyEndpoints(service).length === 0) throw unavailable();
    const backend = this.ctx.serviceBackends.get(`${namespace}/${serviceName}`);
    if (!backend) {
      throw failure(
        503,
        'ServiceUnavailable',
        `error trying to reach service: dial tcp 10.244.0.10:${String(port.targetPort ?? port.port)}: connect: connection refused`,
      );
    }
    const prefixEnd = url.pathname.indexOf('/proxy') + '/proxy'.length;
    const forwardedPath = url.pathname.slice(prefixEnd) || '/';
    const target = new URL(backend);
    const targetUrl = new URL(`${target.pathname.replace(/\/$/, '')}${forwardedPath}${url.search}`, target);
    const headers = { ...req.headers };
    delete headers.authorization;
    delete headers.host;
    delete headers.connection;
    const send = targetUrl.protocol === 'https:' ? httpsRequest : httpRequest;
    await new Promise<void>((resolve) => {
      const upstream = send(targetUrl, { method: req.method, headers }, (upstreamRes) => {
        const responseHeaders = { ...upstreamRes.headers };
        delete responseHeaders.connection;
        res.writeHead(upstreamRes.statusCode ?? 502, responseHeaders);
        upstreamRes.pipe(res);
        upstreamRes.on('end', resolve);
        upstreamRes.on('error', () => resolve());
      });
      upstream.on('error', (error) => {
        if (!res.headersSent)
          sendJson(
            res,
            503,
            failure(503, 'ServiceUnavailable', `error trying to reach service: ${error.message}`).status,
          );
        else res.end();
        resolve();
      });
      req.pipe(upstream);
    });
  }
}
