import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ServerCertificates {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/**
 * A throwaway CA and a server certificate for 127.0.0.1/localhost, made with the
 * openssl CLI so clients verify the chain exactly as they would against a cluster.
 */
export async function makeServerCertificates(): Promise<ServerCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'kube-test-ca-'));
  try {
    const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    await run('openssl', [
      'req',
      '-x509',
      ...ecKey,
      '-keyout',
      join(dir, 'ca.key'),
      '-out',
      join(dir, 'ca.pem'),
      '-days',
      '2',
      '-subj',
      '/CN=kube-test-ca',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    await run('openssl', [
      'req',
      '-new',
      ...ecKey,
      '-keyout',
      join(dir, 'server.key'),
      '-out',
      join(dir, 'server.csr'),
      '-subj',
      '/CN=kube-apiserver',
    ]);
    await writeFile(
      join(dir, 'server.ext'),
      'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' +
        'extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n',
    );
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      join(dir, 'server.csr'),
      '-CA',
      join(dir, 'ca.pem'),
      '-CAkey',
      join(dir, 'ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      join(dir, 'server.ext'),
      '-out',
      join(dir, 'server.pem'),
    ]);
    const [caPem, certPem, keyPem] = await Promise.all(
      ['ca.pem', 'server.pem', 'server.key'].map((name) => readFile(join(dir, name), 'utf8')),
    );
    return { caPem, certPem, keyPem };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
