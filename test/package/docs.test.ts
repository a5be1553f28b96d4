import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { repoRoot } from '../support/paths';

describe('task reference docs', () => {
  it('docs/tasks/<Task>.md match their task.json (run `npm run docs` after changing a task.json)', async () => {
    const { taskDocs } = (await import(path.join(repoRoot, '.ci', 'docs.mjs'))) as {
      taskDocs: () => Array<{ file: string; text: string }>;
    };
    const docs = taskDocs();
    assert.ok(docs.length >= 4);
    for (const doc of docs) {
      assert.ok(fs.existsSync(doc.file), `${path.relative(repoRoot, doc.file)} is missing: run npm run docs`);
      assert.equal(
        fs.readFileSync(doc.file, 'utf8'),
        doc.text,
        `${path.relative(repoRoot, doc.file)} drifted from its task.json: run npm run docs`,
      );
    }
  });
});
