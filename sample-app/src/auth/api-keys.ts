// API keys for the scoring and inference routes: from API_KEYS (comma-separated) and API_KEYS_FILE (a file
// with one key per line, or a folder whose every file holds one key, as a mounted Kubernetes Secret is).
// The file is read again every few seconds, so a rotated Secret takes effect without a restart.
// Keys are kept only as SHA-256 digests and compared in constant time; they are never logged.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const MIN_KEY_LENGTH = 16;

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** Reads keys from a file (one per line, # comments) or a folder of files (one key each, dotfiles skipped). */
export function readKeysFile(location: string): string[] {
  const info = statSync(location);
  const texts = info.isDirectory()
    ? readdirSync(location)
        .filter((name) => !name.startsWith('.'))
        .map((name) => path.join(location, name))
        .filter((file) => statSync(file).isFile())
        .map((file) => readFileSync(file, 'utf8'))
    : [readFileSync(location, 'utf8')];
  const keys = texts
    .flatMap((text) => text.split(/\r?\n/))
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const short = keys.filter((key) => key.length < MIN_KEY_LENGTH).length;
  if (short > 0)
    throw new Error(`${short} key(s) in API_KEYS_FILE "${location}" are shorter than ${MIN_KEY_LENGTH} characters`);
  return keys;
}

export class ApiKeyStore {
  private digests: Buffer[] = [];
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly envKeys: string[],
    private readonly keysFile: string | undefined,
    private readonly onReloadError: (message: string) => void = () => {},
  ) {
    this.reload();
    if (this.digests.length === 0 && keysFile !== undefined) {
      throw new Error(
        `API_KEYS_FILE "${keysFile}" holds no keys: put at least one key in it, or unset it to turn key auth off`,
      );
    }
  }

  /** True when any key is configured: the scoring and inference routes then require one. */
  get enabled(): boolean {
    return this.envKeys.length > 0 || this.keysFile !== undefined;
  }

  get keyCount(): number {
    return this.digests.length;
  }

  /** Throws on the first read (bad config stops the start); later failures keep the previous keys. */
  reload(): void {
    const fileKeys = this.keysFile === undefined ? [] : readKeysFile(this.keysFile);
    this.digests = [...new Set([...this.envKeys, ...fileKeys])].map(digest);
  }

  watch(intervalMillis: number): void {
    if (this.keysFile === undefined) return;
    this.timer = setInterval(() => {
      try {
        this.reload();
      } catch (error) {
        this.onReloadError((error as Error).message);
      }
    }, intervalMillis);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Compares against every key without an early exit, so timing says nothing about which key came close. */
  accepts(candidate: string): boolean {
    const candidateDigest = digest(candidate);
    let matched = false;
    for (const keyDigest of this.digests) matched = timingSafeEqual(candidateDigest, keyDigest) || matched;
    return matched;
  }
}

/** The key from "Authorization: Bearer <key>" or "api-key: <key>". */
export function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const authorization = headers.authorization;
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match) return match[1];
  }
  const apiKey = headers['api-key'];
  return typeof apiKey === 'string' && apiKey.trim() !== '' ? apiKey.trim() : undefined;
}
