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
 *
 * This module is the store (loading, reloading, lookups, writing); the format is parsed in
 * users-file.ts, the `users` verbs' edits are in users-edit.ts, and watching is in users-watch.ts.
 */
import { timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { failed, usageError } from '../core/errors.js';
import { shown } from '../core/text.js';
import { errnoText, writeFileAtomicSync } from '../os/atomic.js';
import type { Role } from './authorize.js';
import { addUser, addUserKey, removeUser, removeUserKey, setUserRole } from './users-edit.js';
import { checkName, checkRole, DEFAULT_USERS_FILE, NAME_RE, parsePublicKeyLine, parseUsers, toUsers, type Entry, type KeyMatch, type Parsed, type UserInfo, type UserKeyInfo } from './users-file.js';
import { watchUsersFile } from './users-watch.js';

export { DEFAULT_USERS_FILE, fingerprint, KEY_TYPES, NAME_RE, parsePublicKeyLine, parseUsers, type KeyMatch, type ParsedPublicKey, type UserInfo, type UserKeyInfo } from './users-file.js';

type LogFn = (level: 'info' | 'warn' | 'error', msg: string) => void;

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
  private watching?: { close(): void };

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
    if (this.watching) return;
    this.watching = watchUsersFile(this.file, this.debounceMs, this.log, () => this.reload('file changed'));
  }

  /** Stops watching. */
  close(): void {
    this.watching?.close();
    this.watching = undefined;
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

  /** Adds a user with one key. Errors: usage (bad name/role/key), conflict (user or key exists). */
  add(name: string, role: string, keyLine: string): UserInfo {
    checkName(name);
    checkRole(role);
    const k = parsePublicKeyLine(keyLine);
    return this.mutate((p) => addUser(p, name, role, k));
  }

  /** Removes a user and all their keys. Refuses to remove the last admin. */
  remove(name: string): UserInfo {
    checkName(name);
    return this.mutate((p) => removeUser(p, name));
  }

  /** Changes a user's role (every line). Refuses to demote the last admin. */
  setRole(name: string, role: string): UserInfo {
    checkName(name);
    checkRole(role);
    return this.mutate((p) => setUserRole(p, name, role));
  }

  /** Adds another key to an existing user (the line goes after the user's last line). */
  addKey(name: string, keyLine: string): UserKeyInfo {
    checkName(name);
    const k = parsePublicKeyLine(keyLine);
    return this.mutate((p) => addUserKey(p, name, k));
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
    return this.mutate((p) => removeUserKey(p, name, fp));
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
