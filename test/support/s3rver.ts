import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';

// s3rver ships no types; its programmatic API is small: new S3rver(opts).run() / close().
// @ts-expect-error untyped CommonJS module
import S3rver from 's3rver';

import { makeTempDir } from './paths';
import { freePort } from './ports';

export interface S3Server {
  /** http://127.0.0.1:<port> (path-style addressing) */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  stop(): Promise<void>;
}

import * as crypto from 'node:crypto';

// @ts-expect-error untyped CommonJS module
import AWSAccount from 's3rver/lib/models/account.js';

/** Starts s3rver on a free 127.0.0.1 port with its objects in a temp folder; `buckets` are created up front. */
export async function startS3rver(opts: { buckets?: string[] } = {}): Promise<S3Server> {
  // s3rver's built-in key pair is S3RVER/S3RVER: an id equal to its secret would make every log line
  // naming the key id look like a leak. Register a realistic pair on its dummy account instead.
  const ACCESS_KEY_ID = `AKIA${crypto.randomBytes(8).toString('hex').toUpperCase()}`;
  const SECRET_ACCESS_KEY = crypto.randomBytes(30).toString('base64');
  (AWSAccount as { DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void } }).DUMMY_ACCOUNT.createKeyPair(
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
  );
  const directory = makeTempDir('s3rver-');
  const port = await freePort();
  const server = new S3rver({
    address: '127.0.0.1',
    port,
    directory,
    silent: true,
    configureBuckets: (opts.buckets ?? []).map((name) => ({ name })),
  });
  const address = (await server.run()) as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    accessKeyId: ACCESS_KEY_ID,
    secretAccessKey: SECRET_ACCESS_KEY,
    region: 'us-east-1',
    async stop() {
      await server.close();
      fs.rmSync(directory, { recursive: true, force: true });
    },
  };
}
