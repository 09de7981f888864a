/**
 * The users file's format (see users.ts), pure: parsing a public-key line and the whole file, checking
 * names and roles, formatting a line, grouping entries into users. Problems are returned, nothing is
 * logged or read from disk.
 */
import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';
import type { ParsedKey } from 'ssh2';
import { usageError } from '../core/errors.js';
import { sanitizeLine, shown } from '../core/text.js';
import { isRole, ROLES, type Role } from './authorize.js';

const { utils } = ssh2;

export const DEFAULT_USERS_FILE = 'config/users.conf';
export const NAME_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
export const KEY_TYPES = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'] as const;
const MIN_RSA_BITS = 2048;
const MAX_COMMENT = 200;

/** One key of a user, as shown to clients (never the whole blob). */
export interface UserKeyInfo {
  type: string;
  /** `SHA256:<base64 of sha256(blob), no padding>`, as OpenSSH prints it. */
  fingerprint: string;
  comment: string;
  /** 1-based line in the users file. */
  line: number;
}

export interface UserInfo {
  name: string;
  role: Role;
  keys: UserKeyInfo[];
}

/** The result of a key lookup at login. */
export interface KeyMatch {
  user: string;
  role: Role;
  fingerprint: string;
  /** The parsed public key: verify the login signature with it. */
  key: ParsedKey;
}

export interface Entry extends ParsedPublicKey {
  /** 0-based index into the file's lines. */
  index: number;
  name: string;
  role: Role;
}

export interface Parsed {
  lines: string[];
  entries: Entry[];
  problems: string[];
}

/** `SHA256:...` of a public key blob, like `ssh-keygen -l`. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The modulus size of an ssh-rsa public key blob (string "ssh-rsa", mpint e, mpint n). */
function rsaBits(blob: Buffer): number {
  let off = 0;
  const next = (): Buffer => {
    const len = blob.readUInt32BE(off);
    const v = blob.subarray(off + 4, off + 4 + len);
    off += 4 + len;
    return v;
  };
  next();
  next();
  const n = next();
  let i = 0;
  while (i < n.length && n[i] === 0) i++;
  if (i === n.length) return 0;
  return (n.length - i) * 8 - Math.clz32(n[i]!) + 24;
}

export interface ParsedPublicKey {
  type: string;
  base64: string;
  blob: Buffer;
  comment: string;
  fingerprint: string;
  key: ParsedKey;
}

/**
 * Parses `KEYTYPE BASE64 [comment]` (a `.pub` line). Throws a usage error naming the problem;
 * `field` names the flag the line came from in messages.
 */
export function parsePublicKeyLine(text: string, field = 'key'): ParsedPublicKey {
  if (/[\r\n\0]/.test(text.trim())) throw usageError(`${field}: must be one line (KEYTYPE BASE64 [comment])`, field);
  const m = /^(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(text.trim());
  if (!m) throw usageError(`${field}: expected "KEYTYPE BASE64 [comment]", e.g. the content of ~/.ssh/id_ed25519.pub`, field);
  const [, type, base64, rawComment] = m as unknown as [string, string, string, string | undefined];
  return parseKeyParts(type, base64, rawComment ?? '', field);
}

function parseKeyParts(type: string, base64: string, rawComment: string, field: string): ParsedPublicKey {
  if (!(KEY_TYPES as readonly string[]).includes(type)) {
    throw usageError(`${field}: unsupported key type ${shown(type, 40)} (use ${KEY_TYPES.join(', ')}; options before the key are not supported)`, field);
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) throw usageError(`${field}: the key data is not base64`, field);
  let key: ParsedKey | Error;
  try {
    key = utils.parseKey(`${type} ${base64}`);
  } catch (e) {
    key = e as Error;
  }
  if (key instanceof Error) throw usageError(`${field}: cannot parse the ${type} key (${sanitizeLine(key.message)})`, field);
  if (key.isPrivateKey()) throw usageError(`${field}: this is a private key; give the public key (.pub)`, field);
  const blob = key.getPublicSSH();
  if (key.type !== type || !blob.equals(Buffer.from(base64, 'base64'))) throw usageError(`${field}: the key data does not match the type ${type}`, field);
  if (type === 'ssh-rsa') {
    const bits = rsaBits(blob);
    if (bits < MIN_RSA_BITS) throw usageError(`${field}: RSA key too small (${bits} bits; at least ${MIN_RSA_BITS})`, field);
  }
  const comment = sanitizeLine(rawComment).trim().slice(0, MAX_COMMENT);
  return { type, base64, blob, comment, fingerprint: fingerprint(blob), key };
}

export function checkName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw usageError(`name: ${shown(name, 40)} is not a valid user name (lowercase letters, digits, "_" and "-", starting with a letter or "_", at most 32)`, 'name');
  }
}

export function checkRole(role: string): asserts role is Role {
  if (!isRole(role)) throw usageError(`role: must be one of ${ROLES.join(', ')} (got ${shown(role, 20)})`, 'role');
}

export function formatLine(name: string, role: Role, k: { type: string; base64: string; comment: string }): string {
  return `${name} ${role} ${k.type} ${k.base64}${k.comment ? ` ${k.comment}` : ''}`;
}

/** Parses the users file's text. Pure: problems are returned, nothing is logged. */
export function parseUsers(text: string, file: string): Parsed {
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const entries: Entry[] = [];
  const problems: string[] = [];
  const roleOf = new Map<string, { role: Role; line: number }>();
  const keyAt = new Map<string, { line: number; name: string }>();
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${file}:${lineNo}`;
    const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(line);
    if (!m) {
      problems.push(`${where}: expected "NAME ROLE KEYTYPE BASE64 [comment]"`);
      return;
    }
    const [, name, role, type, base64, comment] = m as unknown as [string, string, string, string, string, string | undefined];
    if (!NAME_RE.test(name)) {
      problems.push(`${where}: name ${shown(name, 40)} is not valid (lowercase letters, digits, "_" and "-", starting with a letter or "_", at most 32)`);
      return;
    }
    if (!isRole(role)) {
      problems.push(`${where}: role ${shown(role, 20)} is not one of ${ROLES.join(', ')}`);
      return;
    }
    let k: ParsedPublicKey;
    try {
      k = parseKeyParts(type, base64, comment ?? '', 'key');
    } catch (e) {
      problems.push(`${where}: ${(e as Error).message}`);
      return;
    }
    const prev = roleOf.get(name);
    if (prev && prev.role !== role) {
      problems.push(`${where}: ${name} is ${prev.role} on line ${prev.line}; a user has one role (this line is ignored)`);
      return;
    }
    const dup = keyAt.get(k.fingerprint);
    if (dup) {
      problems.push(`${where}: key ${k.fingerprint} is already listed on line ${dup.line} (for ${dup.name}); a key identifies one user`);
      return;
    }
    if (!prev) roleOf.set(name, { role, line: lineNo });
    keyAt.set(k.fingerprint, { line: lineNo, name });
    entries.push({ index, name, role, type, base64, blob: k.blob, comment: k.comment, fingerprint: k.fingerprint, key: k.key });
  });
  return { lines, entries, problems };
}

export function toUsers(entries: readonly Entry[]): UserInfo[] {
  const by = new Map<string, UserInfo>();
  for (const e of entries) {
    let u = by.get(e.name);
    if (!u) by.set(e.name, (u = { name: e.name, role: e.role, keys: [] }));
    u.keys.push({ type: e.type, fingerprint: e.fingerprint, comment: e.comment, line: e.index + 1 });
  }
  return [...by.values()].sort((a, b) => a.name.localeCompare(b.name));
}
