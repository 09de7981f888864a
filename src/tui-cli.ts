#!/usr/bin/env node
/**
 * `kindler-tui`: the same TUI in the local terminal. With a daemon running it is the daemon's
 * client (live state, verbs over the control socket); without one it runs the engine in-process
 * under the single-writer lock.
 */
import { hostname, userInfo } from 'node:os';
import { LocalSession, type SessionBackend } from './commands/session.js';
import { GONE_EXIT, watchBrokenPipe } from './commands/io.js';
import { RemoteSession, tryConnect } from './control/client.js';
import { socketPath } from './control/server.js';
import { Engine } from './engine/engine.js';
import { loadConfig, ConfigError } from './store/config.js';
import { LockHeldError } from './store/lock.js';
import { StateFileError } from './store/state.js';
import { openTui } from './tui/index.js';

/** Closes the TUI when its terminal (or a pipe standing in for it) went away. */
let closeOnGone: (() => void) | null = null;
const pipe = watchBrokenPipe(() => closeOnGone?.(), ['EPIPE', 'EIO']);

async function main(): Promise<number> {
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    process.stderr.write('error: kindler-tui needs a terminal (use the kindler CLI for scripts)\n');
    return 2;
  }
  delete process.env.TMUX;
  const cfg = loadConfig();
  const user = userInfo().username;
  const path = socketPath(cfg.dataDir);
  const probe = await tryConnect(path);
  let engine: Engine | null = null;
  let backend: SessionBackend;
  if (probe) {
    probe.destroy();
    backend = new RemoteSession(path, user, hostname());
  } else {
    engine = await Engine.start(cfg, { role: 'tui' });
    backend = new LocalSession(engine, { user, source: 'local', role: 'admin' }, hostname());
  }
  const code = await new Promise<number>((resolve) => {
    const stdin = process.stdin as NodeJS.ReadStream;
    const handle = openTui({
      input: stdin,
      output: process.stdout,
      columns: process.stdout.columns ?? 80,
      rows: process.stdout.rows ?? 24,
      backend,
      // https://no-color.org: any non-empty NO_COLOR; a dumb terminal gets no colour either.
      noColor: Boolean(process.env.NO_COLOR) || process.env.TERM === 'dumb' || process.argv.includes('--no-color'),
      onExit: (c) => resolve(c),
    });
    process.stdout.on('resize', () => handle.resize(process.stdout.columns ?? 80, process.stdout.rows ?? 24));
    process.on('SIGTERM', () => handle.close('kindler-tui was asked to stop'));
    closeOnGone = () => handle.close();
  });
  backend.close();
  if (engine) {
    if (engine.busy && !pipe.gone()) process.stderr.write('no kindler daemon is running: waiting here until the running tasks finish (Ctrl-C stops them)\n');
    process.once('SIGINT', () => void engine.shutdown().catch((e: Error) => process.stderr.write(`error: ${e.message}\n`)));
    await engine.idle();
    await engine.shutdown();
  }
  process.stdin.pause();
  return code;
}

main().then(
  (code) => {
    process.exitCode = pipe.gone() ? GONE_EXIT : code;
  },
  (e: Error) => {
    const known = e instanceof ConfigError || e instanceof StateFileError || e instanceof LockHeldError;
    if (!pipe.gone()) process.stderr.write(`error: ${known ? e.message : `internal: ${e.stack ?? e.message}`}\n`);
    process.exitCode = pipe.gone() ? GONE_EXIT : 1;
  },
);
