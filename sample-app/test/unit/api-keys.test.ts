import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { ApiKeyStore, presentedKey } from '../../src/auth/api-keys.js';

describe('API keys', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'keys-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is off with no keys, and accepts exactly the configured keys otherwise', () => {
    assert.equal(new ApiKeyStore([], undefined).enabled, false);
    const store = new ApiKeyStore(['key-one-0123456789', 'key-two-0123456789'], undefined);
    assert.equal(store.enabled, true);
    assert.ok(store.accepts('key-one-0123456789'));
    assert.ok(store.accepts('key-two-0123456789'));
    assert.ok(!store.accepts('key-one-012345678'));
    assert.ok(!store.accepts(''));
  });

  it('reads a key file and a mounted Secret folder, and picks up rotation on reload', () => {
    const file = path.join(dir, 'keys.txt');
    writeFileSync(file, '# rotated monthly\nfile-key-aaaaaaaaaaaa\n\n');
    const store = new ApiKeyStore([], file);
    assert.ok(store.accepts('file-key-aaaaaaaaaaaa'));
    writeFileSync(file, 'file-key-bbbbbbbbbbbb\n');
    store.reload();
    assert.ok(!store.accepts('file-key-aaaaaaaaaaaa'));
    assert.ok(store.accepts('file-key-bbbbbbbbbbbb'));

    const secret = path.join(dir, 'secret');
    mkdirSync(secret);
    writeFileSync(path.join(secret, 'primary'), 'secret-primary-1234567\n');
    writeFileSync(path.join(secret, 'secondary'), 'secret-secondary-12345');
    mkdirSync(path.join(secret, '..data'));
    const fromFolder = new ApiKeyStore([], secret);
    assert.equal(fromFolder.keyCount, 2);
    assert.ok(fromFolder.accepts('secret-secondary-12345'));
  });

  it('refuses an empty key file and short keys', () => {
    const file = path.join(dir, 'empty.txt');
    writeFileSync(file, '\n');
    assert.throws(() => new ApiKeyStore([], file), /holds no keys/);
    writeFileSync(file, 'short\n');
    assert.throws(() => new ApiKeyStore([], file), /shorter than 16 characters/);
  });

  it('takes the key from Authorization: Bearer or api-key', () => {
    assert.equal(presentedKey({ authorization: 'Bearer abc' }), 'abc');
    assert.equal(presentedKey({ authorization: 'bearer   abc ' }), 'abc');
    assert.equal(presentedKey({ 'api-key': 'xyz' }), 'xyz');
    assert.equal(presentedKey({ authorization: 'Basic Zm9v' }), undefined);
    assert.equal(presentedKey({}), undefined);
  });
});
