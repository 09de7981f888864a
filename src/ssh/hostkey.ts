/**
 * The SSH host key: an ed25519 private key in OpenSSH format, created once with mode 0600 and
 * never replaced. A key that exists but cannot be read or parsed is a startup error naming the
 * file: silently making a new one would change the host's identity under every client.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import ssh2 from 'ssh2';
import type { ParsedKey } from 'ssh2';
import { fingerprint } from '../access/users.js';
import { writeFileAtomicSync } from '../os/atomic.js';

const { utils } = ssh2;

export const DEFAULT_HOST_KEY_FILE = 'keys/ssh_host_ed25519_key';

export interface HostKey {
  path: string;
  /** The private key, for ssh2's `hostKeys`. */
  key: ParsedKey;
  /** `SHA256:...` of the public key (what clients show on first connect). */
  fingerprint: string;
  /** The `ssh-ed25519 AAAA...` public line (for known_hosts). */
  publicLine: string;
  /** Whether this start created the key. */
  created: boolean;
}

export class HostKeyError extends Error {}

/**
 * A new ed25519 key pair that ssh2 can read back. ssh2 1.17's own generator makes a private key
 * its parser rejects ("Malformed OpenSSH private key") about once in 180 tries (measured: 17 of
 * 3,000), which would leave a freshly created host key unusable; such a key is thrown away.
 */
function generateParsableKey(): { private: string; public: string } {
  for (let i = 0; i < 20; i++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment: 'kindler host key' });
    if (!(utils.parseKey(pair.private) instanceof Error)) return pair;
  }
  throw new HostKeyError('could not generate a usable ed25519 host key (20 tries)');
}

/** Loads the host key at `path`, creating it (mode 0600, dir 0700) if there is no file at all. */
export function loadOrCreateHostKey(path: string = DEFAULT_HOST_KEY_FILE): HostKey {
  let created = false;
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const pair = generateParsableKey();
    let fd: number;
    try {
      // 'wx': never overwrite a key that appeared in the meantime.
      fd = openSync(path, 'wx', 0o600);
    } catch (e) {
      throw new HostKeyError(`host key ${path}: cannot create (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      writeSync(fd, pair.private);
    } finally {
      closeSync(fd);
    }
    try {
      // Atomic, through a fresh O_EXCL temp file: a symlink planted at the .pub name is replaced, never followed.
      writeFileAtomicSync(`${path}.pub`, `${pair.public.trim()}\n`, 0o644);
    } catch {
      /* the .pub copy is a convenience */
    }
    created = true;
  }
  let text: Buffer;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new HostKeyError(`host key ${path}: not a regular file`);
    if (st.mode & 0o077)
      throw new HostKeyError(`host key ${path}: readable or writable by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${path}`);
    text = readFileSync(path);
  } catch (e) {
    if (e instanceof HostKeyError) throw e;
    throw new HostKeyError(`host key ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); fix or remove the file`);
  }
  let key: ParsedKey | Error;
  try {
    key = utils.parseKey(text);
  } catch (e) {
    key = e as Error;
  }
  if (key instanceof Error)
    throw new HostKeyError(`host key ${path}: not a usable private key (${key.message}); fix or remove the file (a new key changes the host's identity)`);
  if (!key.isPrivateKey()) throw new HostKeyError(`host key ${path}: holds a public key, not a private key`);
  const blob = key.getPublicSSH();
  return {
    path,
    key,
    fingerprint: fingerprint(blob),
    publicLine: `${key.type} ${blob.toString('base64')}`,
    created,
  };
}
