#!/usr/bin/env node
/**
 * `kindler`: the local CLI. With a daemon running it sends the verb over the control socket;
 * without one it runs the engine in-process under the same single-writer lock.
 */
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { UsersStore } from './access/users.js';
import { helpRequest, runCommand, VERB_SPECS, wantsFlag } from './commands/index.js';
import { complete } from './commands/completion.js';
import { GONE_EXIT, watchBrokenPipe, whenDrained } from './commands/io.js';
import { tryConnect, runRemote } from './control/client.js';
import { socketPath } from './control/server.js';
import { runDaemon } from './daemon.js';
import { Engine } from './engine/engine.js';
import { loadConfig, ConfigError } from './store/config.js';
import { KindlerError } from './core/errors.js';
import { LockHeldError } from './store/lock.js';
import { StateFileError } from './store/state.js';

function localUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid:${process.getuid?.() ?? 'unknown'}`;
  }
}

/** The users file, for `kindler users` without a daemon. Problems in it are shown, not fatal. */
function localUsers(file: string): UsersStore {
  const users = new UsersStore({ file });
  for (const p of users.load()) err(`warning: ${p}\n`);
  return users;
}

/** What to stop when the output's reader goes away (the daemon connection, or the embedded verb). */
let stopOnGone: (() => void) | null = null;
const pipe = watchBrokenPipe(() => stopOnGone?.());
/** Writes to stdout/stderr, until their reader has gone: then nothing more is written. */
const out = (s: string): boolean => (pipe.gone() ? true : process.stdout.write(s));
const err = (s: string): void => {
  if (!pipe.gone()) process.stderr.write(s);
};

/** Reads this process's standard input to its end (at most 1 MiB). */
async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.length > 1 << 20) throw new Error('standard input: more than 1 MiB');
  }
  return text;
}

/** Whether the verb reads standard input (`--key -`). */
function readsStdin(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  const a = end < 0 ? argv : argv.slice(0, end);
  return a.some((w, i) => (w === '--key' && a[i + 1] === '-') || w === '--key=-');
}

async function main(argv: string[]): Promise<number> {
  const columns = process.stdout.isTTY ? (process.stdout.columns ?? 80) : 80;
  // Help and version need no config, no daemon and no state lock.
  const asked = helpRequest(argv, columns);
  if (asked) {
    out(asked.out);
    err(asked.err);
    return asked.code;
  }
  const cfg = loadConfig();
  if (argv[0] === 'daemon') {
    if (argv.length > 1) {
      err('error: daemon: takes no arguments (configure it with KINDLER_CONFIG)\n');
      return 2;
    }
    return runDaemon(cfg);
  }
  if (argv[0] === '__complete') {
    // Completion is quiet and quick: names come from a running daemon, or not at all.
    const sock = await tryConnect(socketPath(cfg.dataDir)).catch(() => null);
    if (sock) {
      sock.destroy();
      return runRemoteQuiet(cfg.dataDir, argv);
    }
    out(
      complete(VERB_SPECS, argv.slice(1), { clusters: () => [], tasks: () => [] })
        .map((w) => `${w}\n`)
        .join(''),
    );
    return 0;
  }
  const sock = await tryConnect(socketPath(cfg.dataDir));
  if (sock) {
    // Files named on the command line are read here, as this user sees them.
    const files: Record<string, string> = {};
    const spec = VERB_SPECS.find((v) => v.name === argv[0]);
    if (spec?.fileArg) {
      const idx = spec.args.findIndex((a) => a.name === spec.fileArg);
      const positional = argv.slice(1).filter((a) => !a.startsWith('-'));
      const p = positional[idx];
      if (p !== undefined) {
        try {
          files[p] = await readFile(resolve(p), 'utf8');
        } catch {
          /* the verb reports the unreadable file */
        }
      }
    }
    let stdin: string | undefined;
    if (readsStdin(argv)) {
      try {
        stdin = await readStdin();
      } catch (e) {
        err(`error: --key: cannot read standard input (${(e as Error).message})\n`);
        return 2;
      }
    }
    // Ctrl-C leaves the daemon's task running (it says how to follow it), or cancels it with
    // --cancel-on-interrupt; either way the CLI exits 130.
    let interrupted = false;
    let taskId: string | null = null;
    process.on('SIGINT', () => {
      if (interrupted) return;
      interrupted = true;
      sock.destroy();
    });
    // The reader went away: closing the connection makes the daemon abort the verb.
    stopOnGone = () => sock.destroy();
    const code = await runRemote(
      sock,
      {
        type: 'run',
        argv,
        user: localUser(),
        isTTY: Boolean(process.stdout.isTTY),
        columns: process.stdout.columns ?? 80,
        files,
        ...(stdin !== undefined ? { stdin } : {}),
      },
      {
        out,
        err,
        writable: () => whenDrained(process.stdout),
        onTask: (id) => (taskId = id),
        closedByUs: () => interrupted,
      },
    );
    if (!interrupted) return code;
    if (process.stdout.isTTY) out('\r\x1b[2K');
    if (!taskId) {
      err('\ninterrupted\n');
      return 130;
    }
    if (!wantsFlag(argv, 'cancel-on-interrupt')) {
      err(`\ndetached — ${taskId} continues; kindler logs ${taskId} --follow\n`);
      return 130;
    }
    err(`\ninterrupted — cancelling ${taskId} (its cleanup runs; Ctrl-C again leaves it to finish)\n`);
    const again = await tryConnect(socketPath(cfg.dataDir)).catch(() => null);
    if (!again) {
      err(`error: the kindler daemon is gone; ${taskId} was not cancelled\n`);
      return 130;
    }
    process.removeAllListeners('SIGINT');
    process.on('SIGINT', () => again.destroy());
    await runRemote(
      again,
      { type: 'run', argv: ['cancel', taskId, '--wait'], user: localUser(), isTTY: false, columns: 80, files: {} },
      { out, err, writable: () => whenDrained(process.stdout), closedByUs: () => true },
    );
    return 130;
  }
  const engine = await Engine.start(cfg, {
    role: 'cli',
    log: (level, msg) => {
      if (level === 'error') err(`kindler: ${msg}\n`);
    },
  });
  const abort = new AbortController();
  // The reader went away: the verb stops (a started task runs on, as after Ctrl-C of a --wait).
  stopOnGone = () => abort.abort();
  let interrupted = false;
  // A shutdown that could not save state has said why (the engine's log); the exit code says it failed.
  const stop = () =>
    void engine.shutdown().catch((e: Error) => {
      process.stderr.write(`error: ${e.message}\n`);
      process.exitCode = 1;
    });
  process.on('SIGINT', () => {
    if (interrupted) return;
    interrupted = true;
    abort.abort();
    err('\ninterrupted: stopping running tasks (their cleanup runs)…\n');
    stop();
  });
  process.on('SIGTERM', () => {
    abort.abort();
    stop();
  });
  const code = await runCommand(argv, {
    engine,
    actor: { user: localUser(), source: 'local-cli', role: 'admin' },
    ...(argv[0] === 'users' ? { users: localUsers(cfg.ssh.usersFile) } : {}),
    io: {
      out,
      err,
      writable: () => whenDrained(process.stdout),
      isTTY: Boolean(process.stdout.isTTY),
      columns: process.stdout.columns ?? 80,
      signal: abort.signal,
      readFile: (p) => readFile(resolve(p), 'utf8'),
      readStdin,
    },
  });
  // Without a daemon this process is the engine: it stays until its tasks have finished.
  if (engine.busy && !interrupted) err('no kindler daemon is running: waiting here until the task finishes (Ctrl-C stops it)\n');
  await engine.idle();
  await engine.shutdown();
  return interrupted ? 130 : code;
}

/** `__complete` through the daemon: its candidates, and nothing on error. */
async function runRemoteQuiet(dataDir: string, argv: string[]): Promise<number> {
  const sock = await tryConnect(socketPath(dataDir)).catch(() => null);
  if (!sock) return 0;
  let text = '';
  const code = await runRemote(
    sock,
    { type: 'run', argv, user: localUser(), isTTY: false, columns: 80, files: {} },
    { out: (s) => void (text += s), err: () => undefined, closedByUs: () => true },
  );
  if (code === 0) out(text);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = pipe.gone() ? GONE_EXIT : code;
  },
  (e: Error) => {
    if (e instanceof ConfigError || e instanceof StateFileError || e instanceof LockHeldError || e instanceof KindlerError) {
      err(`error: ${e.message}\n`);
    } else {
      err(`error: internal: ${e.stack ?? e.message}\n`);
    }
    process.exitCode = pipe.gone() ? GONE_EXIT : 1;
  },
);
