// Renders images/icon.svg to the extension icon (128×128) and each task's icon.png (32×32), and
// images/flow.svg to the Marketplace page's diagram, so every PNG comes from an SVG kept in the repo.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Resvg } from '@resvg/resvg-js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const svg = fs.readFileSync(path.join(root, 'images', 'icon.svg'));
const render = (size) => new Resvg(svg, { fitTo: { mode: 'width', value: size } }).render().asPng();

fs.writeFileSync(path.join(root, 'images', 'icon.png'), render(128));
for (const name of fs.readdirSync(path.join(root, 'tasks'))) {
  if (fs.existsSync(path.join(root, 'tasks', name, 'task.json')))
    fs.writeFileSync(path.join(root, 'tasks', name, 'icon.png'), render(32));
}
// The diagram has text, whose rendering depends on the fonts installed: made on request only
// (npm run images), not on every build.
if (process.argv.includes('--diagram'))
  fs.writeFileSync(
    path.join(root, 'images', 'flow.png'),
    new Resvg(fs.readFileSync(path.join(root, 'images', 'flow.svg')), {
      fitTo: { mode: 'width', value: 1920 },
      font: { loadSystemFonts: true },
    })
      .render()
      .asPng(),
  );
console.log('icons rendered');
