/**
 * GitOps working-tree files (see gitops.ts): listing a template, and writing or removing files in the
 * kindler-owned clone without ever going through a symlink a checked-out branch may hold.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { failed } from '../core/errors.js';

/** Every file under dir (relative, `/`-separated, sorted); symlinks are returned so they can be refused. */
export function walk(dir: string, prefix: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walk(dir, rel));
    else out.push(rel);
  }
  return out;
}

/** Refuses to go through a symlink on the way to rel (a checked-out symlink must not redirect writes). */
export function checkNoSymlink(root: string, rel: string): void {
  let p = root;
  for (const part of rel.split('/')) {
    p = join(p, part);
    if (!existsSync(p) && !isDanglingLink(p)) return;
    if (lstatSync(p).isSymbolicLink()) throw failed(`gitops: refusing to write through the symlink ${rel} in the clone`);
  }
}

function isDanglingLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

export function safeRemove(root: string, rel: string): void {
  const parent = rel.split('/').slice(0, -1).join('/');
  if (parent) checkNoSymlink(root, parent);
  rmSync(join(root, rel), { recursive: true, force: true });
}

export function safeWrite(root: string, rel: string, data: Buffer, executable: boolean): void {
  checkNoSymlink(root, rel);
  const target = join(root, rel);
  mkdirSync(dirname(target), { recursive: true });
  if (existsSync(target) && lstatSync(target).isDirectory()) throw failed(`gitops: ${rel} is a directory in the clone`);
  writeFileSync(target, data);
  chmodSync(target, executable ? 0o755 : 0o644);
}
