import { errorMessage } from './errors';
import { scrub } from './secrets';

export interface RetryOptions {
  /** Attempts in all, the first included. */
  attempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** What the log line says is being retried, e.g. "GET blob models/a.onnx". */
  what?: string;
  isRetryable?: (err: unknown) => boolean;
  /** Injected for tests; real code sleeps. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/** An HTTP answer worth retrying; carries the server's Retry-After, when it sent one. */
export class TransientHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'TransientHttpError';
  }
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/** Network resets, timeouts, 408/429/5xx, whatever library raised them (fetch, Azure SDK, AWS SDK). */
export function isTransientError(err: unknown): boolean {
  if (err instanceof TransientHttpError) return true;
  if (!err || typeof err !== 'object') return false;
  const e = err as Record<string, unknown> & { cause?: unknown; $metadata?: { httpStatusCode?: number } };
  if (typeof e.code === 'string' && TRANSIENT_CODES.has(e.code)) return true;
  const status = (e.statusCode ?? e.status ?? e.$metadata?.httpStatusCode) as unknown;
  if (typeof status === 'number' && isTransientStatus(status)) return true;
  if (e.name === 'AbortError' || e.name === 'TimeoutError') return true;
  if (
    typeof e.message === 'string' &&
    /socket hang up|other side closed|terminated|ECONNRESET|premature close/i.test(e.message)
  )
    return true;
  return e.cause !== undefined && e.cause !== err && isTransientError(e.cause);
}

/** Retry-After is either seconds or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The server's Retry-After carried by an error (ours, or the Azure SDK's RestError), in ms. */
export function retryAfterOf(err: unknown): number | undefined {
  if (err instanceof TransientHttpError) return err.retryAfterMs;
  const headers = (err as { response?: { headers?: { get?(n: string): string | undefined | null } } })?.response
    ?.headers;
  return parseRetryAfter(headers?.get?.('retry-after') ?? undefined);
}

/** Full-jitter exponential backoff; a Retry-After from the server wins when it is longer (bounded). */
export function backoffDelay(attempt: number, opts: RetryOptions, retryAfterMs?: number): number {
  const base = opts.baseDelayMs ?? 500;
  const max = opts.maxDelayMs ?? 30_000;
  const random = opts.random ?? Math.random;
  const exp = Math.min(max, base * 2 ** (attempt - 1));
  const jittered = exp / 2 + random() * (exp / 2);
  return retryAfterMs !== undefined ? Math.min(Math.max(jittered, retryAfterMs), Math.max(max, 60_000)) : jittered;
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const attempts = opts.attempts ?? 6;
  const retryable = opts.isRetryable ?? isTransientError;
  const sleep = opts.sleep ?? realSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts || !retryable(err)) throw err;
      const delay = backoffDelay(attempt, opts, retryAfterOf(err));
      console.log(
        `${opts.what ?? 'operation'} failed (attempt ${attempt}/${attempts}): ${scrub(errorMessage(err))}; retrying in ${Math.round(delay)} ms`,
      );
      await sleep(delay);
    }
  }
}
