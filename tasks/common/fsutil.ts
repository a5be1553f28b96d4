import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A temp path beside the target, so the final rename stays on one filesystem and is atomic. */
export function tempPathBeside(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.partial`,
  );
}

/** Writes through a temp file and renames only when `verify` passes; on failure nothing is left. */
export async function writeAtomically(
  target: string,
  write: (tempPath: string) => Promise<void>,
  verify?: (tempPath: string) => Promise<void>,
): Promise<void> {
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const temp = tempPathBeside(target);
  try {
    await write(temp);
    if (verify) await verify(temp);
    fs.renameSync(temp, target);
  } catch (err) {
    fs.rmSync(temp, { force: true, recursive: true });
    throw err;
  }
}

/** Rejects names that would escape the folder they are written into (.., absolute, drive letters). */
export function safeRelativePath(name: string): string | undefined {
  const normalised = name.replace(/\\/g, '/');
  if (!normalised || normalised.startsWith('/') || /^[a-zA-Z]:/.test(normalised)) return undefined;
  const parts = normalised.split('/');
  if (parts.some((p) => p === '..' || p === '.' || p.includes('\0'))) return undefined;
  return parts.filter((p) => p !== '').join('/');
}

export async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
