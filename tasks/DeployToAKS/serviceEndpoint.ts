/**
 * Where the deployed Service answers: a load balancer's address once the cloud has given one,
 * else the cluster-internal DNS name; and a way to send requests to it, directly or through the
 * API server's service proxy.
 */
import * as http from 'node:http';

import type { KubeClient } from '../common/kube/client';
import { type KubeObject, mappingOf, resourcePath } from '../common/kube/objects';
import type { HttpAnswer, SendRequest } from './smokeTest';

export interface ServiceLike extends KubeObject {
  spec?: { type?: string; ports?: Array<{ name?: string; port: number }> };
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string }> } };
}

export interface ServiceEndpoint {
  service: string;
  type: string;
  /** The URL a client outside the cluster (LoadBalancer) or inside it (ClusterIP) uses. */
  url: string;
  external?: string;
  port: number;
  portName?: string;
}

export function endpointOf(service: ServiceLike): ServiceEndpoint {
  const name = service.metadata.name!;
  const ns = service.metadata.namespace ?? 'default';
  const port = service.spec?.ports?.[0];
  const type = service.spec?.type ?? 'ClusterIP';
  const ingress = service.status?.loadBalancer?.ingress?.[0];
  const external = ingress?.ip ?? ingress?.hostname;
  const portSuffix = (p: number) => (p === 80 ? '' : `:${p}`);
  const url =
    type === 'LoadBalancer' && external
      ? `http://${external.includes(':') ? `[${external}]` : external}${portSuffix(port?.port ?? 80)}`
      : `http://${name}.${ns}.svc.cluster.local${portSuffix(port?.port ?? 80)}`;
  return { service: name, type, url, external, port: port?.port ?? 80, portName: port?.name };
}

/** Watches a LoadBalancer Service until the cloud publishes its address, or `timeoutMs` passes. */
export async function waitForLoadBalancer(
  client: KubeClient,
  namespace: string,
  name: string,
  timeoutMs: number,
  log: (l: string) => void,
): Promise<ServiceLike | undefined> {
  const path = resourcePath(mappingOf('Service'), namespace, name);
  let service = await client.get<ServiceLike>(path);
  if (!service || service.spec?.type !== 'LoadBalancer' || service.status?.loadBalancer?.ingress?.length)
    return service;
  log(`Waiting for the load balancer address of service "${name}" (up to ${Math.round(timeoutMs / 1000)} s)...`);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    let resourceVersion = service.metadata.resourceVersion;
    while (!abort.signal.aborted) {
      const result = await client.watch<ServiceLike>(
        resourcePath(mappingOf('Service'), namespace),
        { fieldSelector: `metadata.name=${name}`, resourceVersion, timeoutSeconds: 60 },
        (event) => {
          if (event.type === 'DELETED') return true;
          service = event.object;
          return Boolean(service.status?.loadBalancer?.ingress?.length);
        },
        abort.signal,
      );
      if (result.stopped) break;
      resourceVersion = result.gone
        ? (await client.get<ServiceLike>(path))?.metadata.resourceVersion
        : result.resourceVersion;
    }
  } finally {
    clearTimeout(timer);
  }
  return service;
}

/** Requests straight to the load balancer's address. */
export function directSender(baseUrl: string, timeoutMs = 10_000): SendRequest {
  return (method, path, body, headers) =>
    new Promise<HttpAnswer>((resolve, reject) => {
      const req = http.request(
        new URL(path, baseUrl),
        { method, headers: { ...headers, ...(body ? { 'Content-Length': Buffer.byteLength(body) } : {}) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.setTimeout(timeoutMs, () =>
        req.destroy(
          Object.assign(new Error(`${method} ${baseUrl}${path} timed out after ${timeoutMs} ms`), {
            code: 'ETIMEDOUT',
          }),
        ),
      );
      req.on('error', reject);
      req.end(body);
    });
}

/** Requests through `/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/`: works for ClusterIP services and private clusters alike. */
export function proxySender(client: KubeClient, namespace: string, endpoint: ServiceEndpoint): SendRequest {
  const servicePath = `${resourcePath(mappingOf('Service'), namespace)}/${encodeURIComponent(endpoint.service)}:${encodeURIComponent(endpoint.portName ?? String(endpoint.port))}/proxy`;
  return async (method, path, body, headers) => {
    const res = await client.exchange({
      method,
      path: `${servicePath}${path}`,
      body,
      contentType: headers?.['Content-Type'],
      headers,
      timeoutMs: 15_000,
    });
    return { status: res.status, body: res.body.toString('utf8') };
  };
}
