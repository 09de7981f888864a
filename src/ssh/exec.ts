/**
 * Stage: an exec request runs one verb through the Service, as every face does: the command line
 * split like a shell would, standard input (bounded) for a verb that reads it, output to the channel
 * (waiting for the client's window, not memory), Ctrl-C with a pty stopping the verb (or cancelling
 * its task with --cancel-on-interrupt), and the verb's exit code as the channel's.
 */
import { wantsFlag, type Context, type IO } from '../commands/index.js';
import { whenDrained } from '../commands/io.js';
import { KindlerError, usageError } from '../core/errors.js';
import { sanitizeLine, shown } from '../core/text.js';
import { splitCommand } from './argv.js';
import type { Sess, SshCore } from './core.js';
import type { Sessions } from './session.js';

/** Standard input a verb may read over SSH (a public key line). */
const MAX_STDIN = 64 * 1024;

export function createExec(core: SshCore, sessions: Sessions) {
  const { opts, service, users, log, who } = core;
  const { write, finish, principalOf, refuseGone } = sessions;
  const runExec = async (s: Sess, command: string) => {
    const ch = s.channel!;
    const principal = principalOf(s);
    if (!principal) return refuseGone(s);
    // Standard input, for a verb that reads it (`users add … --key - < key.pub`): kept until its end, bounded.
    let stdin = '';
    let stdinEnded = false;
    const stdinWaiters: (() => void)[] = [];
    const endStdin = () => {
      stdinEnded = true;
      for (const f of stdinWaiters.splice(0)) f();
    };
    ch.on('end', endStdin);
    ch.on('close', endStdin);
    // The task a --wait verb follows: Ctrl-C names it (it goes on), or cancels it (--cancel-on-interrupt).
    let taskId: string | null = null;
    let cancelling: Promise<unknown> | null = null;
    ch.on('data', (d: Buffer) => {
      if (!s.pty && stdin.length <= MAX_STDIN) stdin += d.toString('utf8');
      // With a pty, Ctrl-C arrives as a byte: stop the verb (e.g. logs --follow).
      if (s.pty && d.includes(3) && !s.finished && !cancelling) {
        s.abort.abort();
        if (taskId && wantsFlag(argv ?? [], 'cancel-on-interrupt')) {
          const id = taskId;
          write(s, `^C\ninterrupted — cancelling ${id} (its cleanup runs)\n`, true);
          const gone = new AbortController();
          ch.once('close', () => gone.abort());
          cancelling = service.run(['cancel', id, '--wait'], { ...ctx, io: { ...ctx.io, signal: gone.signal, onTask: () => undefined } })
            .catch(() => undefined)
            .then(() => finish(s, 130));
          return;
        }
        write(s, `^C\n${taskId ? `detached — ${taskId} continues; ssh HOST logs ${taskId} --follow\n` : ''}`, true);
        finish(s, 130);
      }
    });
    let argv: string[] | undefined;
    try {
      argv = splitCommand(command);
    } catch (e) {
      const err = e instanceof KindlerError ? e : new KindlerError('usage', String(e));
      log('info', `ssh: ${who(s.conn)}: exec refused: ${err.message}`);
      write(s, `error: ${sanitizeLine(err.message)}\n`, true);
      return finish(s, err.exitCode);
    }
    log('info', `ssh: ${who(s.conn)} (${principal.role}): exec ${shown(argv[0] ?? '(help)', 40)}${argv.length > 1 ? ` +${argv.length - 1} args` : ''}`);
    // `users` rides along for the users/whoami verbs (Context may declare `users?: UsersStore`).
    const ctx: Omit<Context, 'engine'> = {
      users,
      ssh: { host: opts.host, port: core.port },
      actor: principal,
      io: {
        out: (t: string) => write(s, t),
        err: (t: string) => write(s, t, true),
        // The channel holds what the client's window does not take yet: wait for it, not memory.
        writable: () => (s.channel && !s.chClosed && !s.finished ? whenDrained(s.channel) : Promise.resolve()),
        isTTY: Boolean(s.pty),
        columns: s.pty?.cols ?? 80,
        signal: s.abort.signal,
        readFile: (): Promise<string> => Promise.reject(Object.assign(new Error('files cannot be read over SSH; run the verb on the host'), { code: 'EACCES' })),
        onTask: (id: string) => void (taskId = id),
        readStdin: async (): Promise<string> => {
          if (s.pty) throw usageError('--key: - reads standard input, which is the terminal here; run ssh without -t and redirect it: ssh HOST … --key - < key.pub', 'key');
          if (!stdinEnded) await new Promise<void>((r) => stdinWaiters.push(r));
          if (stdin.length > MAX_STDIN) throw usageError(`--key: standard input is longer than ${MAX_STDIN} bytes`, 'key');
          return stdin;
        },
      } satisfies IO,
    };
    const code = await service.run(argv, ctx);
    if (cancelling) return;
    finish(s, code);
  };

  return { runExec };
}
