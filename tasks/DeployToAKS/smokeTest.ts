/**
 * After a rollout: /readyz answers 200 and a sample POST to /score answers 200 with (if given)
 * the expected output. Requests go through a `send` function, so the same checks run against a
 * load balancer's address or through the API server's service proxy.
 */
import { TaskError } from '../common/errors';

export interface HttpAnswer {
  status: number;
  body: string;
}

export type SendRequest = (
  method: 'GET' | 'POST',
  path: string,
  body?: string,
  headers?: Record<string, string>,
) => Promise<HttpAnswer>;

export interface SmokeTestSpec {
  readyPath: string;
  scorePath: string;
  payload?: string;
  expected?: unknown;
  tolerance: number;
  apiKey?: string;
  /** How long /readyz may take to answer 200 (endpoints lag the rollout by a moment). */
  readyWithinMs?: number;
}

export interface SmokeTestResult {
  readyStatus: number;
  scoreStatus?: number;
  scoreBody?: string;
  ms: number;
}

export class SmokeTestError extends TaskError {
  constructor(message: string) {
    super(`Smoke test failed: ${message}`);
    this.name = 'SmokeTestError';
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Where `actual` differs from `expected`, or undefined when every expected field is there and equal (numbers within tolerance). */
export function mismatch(actual: unknown, expected: unknown, tolerance: number, path = '$'): string | undefined {
  if (typeof expected === 'number') {
    if (typeof actual !== 'number') return `${path} is ${JSON.stringify(actual)}, expected the number ${expected}`;
    const scale = Math.max(1, Math.abs(expected));
    return Math.abs(actual - expected) <= tolerance * scale
      ? undefined
      : `${path} is ${actual}, expected ${expected} (±${tolerance})`;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${path} is ${JSON.stringify(actual)}, expected an array`;
    if (actual.length !== expected.length) return `${path} has ${actual.length} items, expected ${expected.length}`;
    for (let i = 0; i < expected.length; i++) {
      const m = mismatch(actual[i], expected[i], tolerance, `${path}[${i}]`);
      if (m) return m;
    }
    return undefined;
  }
  if (expected && typeof expected === 'object') {
    if (!actual || typeof actual !== 'object' || Array.isArray(actual))
      return `${path} is ${JSON.stringify(actual)}, expected an object`;
    for (const [key, value] of Object.entries(expected)) {
      if (!(key in actual)) return `${path}.${key} is missing`;
      const m = mismatch((actual as Record<string, unknown>)[key], value, tolerance, `${path}.${key}`);
      if (m) return m;
    }
    return undefined;
  }
  return actual === expected ? undefined : `${path} is ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`;
}

const clip = (text: string, n = 300) => (text.length > n ? `${text.slice(0, n)}…` : text);

export async function runSmokeTest(
  send: SendRequest,
  spec: SmokeTestSpec,
  log: (line: string) => void = () => undefined,
): Promise<SmokeTestResult> {
  const started = Date.now();
  const headers: Record<string, string> = spec.apiKey ? { 'api-key': spec.apiKey } : {};
  const readyDeadline = started + (spec.readyWithinMs ?? 30_000);
  let ready: HttpAnswer | undefined;
  let lastError: string;
  for (let attempt = 1; ; attempt++) {
    try {
      ready = await send('GET', spec.readyPath, undefined, headers);
      if (ready.status === 200) break;
      lastError = `HTTP ${ready.status}${ready.body.trim() ? `: ${clip(ready.body.trim())}` : ''}`;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (Date.now() >= readyDeadline)
      throw new SmokeTestError(
        `GET ${spec.readyPath} did not answer 200 within ${Math.round((spec.readyWithinMs ?? 30_000) / 1000)} s (last: ${lastError}).`,
      );
    log(`GET ${spec.readyPath}: ${lastError}; trying again`);
    await sleep(Math.min(2000, 250 * attempt));
  }
  log(`GET ${spec.readyPath}: 200`);
  if (spec.payload === undefined) return { readyStatus: ready.status, ms: Date.now() - started };

  let score: HttpAnswer | undefined;
  for (let attempt = 1; attempt <= 3; attempt++) {
    score = await send('POST', spec.scorePath, spec.payload, { ...headers, 'Content-Type': 'application/json' });
    // 502/503 through a proxy while endpoints settle is worth another try; anything else is the answer.
    if (score.status !== 502 && score.status !== 503) break;
    await sleep(500 * attempt);
  }
  if (score?.status !== 200)
    throw new SmokeTestError(`POST ${spec.scorePath} answered HTTP ${score?.status}: ${clip(score?.body ?? '')}`);
  log(`POST ${spec.scorePath}: 200 ${clip(score.body, 200)}`);
  if (spec.expected !== undefined) {
    let actual: unknown;
    try {
      actual = JSON.parse(score.body);
    } catch {
      throw new SmokeTestError(`POST ${spec.scorePath} answered with something other than JSON: ${clip(score.body)}`);
    }
    const diff = mismatch(actual, spec.expected, spec.tolerance);
    if (diff) throw new SmokeTestError(`POST ${spec.scorePath} answered an unexpected result: ${diff}.`);
  }
  return { readyStatus: ready.status, scoreStatus: score.status, scoreBody: score.body, ms: Date.now() - started };
}
