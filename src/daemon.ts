/**
 * `kindler daemon`: the engine, the local control socket and the SSH service, in the foreground,
 * one log line per event.
 */
import { hostname } from 'node:os';
import { UsersStore } from './access/users.js';
import { loadPeerCred } from './control/peercred.js';
import { Service } from './commands/service.js';
import { startControlServer, type ControlServer } from './control/server.js';
import { Engine, type LogFn } from './engine/engine.js';
import type { Config } from './core/config.js';
import { sanitizeLine } from './core/text.js';
import { loadOrCreateHostKey } from './ssh/hostkey.js';
import { startSshServer, type SshServer } from './ssh/server.js';
import cron from 'node-cron';
import { runReconcile, runRetention, runTtl } from './cron/jobs.js';
import { startJobs, type Jobs } from './cron/scheduler.js';

export const daemonLog: LogFn = (level, msg) => {
  const line = `${new Date().toISOString()} ${level} ${sanitizeLine(msg)}\n`;
  if (level === 'error') process.stderr.write(line);
  else process.stdout.write(line);
};

/** Loads the users file, applies the first-run admin keys, and follows changes. */
function openUsers(cfg: Config): UsersStore {
  const users = new UsersStore({ file: cfg.ssh.usersFile, log: daemonLog });
  for (const p of users.load()) daemonLog('warn', `users: ${p}`);
  const boot = users.bootstrap(process.env.KINDLER_INITIAL_ADMIN_KEYS);
  for (const a of boot.added) daemonLog('info', `users: KINDLER_INITIAL_ADMIN_KEYS made ${a.user} an admin (key ${a.fingerprint})`);
  for (const p of boot.problems) daemonLog('warn', `users: KINDLER_INITIAL_ADMIN_KEYS: ${p}`);
  if (boot.skipped && process.env.KINDLER_INITIAL_ADMIN_KEYS) daemonLog('info', `users: KINDLER_INITIAL_ADMIN_KEYS ignored: ${boot.skipped}`);
  users.watch();
  return users;
}

/** Runs until SIGTERM or SIGINT; resolves with the process exit code. */
export async function runDaemon(cfg: Config): Promise<number> {
  delete process.env.TMUX;
  // Local callers are identified by the kernel or not at all: without the addon, do not start.
  try {
    loadPeerCred();
  } catch (e) {
    daemonLog('error', (e as Error).message);
    return 1;
  }
  const engine = await Engine.start(cfg, { role: 'daemon', log: daemonLog });
  let jobs: Jobs;
  try {
    jobs = startJobs(
      [
        {
          name: 'reconcile',
          expr: cfg.schedules.reconcile,
          run: () =>
            runReconcile(engine, { dryRun: false, log: daemonLog }).then((r) =>
              daemonLog(
                r.drift.length || r.errors.length ? 'warn' : 'info',
                `reconcile: ${r.drift.length} drift, ${r.healed.length} healed, ${r.errors.length} errors`,
              ),
            ),
        },
        { name: 'ttl', expr: cfg.schedules.ttl, run: () => runTtl(engine, daemonLog) },
        { name: 'retention', expr: cfg.schedules.retention, run: () => runRetention(engine, daemonLog) },
      ],
      {
        schedule: (expr, fn, opts) => cron.schedule(expr, fn, { name: opts.name, timezone: opts.timezone ?? 'UTC' }),
        validate: (expr) => cron.validate(expr),
        log: daemonLog,
        timezone: 'UTC',
      },
    );
  } catch (e) {
    daemonLog('error', (e as Error).message);
    await engine.shutdown();
    return 1;
  }
  const users = openUsers(cfg);
  // The faces get the engine only as the Service the verbs run on.
  const service = new Service(engine);
  let control: ControlServer;
  try {
    control = await startControlServer(service, daemonLog, users);
  } catch (e) {
    // Nothing may keep the process alive (node-cron's timers, the users-file watcher) or hold the lock.
    daemonLog('error', (e as Error).message);
    jobs.stop();
    users.close();
    await engine.shutdown();
    return 1;
  }
  let ssh: SshServer | null = null;
  try {
    if (cfg.ssh.enabled) {
      const hostKey = loadOrCreateHostKey(cfg.ssh.hostKeyFile);
      daemonLog('info', `ssh host key ${hostKey.path}${hostKey.created ? ' (created)' : ''}: ${hostKey.fingerprint}`);
      const s = cfg.ssh;
      ssh = await startSshServer({
        service,
        users,
        hostKey,
        host: s.host,
        port: s.port,
        log: daemonLog,
        hostName: hostname(),
        keepalive: { intervalMs: s.keepaliveSeconds * 1000, countMax: s.keepaliveCountMax },
        limits: {
          maxUnauthenticated: s.maxUnauthenticated,
          maxConnections: s.maxConnections,
          maxConnectionsPerUser: s.maxConnectionsPerUser,
          noChannelTimeoutMs: s.noChannelTimeoutSeconds * 1000,
          loginGraceMs: s.loginGraceSeconds * 1000,
          maxAuthTries: s.maxAuthTries,
          rateLimit: {
            failures: s.rateLimit.failures,
            windowMs: s.rateLimit.windowSeconds * 1000,
            blockMs: s.rateLimit.blockSeconds * 1000,
            delayMs: s.rateLimit.delaySeconds * 1000,
          },
          maxSessionsPerUser: s.maxSessionsPerUser,
          maxChannelsPerConnection: s.maxChannelsPerConnection,
          idleWarnMs: s.idleWarnSeconds * 1000,
          idleCloseMs: s.idleCloseSeconds * 1000,
          maxTunnelsPerUser: s.maxTunnelsPerUser,
        },
      });
      daemonLog('info', `ssh listening on ${s.host}:${ssh.port} (users file ${users.file}, ${users.list().length} users)`);
    }
  } catch (e) {
    daemonLog('error', `ssh: ${(e as Error).message}`);
    jobs.stop();
    await control.close();
    users.close();
    await engine.shutdown();
    return 1;
  }
  daemonLog('info', `kindler daemon started: pid ${process.pid}, state ${engine.store.file}, socket ${control.path}, concurrency ${cfg.concurrency}`);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      daemonLog('info', `${sig} received: stopping (running tasks are stopped and recorded interrupted)`);
      void (async () => {
        jobs.stop();
        await ssh?.stop();
        await control.close();
        users.close();
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
    process.on('SIGHUP', () => {
      daemonLog('info', 'SIGHUP received: re-reading the users file');
      for (const p of users.reload('SIGHUP')) daemonLog('warn', `users: ${p}`);
    });
  });
}
