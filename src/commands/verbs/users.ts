/** The `users` verb. */
import { EXIT, usageError } from '../../core/errors.js';
import { print } from '../follow.js';
import { table } from '../format.js';
import { type Verb, apiOf } from './common.js';

/** Public key types a key line can start with. */
const KEY_TYPE = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)$/;

/**
 * `users add bob --role operator --key ssh-ed25519 AAAA… bob@laptop` over SSH: ssh joins its
 * arguments with spaces, so the key line arrives as several words. When `--key` is followed by a key
 * type and a base64 blob, those two are one key line; the words after them (up to the next flag)
 * are its comment when the action and the name were given before `--key` (users add|add-key NAME),
 * since then no argument is still expected. Anything else is left for the parser to judge.
 */
function joinKeyWords(argv: readonly string[]): string[] {
  const i = argv.indexOf('--key');
  if (i < 0 || argv.indexOf('--') >= 0) return [...argv];
  const type = argv[i + 1];
  const blob = argv[i + 2];
  if (type === undefined || blob === undefined || !KEY_TYPE.test(type) || !/^AAAA[A-Za-z0-9+/]+=*$/.test(blob)) return [...argv];
  const before = argv.slice(0, i).filter((a, j, all) => !a.startsWith('-') && !(j > 0 && all[j - 1] === '--role'));
  let end = i + 3;
  if (before.length >= 2 && ['add', 'add-key'].includes(before[0]!)) while (end < argv.length && !argv[end]!.startsWith('-')) end++;
  return [...argv.slice(0, i), '--key', argv.slice(i + 1, end).join(' '), ...argv.slice(end)];
}

export const users: Verb = {
  name: 'users',
  summary: 'Manage users (admin): list | add NAME --role R --key KEY | remove NAME | set-role NAME ROLE | add-key NAME --key KEY | remove-key NAME FINGERPRINT',
  args: [
    { name: 'action', required: true, help: 'list, add, remove, set-role, add-key or remove-key' },
    { name: 'name', required: false, help: 'user name' },
    { name: 'value', required: false, help: 'the role (set-role) or key fingerprint (remove-key)' },
  ],
  flags: {
    role: { type: 'string', value: 'viewer|operator|admin', help: 'role of a new user (add)' },
    key: { type: 'string', value: '"ssh-ed25519 AAAA… comment"', help: 'a public key line (add, add-key); - reads it from standard input' },
  },
  prepare: joinKeyWords,
  async run(p, ctx, json) {
    const action = p.args.action!;
    const key = p.flags.key as string | undefined;
    // `--key -`: the key line comes on standard input (ssh HOST users add bob ... --key - < bob.pub).
    const readKey = async (): Promise<string> => {
      if (!ctx.io.readStdin) throw usageError('--key: - (standard input) is not available here; give the key line itself', 'key');
      const text = await ctx.io.readStdin();
      const lines = text
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'));
      if (lines.length !== 1) throw usageError(`--key: standard input must hold exactly one public key line (got ${lines.length})`, 'key');
      return lines[0]!;
    };
    const r = await apiOf(ctx).users(ctx.actor, {
      action,
      ...(p.args.name !== undefined ? { name: p.args.name } : {}),
      ...(p.args.value !== undefined ? { value: p.args.value } : {}),
      ...(typeof p.flags.role === 'string' ? { role: p.flags.role } : {}),
      ...(key !== undefined ? { key: key === '-' ? readKey : key } : {}),
    });
    if ('users' in r) {
      const list = r.users;
      print(ctx, json, { users: list }, () =>
        list.length
          ? table(
              ['USER', 'ROLE', 'KEYS'],
              list.map((u) => [u.name, u.role, u.keys.map((k) => `${k.fingerprint}${k.comment ? ` (${k.comment})` : ''}`).join(', ')]),
            )
          : 'no users\n',
      );
      return EXIT.ok;
    }
    print(ctx, json, { result: r.result }, () => `users ${action} ${p.args.name ?? ''}: done\n`);
    return EXIT.ok;
  },
};
