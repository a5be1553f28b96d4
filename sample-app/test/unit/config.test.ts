import assert from 'node:assert/strict';

import { ConfigError, loadConfig } from '../../src/config/app-config.js';

describe('loadConfig', () => {
  it('applies defaults with only MODEL_PATH set', () => {
    const config = loadConfig({ MODEL_PATH: '/models/m.onnx' });
    assert.equal(config.port, 8080);
    assert.equal(config.bodyLimitBytes, 1024 * 1024);
    assert.deepEqual(config.batching, { enabled: true, maxBatchRows: 64, maxWaitMicros: 1000 });
    assert.deepEqual(config.apiKeys, []);
    assert.equal(config.shutdownGraceMillis, 25_000);
    assert.equal(config.accessLog, false);
  });

  it('reads sizes, flags, keys and the model identity', () => {
    const config = loadConfig({
      MODEL_PATH: '/m',
      PORT: '9000',
      BODY_LIMIT: '4mb',
      BATCHING: 'off',
      BATCH_MAX_ROWS: '128',
      BATCH_MAX_WAIT_US: '250',
      API_KEYS: 'aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb',
      MODEL_NAME: 'fraud',
      MODEL_VERSION: '7',
      MODEL_SHA256: `sha256:${'AB'.repeat(32)}`,
    });
    assert.equal(config.port, 9000);
    assert.equal(config.bodyLimitBytes, 4 * 1024 * 1024);
    assert.deepEqual(config.batching, { enabled: false, maxBatchRows: 128, maxWaitMicros: 250 });
    assert.deepEqual(config.apiKeys, ['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb']);
    assert.equal(config.modelSha256, 'ab'.repeat(32));
    assert.equal(config.modelName, 'fraud');
  });

  it('collects every problem, each naming its variable', () => {
    assert.throws(
      () =>
        loadConfig({
          PORT: 'eighty',
          BODY_LIMIT: '12 parsecs',
          BATCHING: 'maybe',
          MODEL_SHA256: 'xyz',
          API_KEYS: 'short',
          LOG_LEVEL: 'loud',
          IMAGE_LABELS: '[1]',
        }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const text = error.message;
        for (const name of [
          'MODEL_PATH is required',
          'PORT must be',
          'BODY_LIMIT must be',
          'BATCHING must be',
          'MODEL_SHA256 must be',
          'API_KEYS: every key',
          'LOG_LEVEL must be',
          'IMAGE_LABELS must be',
        ]) {
          assert.ok(text.includes(name), `missing "${name}" in: ${text}`);
        }
        assert.equal(error.problems.length, 8);
        return true;
      },
    );
  });

  it('takes image labels from IMAGE_LABELS and OCI_IMAGE_* variables', () => {
    const config = loadConfig({
      MODEL_PATH: '/m',
      OCI_IMAGE_REVISION: 'abc123',
      OCI_IMAGE_BASE_DIGEST: 'sha256:00',
      IMAGE_LABELS: '{"org.opencontainers.image.source":"https://dev.azure.com/x","team":"risk"}',
    });
    assert.deepEqual(config.imageLabels, {
      'org.opencontainers.image.revision': 'abc123',
      'org.opencontainers.image.base.digest': 'sha256:00',
      'org.opencontainers.image.source': 'https://dev.azure.com/x',
      team: 'risk',
    });
  });

  it('refuses a shutdown delay as long as the grace period', () => {
    assert.throws(
      () => loadConfig({ MODEL_PATH: '/m', SHUTDOWN_DELAY_MS: '5000', SHUTDOWN_GRACE_MS: '5000' }),
      /SHUTDOWN_DELAY_MS \(5000\) must be less than SHUTDOWN_GRACE_MS/,
    );
  });
});
