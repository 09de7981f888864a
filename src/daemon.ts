/**
 * `kindler daemon`: the engine plus the local control socket, in the foreground, one log line per event.
 */
import { startControlServer } from './control/server.js';
import { Engine, type LogFn } from './engine/engine.js';
import type { Config } from './core/config.js';
import { sanitizeLine } from './core/text.js';

export const daemonLog: LogFn = (level, msg) => {
  const line = `${new Date().toISOString()} ${level} ${sanitizeLine(msg)}\n`;
  if (level === 'error') process.stderr.write(line);
  else process.stdout.write(line);
};

/** Runs until SIGTERM or SIGINT; resolves with the process exit code. */
export async function runDaemon(cfg: Config): Promise<number> {
  delete process.env.TMUX;
  const engine = await Engine.start(cfg, { role: 'daemon', log: daemonLog });
  const control = await startControlServer(engine, daemonLog);
  daemonLog('info', `kindler daemon started: pid ${process.pid}, state ${engine.store.file}, socket ${control.path}, concurrency ${cfg.concurrency}`);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      daemonLog('info', `${sig} received: stopping (running tasks are stopped and recorded interrupted)`);
      void (async () => {
        await control.close();
        await engine.shutdown();
        daemonLog('info', 'kindler daemon stopped');
        resolve(0);
      })().catch((e: Error) => {
        daemonLog('error', `shutdown failed: ${e.message}`);
        resolve(1);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
