/**
 * The changes `users` verbs make to the users file, pure: each takes the file as just parsed and
 * returns its new lines and what to tell the caller, or throws (usage, not found, conflict). The store
 * (users.ts) re-reads the file before and writes it atomically after.
 */
import { conflict, notFound } from '../core/errors.js';
import { shown } from '../core/text.js';
import type { Role } from './authorize.js';
import { formatLine, toUsers, type Entry, type Parsed, type ParsedPublicKey, type UserInfo, type UserKeyInfo } from './users-file.js';

/** What an edit gives back: the file's new lines and the result. */
export interface Edit<T> {
  lines: string[];
  result: T;
}

function header(lines: string[]): string[] {
  if (lines.length) return lines;
  return ['# kindler users: NAME ROLE KEYTYPE BASE64 [comment]', '# ROLE is viewer, operator or admin; one key per line; a user may have several keys.'];
}

function userOf(p: Parsed, name: string): Entry[] {
  return p.entries.filter((e) => e.name === name);
}

function owner(p: Parsed, fp: string): Entry | undefined {
  return p.entries.find((e) => e.fingerprint === fp);
}

function adminNames(p: Parsed): Set<string> {
  return new Set(p.entries.filter((e) => e.role === 'admin').map((e) => e.name));
}

/** Adds a user with one key. Errors: conflict (user or key exists). */
export function addUser(p: Parsed, name: string, role: Role, k: ParsedPublicKey): Edit<UserInfo> {
  if (userOf(p, name).length) throw conflict(`user: ${name} already exists (add a key with: users add-key ${name} --key ...)`, 'name');
  const o = owner(p, k.fingerprint);
  if (o) throw conflict(`key: ${k.fingerprint} already belongs to ${o.name}`, 'key');
  const lines = [...header(p.lines), formatLine(name, role, k)];
  return { lines, result: { name, role, keys: [{ type: k.type, fingerprint: k.fingerprint, comment: k.comment, line: lines.length }] } };
}

/** Removes a user and all their keys. Refuses to remove the last admin. */
export function removeUser(p: Parsed, name: string): Edit<UserInfo> {
  const mine = userOf(p, name);
  if (!mine.length) throw notFound(`user: no user named ${shown(name, 40)}`);
  const admins = adminNames(p);
  if (mine[0]!.role === 'admin' && admins.size === 1) throw conflict(`user: ${name} is the last admin; make another user admin first`, 'name');
  const drop = new Set(mine.map((e) => e.index));
  const info = toUsers(mine)[0]!;
  return { lines: p.lines.filter((_, i) => !drop.has(i)), result: info };
}

/** Changes a user's role (every line). Refuses to demote the last admin. */
export function setUserRole(p: Parsed, name: string, role: Role): Edit<UserInfo> {
  const mine = userOf(p, name);
  if (!mine.length) throw notFound(`user: no user named ${shown(name, 40)}`);
  if (mine[0]!.role === 'admin' && role !== 'admin' && adminNames(p).size === 1) {
    throw conflict(`role: ${name} is the last admin; make another user admin first`, 'role');
  }
  const lines = [...p.lines];
  for (const e of mine) lines[e.index] = formatLine(name, role, e);
  const info = toUsers(mine.map((e) => ({ ...e, role })))[0]!;
  return { lines, result: info };
}

/** Adds another key to an existing user (the line goes after the user's last line). */
export function addUserKey(p: Parsed, name: string, k: ParsedPublicKey): Edit<UserKeyInfo> {
  const mine = userOf(p, name);
  if (!mine.length) throw notFound(`user: no user named ${shown(name, 40)} (create it with: users add ${name} ROLE --key ...)`);
  const o = owner(p, k.fingerprint);
  if (o) throw conflict(`key: ${k.fingerprint} already belongs to ${o.name}`, 'key');
  const at = mine[mine.length - 1]!.index + 1;
  const lines = [...p.lines];
  lines.splice(at, 0, formatLine(name, mine[0]!.role, k));
  return { lines, result: { type: k.type, fingerprint: k.fingerprint, comment: k.comment, line: at + 1 } };
}

/** Removes the key `fp` of a user. Refuses to remove a user's last key. */
export function removeUserKey(p: Parsed, name: string, fp: string): Edit<UserKeyInfo> {
  const mine = userOf(p, name);
  if (!mine.length) throw notFound(`user: no user named ${shown(name, 40)}`);
  const e = mine.find((x) => x.fingerprint === fp);
  if (!e) throw notFound(`key: ${name} has no key ${fp}`);
  if (mine.length === 1) throw conflict(`key: ${fp} is ${name}'s only key; remove the user instead (users remove ${name})`, 'key');
  return { lines: p.lines.filter((_, i) => i !== e.index), result: { type: e.type, fingerprint: e.fingerprint, comment: e.comment, line: e.index + 1 } };
}
