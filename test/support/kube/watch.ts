/** `watch=true` streams: newline-delimited watch events, 410 Expired for compacted versions, bookmarks, timeouts. */
import type { IncomingMessage, ServerResponse } from 'node:http';

import { clone, type KubeObject } from './objects';
import { apiVersionOf, type ResourceType } from './resources';
import type { ObjectMatcher } from './selectors';
import { failure } from './status';
import type { ObjectStore, StoredChange } from './store';

export interface WatchRequest {
  type: ResourceType;
  namespace: string | undefined;
  matches: ObjectMatcher;
  resourceVersion: string | null;
  timeoutSeconds: number | undefined;
  allowBookmarks: boolean;
  sendInitialEvents: boolean | undefined;
  bookmarkIntervalMs: number;
}

function keyOf(object: KubeObject): string {
  return `${object.metadata.namespace ?? ''}/${object.metadata.name}`;
}

export class WatchStreams {
  private readonly open = new Set<ServerResponse>();

  constructor(private readonly store: ObjectStore) {}

  closeAll(): void {
    for (const res of this.open) res.end();
    this.open.clear();
  }

  serve(req: IncomingMessage, res: ServerResponse, watch: WatchRequest): void {
    const { type, namespace, matches } = watch;
    const inScope = (object: KubeObject) => namespace === undefined || object.metadata.namespace === namespace;
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, private',
      'Transfer-Encoding': 'chunked',
    });
    res.flushHeaders();
    const send = (eventType: string, object: unknown) => res.write(`${JSON.stringify({ type: eventType, object })}\n`);
    const withKind = (object: KubeObject): KubeObject => ({
      ...clone(object),
      apiVersion: apiVersionOf(type),
      kind: type.kind,
    });
    const matched = new Set<string>();

    const rv = watch.resourceVersion;
    const fromCurrentState = rv === null || rv === '' || rv === '0' || watch.sendInitialEvents === true;
    let replay: StoredChange[] = [];
    if (fromCurrentState) {
      if (watch.sendInitialEvents !== false) {
        for (const object of this.store.list(type, namespace)) {
          if (!matches(object)) continue;
          matched.add(keyOf(object));
          send('ADDED', withKind(object));
        }
      }
      if (watch.sendInitialEvents === true && watch.allowBookmarks) {
        send('BOOKMARK', {
          kind: type.kind,
          apiVersion: apiVersionOf(type),
          metadata: {
            resourceVersion: String(this.store.resourceVersion),
            annotations: { 'k8s.io/initial-events-end': 'true' },
          },
        });
      }
    } else {
      const since = Number(rv);
      const changes = Number.isFinite(since) ? this.store.changesSince(since) : undefined;
      if (!changes) {
        const gone = failure(410, 'Expired', `too old resource version: ${rv} (${this.store.oldestWatchableRevision})`);
        send('ERROR', gone.status);
        res.end();
        return;
      }
      for (const object of this.store.list(type, namespace)) if (matches(object)) matched.add(keyOf(object));
      replay = changes;
    }

    const deliver = (change: StoredChange) => {
      if (change.resource !== type || !inScope(change.object)) return;
      const key = keyOf(change.object);
      const was = matched.has(key);
      const now = change.type !== 'DELETED' && matches(change.object);
      if (change.type === 'DELETED') {
        if (was || matches(change.object)) send('DELETED', withKind(change.object));
        matched.delete(key);
        return;
      }
      if (now) {
        matched.add(key);
        send(was ? 'MODIFIED' : 'ADDED', withKind(change.object));
      } else if (was) {
        // An object that stops matching the selector leaves the watcher's view as a DELETED event.
        matched.delete(key);
        send('DELETED', withKind(change.object));
      }
    };
    for (const change of replay) {
      if (change.resource !== type || !inScope(change.object)) continue;
      const passes = change.type === 'DELETED' || matches(change.object);
      if (passes) send(change.type, withKind(change.object));
    }
    this.open.add(res);
    const unsubscribe = this.store.subscribe(deliver);
    const timers: NodeJS.Timeout[] = [];
    if (watch.allowBookmarks) {
      timers.push(
        setInterval(() => {
          send('BOOKMARK', {
            kind: type.kind,
            apiVersion: apiVersionOf(type),
            metadata: { resourceVersion: String(this.store.resourceVersion) },
          });
        }, watch.bookmarkIntervalMs),
      );
    }
    if (watch.timeoutSeconds !== undefined) timers.push(setTimeout(() => res.end(), watch.timeoutSeconds * 1000));
    const cleanup = () => {
      unsubscribe();
      for (const timer of timers) clearTimeout(timer);
      this.open.delete(res);
    };
    res.on('close', cleanup);
    res.on('finish', cleanup);
    req.on('close', cleanup);
  }
}
