import * as assert from 'node:assert/strict';

import {
  apiHostOf,
  formatLayoutReference,
  formatReference,
  InvalidReferenceError,
  isLayoutReference,
  parseLayoutReference,
  parseReference,
  parseRepository,
  sanitizeTag,
} from '../../tasks/common/oci/reference';

describe('oci reference parsing', () => {
  const cases: Array<[string, { registry: string; repository: string; tag?: string; digest?: string }]> = [
    ['ubuntu', { registry: 'docker.io', repository: 'library/ubuntu' }],
    ['ubuntu:22.04', { registry: 'docker.io', repository: 'library/ubuntu', tag: '22.04' }],
    ['bitnami/redis:7', { registry: 'docker.io', repository: 'bitnami/redis', tag: '7' }],
    ['myacr.azurecr.io/scoring-app:1.2', { registry: 'myacr.azurecr.io', repository: 'scoring-app', tag: '1.2' }],
    ['localhost/app', { registry: 'localhost', repository: 'app' }],
    ['127.0.0.1:5000/team/app:v1', { registry: '127.0.0.1:5000', repository: 'team/app', tag: 'v1' }],
    [
      'mcr.microsoft.com/dotnet/aspnet@sha256:' + 'a'.repeat(64),
      { registry: 'mcr.microsoft.com', repository: 'dotnet/aspnet', digest: 'sha256:' + 'a'.repeat(64) },
    ],
    [
      'host:5000/a/b:tag@sha256:' + 'b'.repeat(64),
      { registry: 'host:5000', repository: 'a/b', tag: 'tag', digest: 'sha256:' + 'b'.repeat(64) },
    ],
    ['index.docker.io/library/node:20', { registry: 'docker.io', repository: 'library/node', tag: '20' }],
  ];
  for (const [input, expected] of cases) {
    it(`reads ${input}`, () => {
      const ref = parseReference(input);
      assert.deepEqual(
        { ...ref },
        Object.fromEntries(Object.entries({ tag: undefined, digest: undefined, ...expected })),
      );
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
      assert.throws(
        () => parseReference(input),
        (err: unknown) => err instanceof InvalidReferenceError && problem.test(err.problem),
      );
    });
  }

  it('takes a push target without tag or digest', () => {
    assert.deepEqual(parseRepository('myacr.azurecr.io/ml/scoring'), {
      registry: 'myacr.azurecr.io',
      repository: 'ml/scoring',
    });
    assert.throws(() => parseRepository('myacr.azurecr.io/scoring:1'), /without a tag/);
  });

  it('formats, maps Docker Hub to its API host, and makes tags from free text', () => {
    assert.equal(formatReference(parseReference('node')), 'docker.io/library/node:latest');
    assert.equal(apiHostOf('docker.io'), 'registry-1.docker.io');
    assert.equal(sanitizeTag('2024.05 rc1'), '2024.05-rc1');
    assert.equal(sanitizeTag('v1/abc+def'), 'v1-abc-def');
    assert.equal(sanitizeTag('...'), undefined);
  });

  describe('OCI layout references (skopeo oci: transport)', () => {
    const digest = 'sha256:' + 'c'.repeat(64);
    const layoutCases: Array<[string, { path: string; refName?: string; digest?: string }]> = [
      ['oci:/agent/_work/1/base', { path: '/agent/_work/1/base' }],
      ['oci:base-layout', { path: 'base-layout' }],
      ['oci:/w/base:1.2', { path: '/w/base', refName: '1.2' }],
      ['oci:./base:latest', { path: './base', refName: 'latest' }],
      // skopeo's rule: the folder ends at the first colon; the rest (which may hold ':' and '/') is the ref name.
      ['oci:/w/base:myacr.azurecr.io/app:1.0', { path: '/w/base', refName: 'myacr.azurecr.io/app:1.0' }],
      ['oci:/w/base@' + digest, { path: '/w/base', digest }],
      ['oci:/w/b@se:v1', { path: '/w/b@se', refName: 'v1' }],
      ['oci:C:\\agent\\base:v1', { path: 'C:\\agent\\base', refName: 'v1' }],
      ['oci:C:/agent/base@' + digest, { path: 'C:/agent/base', digest }],
      ['  oci:/w/base:v2  ', { path: '/w/base', refName: 'v2' }],
    ];
    for (const [input, expected] of layoutCases) {
      it(`reads ${input.trim()}`, () => {
        assert.ok(isLayoutReference(input));
        assert.deepEqual({ ...parseLayoutReference(input) }, expected);
      });
    }

    it('tells registry references from layouts', () => {
      assert.equal(isLayoutReference('myacr.azurecr.io/app:1'), false);
      assert.equal(isLayoutReference('localhost:5000/oci:1'), false);
    });

    const badLayouts: Array<[string, RegExp]> = [
      ['oci:', /folder is missing/],
      ['oci::v1', /folder is missing/],
      ['oci:/w/base:', /not a valid ref name/],
      ['oci:/w/base:-x', /not a valid ref name/],
      ['oci:/w/base:a b', /not a valid ref name/],
      ['oci:/w/base@sha256:abc', /'sha256:abc' is not a digest/],
      ['oci:/w/base@' + digest.toUpperCase().replace('SHA256', 'sha256'), /not a digest/],
      ['oci:@' + digest, /folder is missing/],
    ];
    for (const [input, problem] of badLayouts) {
      it(`rejects '${input}' and says why`, () => {
        assert.throws(
          () => parseLayoutReference(input),
          (err: unknown) => err instanceof InvalidReferenceError && problem.test(err.problem),
        );
      });
    }

    it('formats back to what skopeo reads', () => {
      for (const text of ['oci:/w/base', 'oci:/w/base:1.2', 'oci:/w/base@' + digest])
        assert.equal(formatLayoutReference(parseLayoutReference(text)), text);
    });
  });
});
