import * as assert from 'node:assert/strict';

import { excludeMatcher, parseExcludeLines } from '../../tasks/common/oci/excludes';

describe('oci .dockerignore-style excludes', () => {
  it('matches from the root, covers folder contents, and lets the last pattern win', () => {
    const m = excludeMatcher(
      parseExcludeLines('# comment\n\n/node_modules\n*.log\n**/*.map\n!keep.log\ntest/\n./tmp\n'),
    );
    assert.equal(m.isExcluded('node_modules', true), true);
    assert.equal(m.isExcluded('node_modules/x/index.js', false), true);
    assert.equal(m.isExcluded('lib/node_modules/x.js', false), false, 'root-relative like Docker');
    assert.equal(m.isExcluded('debug.log', false), true);
    assert.equal(m.isExcluded('logs/debug.log', false), false);
    assert.equal(m.isExcluded('keep.log', false), false);
    assert.equal(m.isExcluded('dist/deep/main.js.map', false), true);
    assert.equal(m.isExcluded('test/a.js', false), true);
    assert.equal(m.isExcluded('tmp', true), true);
    assert.equal(m.isExcluded('.env', false), false);
    assert.equal(m.hasNegations, true);
    assert.deepEqual(excludeMatcher(['.git', '.*']).isExcluded('.env', false), true);
  });
});
