import * as assert from 'node:assert/strict';
import { formatReference, InvalidReferenceError, parseReference, parseRepository, sanitizeTag, apiHostOf } from '../../tasks/common/oci/reference';

describe('oci reference parsing', () => {
  const cases: Array<[string, { registry: string; repository: string; tag?: string; digest?: string }]> = [
    ['ubuntu', { registry: 'docker.io', repository: 'library/ubuntu' }],
    ['ubuntu:22.04', { registry: 'docker.io', repository: 'library/ubuntu', tag: '22.04' }],
    ['bitnami/redis:7', { registry: 'docker.io', repository: 'bitnami/redis', tag: '7' }],
    ['myacr.azurecr.io/scoring-app:1.2', { registry: 'myacr.azurecr.io', repository: 'scoring-app', tag: '1.2' }],
    ['localhost/app', { registry: 'localhost', repository: 'app' }],
    ['127.0.0.1:5000/team/app:v1', { registry: '127.0.0.1:5000', repository: 'team/app', tag: 'v1' }],
    ['mcr.microsoft.com/dotnet/aspnet@sha256:' + 'a'.repeat(64), { registry: 'mcr.microsoft.com', repository: 'dotnet/aspnet', digest: 'sha256:' + 'a'.repeat(64) }],
    ['host:5000/a/b:tag@sha256:' + 'b'.repeat(64), { registry: 'host:5000', repository: 'a/b', tag: 'tag', digest: 'sha256:' + 'b'.repeat(64) }],
    ['index.docker.io/library/node:20', { registry: 'docker.io', repository: 'library/node', tag: '20' }],
  ];
  for (const [input, expected] of cases) {
    it(`reads ${input}`, () => {
      const ref = parseReference(input);
      assert.deepEqual({ ...ref }, Object.fromEntries(Object.entries({ tag: undefined, digest: undefined, ...expected })));
    });
  }

  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['Upper/Case', /lowercase/],
    ['app:', /not a valid tag/],
    ['app:-x', /not a valid tag/],
    ['app@sha256:abc', /not a digest/],
    ['https://myacr.azurecr.io/app', /URL scheme/],
    ['my app', /spaces/],
    ['reg.io/a//b', /path component/],
    ['reg.io/', /missing/],
  ];
  for (const [input, problem] of bad) {
    it(`rejects '${input}' and says why`, () => {
      assert.throws(() => parseReference(input), (err: unknown) => err instanceof InvalidReferenceError && problem.test(err.problem));
    });
  }

  it('takes a push target without tag or digest', () => {
    assert.deepEqual(parseRepository('myacr.azurecr.io/ml/scoring'), { registry: 'myacr.azurecr.io', repository: 'ml/scoring' });
    assert.throws(() => parseRepository('myacr.azurecr.io/scoring:1'), /without a tag/);
  });

  it('formats, maps Docker Hub to its API host, and makes tags from free text', () => {
    assert.equal(formatReference(parseReference('node')), 'docker.io/library/node:latest');
    assert.equal(apiHostOf('docker.io'), 'registry-1.docker.io');
    assert.equal(sanitizeTag('2024.05 rc1'), '2024.05-rc1');
    assert.equal(sanitizeTag('v1/abc+def'), 'v1-abc-def');
    assert.equal(sanitizeTag('...'), undefined);
  });
});
