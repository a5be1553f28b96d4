import { strict as assert } from 'node:assert';

import { safeRelativePath } from '../../tasks/common/fsutil';
import {
  backoffDelay,
  isTransientError,
  parseRetryAfter,
  TransientHttpError,
  withRetry,
} from '../../tasks/common/retry';
import { formatBytes } from '../../tasks/common/summary';

describe('common: retry', () => {
  const noSleep = { sleep: async () => {}, random: () => 0.5 };

  it('retries transient failures and returns the first success', async () => {
    let calls = 0;
    const value = await withRetry(async () => {
      calls++;
      if (calls < 3) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      return 'ok';
    }, noSleep);
    assert.equal(value, 'ok');
    assert.equal(calls, 3);
  });

  it('gives up after the bound and throws the last error', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw new TransientHttpError(503, `503 #${calls}`);
        },
        { ...noSleep, attempts: 4 },
      ),
      /503 #4/,
    );
    assert.equal(calls, 4);
  });

  it('does not retry what is not transient', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(async () => {
        calls++;
        throw Object.assign(new Error('forbidden'), { statusCode: 403 });
      }, noSleep),
      /forbidden/,
    );
    assert.equal(calls, 1);
  });

  it('honours Retry-After, in seconds or as a date, and jitters the exponential backoff', async () => {
    assert.equal(parseRetryAfter('3'), 3000);
    assert.equal(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 10)).toUTCString(), Date.UTC(2030, 0, 1)), 10_000);
    assert.equal(parseRetryAfter('soon'), undefined);
    const slept: number[] = [];
    let calls = 0;
    await withRetry(
      async () => {
        if (++calls === 1) throw new TransientHttpError(429, 'slow down', 7000);
        return 1;
      },
      { sleep: async (ms) => void slept.push(ms), random: () => 0 },
    );
    assert.deepEqual(slept, [7000]);
    // attempt 3 with base 500: exponential 2000, jittered into [1000, 2000]
    assert.equal(backoffDelay(3, { random: () => 0 }), 1000);
    assert.equal(backoffDelay(3, { random: () => 1 }), 2000);
    assert.equal(backoffDelay(30, { random: () => 1, maxDelayMs: 30_000 }), 30_000);
  });

  it('classifies errors from fetch, the Azure SDK and the AWS SDK', () => {
    assert.ok(
      isTransientError(
        Object.assign(new TypeError('fetch failed'), {
          cause: Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' }),
        }),
      ),
    );
    assert.ok(isTransientError({ name: 'RestError', statusCode: 500, message: 'InternalError' }));
    assert.ok(isTransientError({ name: 'SlowDown', $metadata: { httpStatusCode: 503 }, message: 'slow down' }));
    assert.ok(!isTransientError({ name: 'RestError', statusCode: 404, message: 'BlobNotFound' }));
    assert.ok(!isTransientError(new Error('sha256 mismatch')));
  });
});

describe('common: small helpers', () => {
  it('formats byte counts for people', () => {
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.50 KiB');
    assert.equal(formatBytes(1024 ** 3), '1.00 GiB');
  });

  it('refuses names that would escape their folder', () => {
    assert.equal(safeRelativePath('models/churn/1.0/model.onnx'), 'models/churn/1.0/model.onnx');
    for (const bad of [
      '../etc/passwd',
      'a/../../b',
      '/etc/passwd',
      'C:\\Windows\\x',
      'c:/x',
      'a\\..\\b',
      'a/./b',
      'a\0b',
    ]) {
      assert.equal(safeRelativePath(bad), undefined, bad);
    }
  });
});
