// postinstall: onnxruntime-node ships native binaries for every OS and CPU (~290 MB); keep only this
// machine's (~46 MB), so an image layer of node_modules stays small. KEEP_ALL_ONNXRUNTIME_BINARIES=1 skips it.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const appRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const binRoot = path.join(appRoot, 'node_modules', 'onnxruntime-node', 'bin');

if (process.env.KEEP_ALL_ONNXRUNTIME_BINARIES !== '1' && existsSync(binRoot)) {
  for (const napi of readdirSync(binRoot)) {
    const napiDir = path.join(binRoot, napi);
    for (const platform of readdirSync(napiDir)) {
      for (const arch of readdirSync(path.join(napiDir, platform))) {
        if (platform !== process.platform || arch !== process.arch) {
          rmSync(path.join(napiDir, platform, arch), { recursive: true, force: true });
        }
      }
      if (readdirSync(path.join(napiDir, platform)).length === 0)
        rmSync(path.join(napiDir, platform), { recursive: true });
    }
  }
}
