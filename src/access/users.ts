/**
 * Who may log in over SSH, and with which role: the users file (default `config/users.conf`).
 *
 *   # comment
 *   NAME ROLE KEYTYPE BASE64 [comment]
 *
 * One public key per line; a user may have several lines, all with the same role. NAME matches
 * `^[a-z_][a-z0-9_-]{0,31}$`, ROLE is viewer|operator|admin, the key is ed25519, ecdsa or rsa
 * (>= 2048 bits). A malformed line is reported (`file:line: reason`) and skipped; it never locks
 * out the other users. Identity comes from the key alone: nothing ever accepts a key that is not
 * in this file.
 *
 * Every change made through `UsersStore` re-reads the file first (so hand edits are not lost),
 * keeps comments and unknown lines as they are, and replaces the file atomically (mode 0640).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import ssh2 from 'ssh2';
import type { ParsedKey } from 'ssh2';
import { conflict, failed, notFound, usageError } from '../core/errors.js';
import { sanitizeLine, shown } from '../core/text.js';
import { errnoText, writeFileAtomicSync } from '../os/atomic.js';
import { isRole, ROLES, type Role } from './authorize.js';

const { utils } = ssh2;

export const DEFAULT_USERS_FILE = 'config/users.conf';
export const NAME_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
export const KEY_TYPES = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'] as const;
const MIN_RSA_BITS = 2048;
const MAX_COMMENT = 200;

type LogFn = (level: 'info' | 'warn' | 'error', msg: string) => void;

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

interface Entry extends ParsedPublicKey {
  /** 0-based index into the file's lines. */
  index: number;
  name: string;
  role: Role;
}

interface Parsed {
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

function checkName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw usageError(`name: ${shown(name, 40)} is not a valid user name (lowercase letters, digits, "_" and "-", starting with a letter or "_", at most 32)`, 'name');
  }
}

function checkRole(role: string): asserts role is Role {
  if (!isRole(role)) throw usageError(`role: must be one of ${ROLES.join(', ')} (got ${shown(role, 20)})`, 'role');
}

function formatLine(name: string, role: Role, k: { type: string; base64: string; comment: string }): string {
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

function toUsers(entries: readonly Entry[]): UserInfo[] {
  const by = new Map<string, UserInfo>();
  for (const e of entries) {
    let u = by.get(e.name);
    if (!u) by.set(e.name, (u = { name: e.name, role: e.role, keys: [] }));
    u.keys.push({ type: e.type, fingerprint: e.fingerprint, comment: e.comment, line: e.index + 1 });
  }
  return [...by.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export interface UsersStoreOptions {
  /** The users file (default config/users.conf). */
  file?: string;
  /** Reload and watcher messages (problems are logged as warnings). */
  log?: LogFn;
  /** Quiet period after a change in the directory before the file is re-read. */
  debounceMs?: number;
}

/**
 * The users file in memory. Events: 'change' (after any load that changed the users, and after
 * every successful mutation).
 */
export class UsersStore extends EventEmitter {
  readonly file: string;
  private readonly log: LogFn;
  private readonly debounceMs: number;
  private entries: Entry[] = [];
  private lastProblems: string[] = [];
  private lastText: string | null = null;
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;

  constructor(opts: UsersStoreOptions = {}) {
    super();
    this.file = opts.file ?? DEFAULT_USERS_FILE;
    this.log = opts.log ?? (() => undefined);
    this.debounceMs = opts.debounceMs ?? 250;
  }

  // ---- loading -------------------------------------------------------------------------------

  private read(): string | null {
    try {
      return readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  /**
   * (Re)reads the file. Returns the problems (`file:line: reason`) for the caller to log. A missing
   * file means no users. A file that cannot be read keeps the users loaded before (and is a problem).
   */
  load(): string[] {
    let text: string | null;
    try {
      text = this.read();
    } catch (e) {
      this.lastProblems = [`${this.file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); keeping the users loaded before`];
      return this.lastProblems;
    }
    const changed = text !== this.lastText;
    this.apply(text);
    if (changed) this.emit('change');
    return this.lastProblems;
  }

  private apply(text: string | null): void {
    this.lastText = text;
    const parsed = parseUsers(text ?? '', this.file);
    this.entries = parsed.entries;
    const problems = [...parsed.problems];
    if (text === null) problems.unshift(`${this.file}: no users file; nobody can log in over SSH`);
    else {
      try {
        if (statSync(this.file).mode & 0o022) problems.unshift(`${this.file}: writable by group or others; only its owner should be able to change who may log in`);
      } catch { /* raced with a rename: the next load reports it */ }
    }
    this.lastProblems = problems;
  }

  /** The problems found by the last load. */
  problems(): string[] {
    return [...this.lastProblems];
  }

  /** Reloads and logs the outcome (for SIGHUP and the watcher). Returns the problems. */
  reload(reason = 'reload requested'): string[] {
    const before = this.lastText;
    const problems = this.load();
    if (this.lastText === before && reason !== 'SIGHUP') return problems;
    const users = this.list();
    this.log('info', `users file reloaded (${reason}): ${users.length} users, ${this.entries.length} keys${problems.length ? `, ${problems.length} problems` : ''}`);
    for (const p of problems) this.log('warn', `users file: ${p}`);
    return problems;
  }

  /** Reloads when the file changes (watches its directory, so atomic replacements are seen). */
  watch(): void {
    if (this.watcher) return;
    const dir = dirname(this.file);
    const name = basename(this.file);
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, f) => {
        if (f !== null && f !== name) return;
        clearTimeout(this.timer);
        this.timer = setTimeout(() => {
          try {
            this.reload('file changed');
          } catch (e) {
            this.log('error', `users file: reload failed: ${(e as Error).message}`);
          }
        }, this.debounceMs);
        this.timer.unref();
      });
      this.watcher.on('error', (e) => this.log('warn', `users file: watching ${dir} failed (${e.message}); reload with SIGHUP`));
    } catch (e) {
      this.log('warn', `users file: cannot watch ${dir} (${(e as Error).message}); reload with SIGHUP`);
    }
  }

  /** Stops watching. */
  close(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
  }

  // ---- reading -------------------------------------------------------------------------------

  list(): UserInfo[] {
    return toUsers(this.entries);
  }

  get(name: string): UserInfo | undefined {
    return this.list().find((u) => u.name === name);
  }

  /**
   * The user a public key (algorithm + SSH wire blob) belongs to. Compares every listed key in
   * constant time. The caller must still verify the login signature with `match.key`.
   */
  findByKey(algo: string, blob: Buffer): KeyMatch | undefined {
    let found: Entry | undefined;
    for (const e of this.entries) {
      const same = e.blob.length === blob.length && timingSafeEqual(e.blob, blob);
      if (same && !found) found = e;
    }
    if (!found || found.type !== algo) return undefined;
    return { user: found.name, role: found.role, fingerprint: found.fingerprint, key: found.key };
  }

  /** The current user and role for a key fingerprint (sessions re-check after a reload). */
  byFingerprint(fp: string): { user: string; role: Role } | undefined {
    const e = this.entries.find((x) => x.fingerprint === fp);
    return e ? { user: e.name, role: e.role } : undefined;
  }

  // ---- changing ------------------------------------------------------------------------------

  /** Re-reads the file, applies `edit` to its lines, writes it atomically and reloads. */
  private mutate<T>(edit: (p: Parsed) => { lines: string[]; result: T }): T {
    let text: string | null;
    try {
      text = this.read();
    } catch (e) {
      throw usageError(`users file: cannot read ${this.file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const parsed = parseUsers(text ?? '', this.file);
    const { lines, result } = edit(parsed);
    const out = `${lines.join('\n')}\n`;
    try {
      this.writeAtomic(out);
    } catch (e) {
      // A full disk or a read-only file is the verb's error, said as such (not an "internal error").
      throw failed(`users file: cannot write ${this.file} (${errnoText(e)}); nothing was changed`);
    }
    this.apply(out);
    this.emit('change');
    return result;
  }

  private writeAtomic(content: string): void {
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o750 });
    writeFileAtomicSync(this.file, content, 0o640);
  }

  private static header(lines: string[]): string[] {
    if (lines.length) return lines;
    return ['# kindler users: NAME ROLE KEYTYPE BASE64 [comment]', '# ROLE is viewer, operator or admin; one key per line; a user may have several keys.'];
  }

  private static userOf(p: Parsed, name: string): Entry[] {
    return p.entries.filter((e) => e.name === name);
  }

  private static owner(p: Parsed, fp: string): Entry | undefined {
    return p.entries.find((e) => e.fingerprint === fp);
  }

  private static admins(p: Parsed): Set<string> {
    return new Set(p.entries.filter((e) => e.role === 'admin').map((e) => e.name));
  }

  /** Adds a user with one key. Errors: usage (bad name/role/key), conflict (user or key exists). */
  add(name: string, role: string, keyLine: string): UserInfo {
    checkName(name);
    checkRole(role);
    const k = parsePublicKeyLine(keyLine);
    return this.mutate((p) => {
      if (UsersStore.userOf(p, name).length) throw conflict(`user: ${name} already exists (add a key with: users add-key ${name} --key ...)`, 'name');
      const o = UsersStore.owner(p, k.fingerprint);
      if (o) throw conflict(`key: ${k.fingerprint} already belongs to ${o.name}`, 'key');
      const lines = [...UsersStore.header(p.lines), formatLine(name, role, k)];
      return { lines, result: { name, role, keys: [{ type: k.type, fingerprint: k.fingerprint, comment: k.comment, line: lines.length }] } };
    });
  }

  /** Removes a user and all their keys. Refuses to remove the last admin. */
  remove(name: string): UserInfo {
    checkName(name);
    return this.mutate((p) => {
      const mine = UsersStore.userOf(p, name);
      if (!mine.length) throw notFound(`user: no user named ${shown(name, 40)}`);
      const admins = UsersStore.admins(p);
      if (mine[0]!.role === 'admin' && admins.size === 1) throw conflict(`user: ${name} is the last admin; make another user admin first`, 'name');
      const drop = new Set(mine.map((e) => e.index));
      const info = toUsers(mine)[0]!;
      return { lines: p.lines.filter((_, i) => !drop.has(i)), result: info };
    });
  }

  /** Changes a user's role (every line). Refuses to demote the last admin. */
  setRole(name: string, role: string): UserInfo {
    checkName(name);
    checkRole(role);
    return this.mutate((p) => {
      const mine = UsersStore.userOf(p, name);
      if (!mine.length) throw notFound(`user: no user named ${shown(name, 40)}`);
      if (mine[0]!.role === 'admin' && role !== 'admin' && UsersStore.admins(p).size === 1) {
        throw conflict(`role: ${name} is the last admin; make another user admin first`, 'role');
      }
      const lines = [...p.lines];
      for (const e of mine) lines[e.index] = formatLine(name, role, e);
      const info = toUsers(mine.map((e) => ({ ...e, role })))[0]!;
      return { lines, result: info };
    });
  }

  /** Adds another key to an existing user (the line goes after the user's last line). */
  addKey(name: string, keyLine: string): UserKeyInfo {
    checkName(name);
    const k = parsePublicKeyLine(keyLine);
    return this.mutate((p) => {
      const mine = UsersStore.userOf(p, name);
      if (!mine.length) throw notFound(`user: no user named ${shown(name, 40)} (create it with: users add ${name} ROLE --key ...)`);
      const o = UsersStore.owner(p, k.fingerprint);
      if (o) throw conflict(`key: ${k.fingerprint} already belongs to ${o.name}`, 'key');
      const at = mine[mine.length - 1]!.index + 1;
      const lines = [...p.lines];
      lines.splice(at, 0, formatLine(name, mine[0]!.role, k));
      return { lines, result: { type: k.type, fingerprint: k.fingerprint, comment: k.comment, line: at + 1 } };
    });
  }

  /**
   * Removes one key of a user, named by fingerprint (`SHA256:...`, the prefix optional) or by the
   * key itself (`KEYTYPE BASE64 [comment]`). Refuses to remove a user's last key.
   */
  removeKey(name: string, ref: string): UserKeyInfo {
    checkName(name);
    const r = ref.trim();
    let fp: string;
    if (/^\S+\s+\S+/.test(r)) fp = parsePublicKeyLine(r).fingerprint;
    else if (/^(SHA256:)?[A-Za-z0-9+/]{43}$/.test(r)) fp = r.startsWith('SHA256:') ? r : `SHA256:${r}`;
    else throw usageError(`key: give a fingerprint (SHA256:...) or the public key line (got ${shown(r, 40)})`, 'key');
    return this.mutate((p) => {
      const mine = UsersStore.userOf(p, name);
      if (!mine.length) throw notFound(`user: no user named ${shown(name, 40)}`);
      const e = mine.find((x) => x.fingerprint === fp);
      if (!e) throw notFound(`key: ${name} has no key ${fp}`);
      if (mine.length === 1) throw conflict(`key: ${fp} is ${name}'s only key; remove the user instead (users remove ${name})`, 'key');
      return { lines: p.lines.filter((_, i) => i !== e.index), result: { type: e.type, fingerprint: e.fingerprint, comment: e.comment, line: e.index + 1 } };
    });
  }

  /**
   * First run: when no admin exists, adds the keys in `keysText` (one public-key line per line,
   * e.g. from KINDLER_INITIAL_ADMIN_KEYS) as admins: user `admin`, or the key's comment when it
   * is a valid user name. Returns what was added and the lines that were skipped.
   */
  bootstrap(keysText: string | undefined): { added: { user: string; fingerprint: string }[]; problems: string[]; skipped?: string } {
    const added: { user: string; fingerprint: string }[] = [];
    const problems: string[] = [];
    if (!keysText || !keysText.trim()) return { added, problems };
    if (this.entries.some((e) => e.role === 'admin')) return { added, problems, skipped: 'an admin already exists' };
    keysText.split(/\r?\n|\\n/).forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith('#')) return;
      const where = `KINDLER_INITIAL_ADMIN_KEYS line ${i + 1}`;
      try {
        const k = parsePublicKeyLine(line);
        const existing = this.entries.find((e) => e.fingerprint === k.fingerprint);
        if (existing) {
          problems.push(`${where}: key ${k.fingerprint} is already listed for ${existing.name} (${existing.role}); not changed`);
          return;
        }
        const fromComment = NAME_RE.test(k.comment) ? k.comment : undefined;
        const usable = (n: string) => {
          const u = this.get(n);
          return !u || u.role === 'admin';
        };
        const name = fromComment && usable(fromComment) ? fromComment : 'admin';
        if (!usable(name)) {
          problems.push(`${where}: user ${name} exists and is not an admin; key ${k.fingerprint} not added`);
          return;
        }
        if (this.get(name)) this.addKey(name, line);
        else this.add(name, 'admin', line);
        added.push({ user: name, fingerprint: k.fingerprint });
      } catch (e) {
        problems.push(`${where}: ${(e as Error).message}`);
      }
    });
    return { added, problems };
  }
}
