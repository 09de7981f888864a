/**
 * Who is at the other end of a control-socket connection, from the kernel (SO_PEERCRED), never from
 * what the client says. Node has no API for SO_PEERCRED: a small N-API addon (native/peercred.c,
 * built by `npm ci` / `npm run build:native` into dist/peercred.node) asks for it. Without the addon
 * the daemon refuses to start: it never falls back to trusting the client.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCaptured } from '../os/run.js';

/** The peer process as the kernel recorded it when it connected. */
export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** Where the addon is: dist/peercred.node of this checkout (the same from src/ under tsx and from dist/). */
export const ADDON_PATH = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'dist', 'peercred.node');

let addon: { peerCred(fd: number): PeerCred } | null = null;

/** Loads the addon, or throws one line saying what is missing and how to build it. */
export function loadPeerCred(): void {
  if (addon) return;
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as { peerCred(fd: number): PeerCred };
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' ? 'it is missing' : (e as Error).message.split('\n')[0];
    throw new Error(
      `control socket: cannot identify local callers without ${ADDON_PATH} (${why}); build it with "npm run build:native" (needs g++, make, python3 and the node headers)`,
    );
  }
}

/** The kernel's credentials of the process that connected `sock`. Throws when they cannot be read. */
export function peerCredOf(sock: Socket): PeerCred {
  loadPeerCred();
  // A connected unix socket's handle carries its file descriptor (Pipe#fd; -1 once closed).
  const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the connection has no file descriptor');
  return addon!.peerCred(fd);
}

/** Login names kindler records as they are; anything else is recorded as `uid:N`. */
const NAME_RE = /^[a-z_][a-z0-9_.-]{0,31}$/i;

/** The login name of `uid` in `passwd` text (the /etc/passwd format), or undefined. */
export function nameInPasswd(text: string, uid: number): string | undefined {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 7 && f[2] === String(uid) && f[0]) return f[0];
  }
  return undefined;
}

/** Asks NSS (LDAP, sssd, …) through getent; undefined when it has no answer within 3 s. */
async function getentName(uid: number): Promise<string | undefined> {
  const r = await runCaptured('getent', ['passwd', String(uid)], { timeoutMs: 3000, maxOutput: 64 * 1024 });
  return r.ok ? nameInPasswd(r.stdout, uid) : undefined;
}

/**
 * The name a local caller is recorded under: its login name (/etc/passwd, then getent), or `uid:N`
 * when it has none (a colon cannot start a users-file name, so `uid:N` is never mistaken for an SSH user).
 */
export async function localName(uid: number): Promise<string> {
  let name: string | undefined;
  try {
    name = nameInPasswd(readFileSync('/etc/passwd', 'utf8'), uid);
  } catch {
    /* unreadable: ask NSS */
  }
  name ??= await getentName(uid);
  return name && NAME_RE.test(name) ? name : `uid:${uid}`;
}
