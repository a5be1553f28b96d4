import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * A reproducible tar writer for image layers: ustar headers with PAX extensions for long names
 * and huge files, entries in a fixed order, and every timestamp, owner and mode normalised, so
 * the same files always give the same bytes.
 */

export type TarEntryKind = 'file' | 'directory' | 'symlink';

export interface TarEntry {
  kind: TarEntryKind;
  /** Path inside the archive, relative, '/'-separated, no trailing slash. */
  name: string;
  /** Where a file's bytes come from. */
  sourcePath?: string;
  size: number;
  mode: number;
  linkTarget?: string;
}

export interface TarOwnership {
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
}

const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);
/** Largest size a ustar header's 11 octal digits can hold; bigger files carry a PAX size record. */
const USTAR_MAX_SIZE = 0o77777777777;
const USTAR_MAX_ID = 0o7777777;

function writeString(buf: Buffer, offset: number, length: number, value: string): void {
  buf.write(value, offset, Math.min(length, Buffer.byteLength(value)), 'utf8');
}

function writeOctal(buf: Buffer, offset: number, length: number, value: number): void {
  // length-1 digits, then NUL: the form GNU tar and Go's archive/tar write.
  writeString(buf, offset, length - 1, value.toString(8).padStart(length - 1, '0'));
}

function paxRecord(key: string, value: string): string {
  // The length prefix counts itself, so adding its digits can add one more digit.
  const body = ` ${key}=${value}\n`;
  const base = Buffer.byteLength(body);
  let total = base + String(base).length;
  if (String(total).length !== String(base).length) total = base + String(total).length;
  return `${total}${body}`;
}

/** ustar's name (100 bytes) and prefix (155 bytes), or undefined when the name does not fit. */
function splitUstarName(name: string): { name: string; prefix: string } | undefined {
  if (!/^[\x20-\x7e]*$/.test(name)) return undefined;
  if (name.length <= 100) return { name, prefix: '' };
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (prefix.length <= 155 && rest.length > 0 && rest.length <= 100) return { name: rest, prefix };
  }
  return undefined;
}

function ustarHeader(fields: {
  name: string;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: string;
  linkname: string;
}): Buffer {
  const h = Buffer.alloc(BLOCK);
  writeString(h, 0, 100, fields.name);
  writeOctal(h, 100, 8, fields.mode);
  writeOctal(h, 108, 8, fields.uid);
  writeOctal(h, 116, 8, fields.gid);
  writeOctal(h, 124, 12, fields.size);
  writeOctal(h, 136, 12, fields.mtime);
  h.fill(0x20, 148, 156);
  h.write(fields.type, 156, 1, 'ascii');
  writeString(h, 157, 100, fields.linkname);
  h.write('ustar\u000000', 257, 8, 'binary');
  writeOctal(h, 329, 8, 0);
  writeOctal(h, 337, 8, 0);
  writeString(h, 345, 155, fields.prefix);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i];
  writeString(h, 148, 6, sum.toString(8).padStart(6, '0'));
  h[154] = 0;
  h[155] = 0x20;
  return h;
}

function padding(size: number): Buffer | undefined {
  const rest = size % BLOCK;
  return rest === 0 ? undefined : ZERO_BLOCK.subarray(0, BLOCK - rest);
}

/** The header block(s) of one entry: a PAX 'x' header first when ustar cannot say it all. */
export function entryHeader(entry: TarEntry, owner: TarOwnership): Buffer {
  const fullName = entry.kind === 'directory' ? `${entry.name}/` : entry.name;
  const linkname = entry.linkTarget ?? '';
  const size = entry.kind === 'file' ? entry.size : 0;
  const pax: string[] = [];
  let split = splitUstarName(fullName);
  if (!split) {
    pax.push(paxRecord('path', fullName));
    split = { name: fullName.replace(/[^\x20-\x7e]/g, '_').slice(-100), prefix: '' };
  }
  let ustarLink = linkname;
  if (linkname.length > 100 || !/^[\x20-\x7e]*$/.test(linkname)) {
    pax.push(paxRecord('linkpath', linkname));
    ustarLink = linkname.replace(/[^\x20-\x7e]/g, '_').slice(0, 100);
  }
  let ustarSize = size;
  if (size > USTAR_MAX_SIZE) {
    pax.push(paxRecord('size', String(size)));
    ustarSize = 0;
  }
  const uid = Math.min(owner.uid, USTAR_MAX_ID);
  const gid = Math.min(owner.gid, USTAR_MAX_ID);
  if (owner.uid > USTAR_MAX_ID) pax.push(paxRecord('uid', String(owner.uid)));
  if (owner.gid > USTAR_MAX_ID) pax.push(paxRecord('gid', String(owner.gid)));
  const type = entry.kind === 'directory' ? '5' : entry.kind === 'symlink' ? '2' : '0';
  const main = ustarHeader({
    ...split,
    mode: entry.mode,
    uid,
    gid,
    size: ustarSize,
    mtime: owner.mtime,
    type,
    linkname: ustarLink,
  });
  if (pax.length === 0) return main;
  const paxBody = Buffer.from(pax.join(''), 'utf8');
  // A fixed PAX header name, as Go's archive/tar writes it, keeps the bytes reproducible.
  const paxName = `PaxHeaders.0/${path.posix.basename(entry.name)}`.replace(/[^\x20-\x7e]/g, '_').slice(0, 100);
  const paxHeader = ustarHeader({
    name: paxName,
    prefix: '',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: paxBody.length,
    mtime: owner.mtime,
    type: 'x',
    linkname: '',
  });
  return Buffer.concat([paxHeader, paxBody, padding(paxBody.length) ?? Buffer.alloc(0), main]);
}

/** Files and folders normalised: directories and anything executable 0755, other files 0644. */
export function normalisedMode(kind: TarEntryKind, statMode: number): number {
  if (kind === 'directory') return 0o755;
  if (kind === 'symlink') return 0o777;
  return statMode & 0o111 ? 0o755 : 0o644;
}

/** Byte order, so the order is the same whatever the locale. */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export interface CollectOptions {
  /** File or folder on disk. */
  source: string;
  /** Absolute path inside the image; a file source lands at exactly this path, a folder's contents under it. */
  target: string;
  /** Relative path (from source) and whether it is a folder → leave it out. */
  exclude?: (relativePath: string, isDirectory: boolean) => boolean;
  /** Whether a folder's excluded subtree may still hold re-included paths (.dockerignore `!`). */
  walkExcludedDirectories?: boolean;
}

/**
 * The entries of one layer in archive order: the target's parent folders, then a depth-first
 * walk with names in byte order, so parents always come before what they hold.
 */
export function collectEntries(opts: CollectOptions): TarEntry[] {
  const target = opts.target.replace(/\\/g, '/').replace(/^\/+|\/+$/g, '');
  const entries: TarEntry[] = [];
  const parts = target.split('/').filter(Boolean);
  const stat = fs.lstatSync(opts.source);
  const parentCount = stat.isDirectory() ? parts.length : parts.length - 1;
  for (let i = 1; i <= parentCount; i++)
    entries.push({ kind: 'directory', name: parts.slice(0, i).join('/'), size: 0, mode: 0o755 });
  if (!stat.isDirectory()) {
    entries.push(entryOf(opts.source, target, fs.statSync(opts.source)));
    return entries;
  }
  const walk = (dir: string, relative: string, archiveDir: string, excludedAbove: boolean): void => {
    const names = fs.readdirSync(dir).sort(compareNames);
    for (const name of names) {
      const full = path.join(dir, name);
      const rel = relative ? `${relative}/${name}` : name;
      const archiveName = archiveDir ? `${archiveDir}/${name}` : name;
      const st = fs.lstatSync(full);
      const isDir = st.isDirectory();
      const excluded = opts.exclude?.(rel, isDir) ?? false;
      if (isDir) {
        if (excluded && !opts.walkExcludedDirectories) continue;
        if (!excluded) entries.push({ kind: 'directory', name: archiveName, size: 0, mode: 0o755 });
        walk(full, rel, archiveName, excludedAbove || excluded);
        continue;
      }
      if (excluded) continue;
      if (excludedAbove) addMissingParents(entries, archiveName);
      entries.push(entryOf(full, archiveName, st));
    }
  };
  walk(opts.source, '', target, false);
  return entries;
}

/** A path re-included inside an excluded folder still needs its folders in the archive. */
function addMissingParents(entries: TarEntry[], archiveName: string): void {
  const parts = archiveName.split('/');
  for (let i = 1; i < parts.length; i++) {
    const dir = parts.slice(0, i).join('/');
    if (!entries.some((e) => e.kind === 'directory' && e.name === dir))
      entries.push({ kind: 'directory', name: dir, size: 0, mode: 0o755 });
  }
}

function entryOf(full: string, archiveName: string, st: fs.Stats): TarEntry {
  if (st.isSymbolicLink())
    return { kind: 'symlink', name: archiveName, size: 0, mode: 0o777, linkTarget: fs.readlinkSync(full) };
  if (st.isFile())
    return { kind: 'file', name: archiveName, sourcePath: full, size: st.size, mode: normalisedMode('file', st.mode) };
  throw new Error(`${full} is neither a file, a folder nor a symbolic link; it cannot go into an image layer.`);
}

/** One piece of an archive: bytes in memory (headers, padding) or a byte range of a file. */
type TarSegment = { offset: number; size: number } & ({ bytes: Buffer } | { file: string; fileSize: number });

/**
 * An archive described, not written: every header built, every file's place known, so any byte
 * range of it can be read on demand. An uncompressed layer needs no temp file this way: it is
 * read once to hash it and again, range by range, to upload it (resuming from any offset).
 */
export class TarArchive {
  readonly size: number;
  private readonly segments: TarSegment[] = [];

  constructor(entries: readonly TarEntry[], owner: TarOwnership) {
    let offset = 0;
    const add = (segment: TarSegment) => {
      this.segments.push(segment);
      offset += segment.size;
    };
    for (const entry of entries) {
      const header = entryHeader(entry, owner);
      add({ offset, size: header.length, bytes: header });
      if (entry.kind !== 'file' || entry.size === 0) continue;
      add({ offset, size: entry.size, file: entry.sourcePath!, fileSize: entry.size });
      const pad = padding(entry.size);
      if (pad) add({ offset, size: pad.length, bytes: pad });
    }
    add({ offset, size: BLOCK * 2, bytes: Buffer.alloc(BLOCK * 2) });
    this.size = offset;
  }

  /**
   * Bytes [start, end) of the archive, straight from the files, in chunks of at most `chunkSize`.
   * `onFileBytes` sees each file's own bytes as they pass (to hash the files in the same read).
   */
  async *read(
    start = 0,
    end = this.size,
    chunkSize = 1 << 20,
    onFileBytes?: (file: string, chunk: Buffer) => void,
  ): AsyncGenerator<Buffer> {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid].offset <= start) lo = mid;
      else hi = mid - 1;
    }
    for (let i = lo; i < this.segments.length; i++) {
      const segment = this.segments[i];
      if (segment.offset >= end) return;
      const from = Math.max(start, segment.offset) - segment.offset;
      const to = Math.min(end, segment.offset + segment.size) - segment.offset;
      if (to <= from) continue;
      if ('bytes' in segment) {
        yield segment.bytes.subarray(from, to);
        continue;
      }
      for await (const chunk of readFileRange(segment.file, segment.fileSize, from, to, chunkSize)) {
        onFileBytes?.(segment.file, chunk);
        yield chunk;
      }
    }
  }
}

async function* readFileRange(
  file: string,
  expectedSize: number,
  from: number,
  to: number,
  chunkSize: number,
): AsyncGenerator<Buffer> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size !== expectedSize)
      throw new Error(
        `${file} changed size while the image was baked (${expectedSize} → ${size} bytes). Do not change files while the image is baked.`,
      );
    let position = from;
    while (position < to) {
      const buffer = Buffer.allocUnsafe(Math.min(chunkSize, to - position));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0)
        throw new Error(
          `${file} shrank while it was being read (expected ${expectedSize} bytes). Do not change files while the image is baked.`,
        );
      position += bytesRead;
      yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}
