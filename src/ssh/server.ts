/**
 * kindler's SSH face. `ssh kindler@host` opens the TUI; `ssh kindler@host VERB ... [--json]` runs one
 * verb through the same `runCommand` as every other face.
 *
 * Security model:
 * - Public keys only. The key decides who you are (the SSH login name is ignored); a user is bound
 *   only after a signature verifies against that very key, listed in the users file.
 * - Our own TCP listener feeds ssh2 through `injectSocket`, so we can bound connections before ssh2
 *   sees a byte: all connections together (below the fd limit), those not logged in yet (a full
 *   table closes a pending one to make room: never a newcomer, never a key listed in the users
 *   file, see PreAuthSlots), and logins that take longer than the grace time.
 * - Nobody is locked out by address alone: the SSH port is usually on 127.0.0.1, shared by every
 *   local user. Failures are counted per connection (closed after maxAuthTries), per offered key and
 *   per address; an address with too many failures only goes first when pending connections must be
 *   closed. A listed key whose signature verifies always logs in. A login that times out is not a
 *   failure.
 * - Logged-in connections are capped per user, and one with no session channel open for a while is
 *   closed (a connection costs an fd whether or not it does anything).
 * - RSA keys must sign with rsa-sha2-256/512; ssh-rsa (SHA-1) signatures are refused, as OpenSSH
 *   >= 8.8 does.
 * - Only 'session' channels with a pty + shell (the TUI) or an exec (a verb) are served, plus
 *   'direct-tcpip' to a cluster's API by name (`ssh -N -L P:NAME:6443`, see forward.ts); every other
 *   request (other forwarding, remote forwarding, agent, X11, env, subsystems, signals) is refused
 *   explicitly and logged.
 * - Each session runs in its own guard scope: an exception in one session closes that session
 *   with a message and a log line, never the daemon or other sessions.
 *
 * The server is a pipeline of small stages, from the socket inwards, each in its own module and each
 * handed the next:
 *
 *   admission.ts   TCP listener: connection caps, pre-auth slots, login grace; hands the socket to ssh2
 *   connection.ts  one SSH connection: routes auth, session channels, tunnels; refuses the rest
 *   auth.ts        public keys from the users file, failure counting and delays, per-user cap
 *   requests.ts    one session channel's requests: pty, window changes, shell or exec; refusals
 *   exec.ts        a verb run: argv, stdin, output, Ctrl-C, exit code
 *   shell.ts       the TUI on the channel (or the no-terminal hint)
 *
 * beside them session.ts (a session's life: write, admit, guard, finish), reactions.ts (a changed
 * users file closes or updates sessions), forward.ts (cluster API tunnels), and core.ts (the state
 * they share). This file builds them in order, listens and stops.
 */
import ssh2 from 'ssh2';
import type { ParsedKey } from 'ssh2';
import { EXIT } from '../core/errors.js';
import { installSessionGuard } from './guard.js';
import { Tunnels } from './forward.js';
import { createCore, errText } from './core.js';
import { createListener } from './admission.js';
import { createConnection } from './connection.js';
import { createAuth } from './auth.js';
import { createRequests } from './requests.js';
import { createExec } from './exec.js';
import { createShell } from './shell.js';
import { createSessions } from './session.js';
import { watchUsers } from './reactions.js';
import type { SshServer, SshServerOptions } from './options.js';

export { DEFAULT_SSH_LIMITS, TUI_MAX_SIZE, type OpenTui, type SshLimits, type SshLogFn, type SshServer, type SshServerOptions } from './options.js';

const { Server } = ssh2;

/** ssh2 takes a parsed key only wrapped as `{ key }`. */
function hostKeyOf(k: SshServerOptions['hostKey']): { key: ParsedKey | Buffer | string } {
  if (typeof k === 'object' && k !== null && !Buffer.isBuffer(k) && 'fingerprint' in k && 'key' in k) return { key: (k).key };
  return { key: k };
}

export async function startSshServer(opts: SshServerOptions): Promise<SshServer> {
  const { service, log, limits } = opts;
  const core = createCore(opts);
  const { conns } = core;
  const sshd = new Server({
    hostKeys: [hostKeyOf(opts.hostKey)],
    ident: 'kindler',
    ...(opts.keepalive ? { keepaliveInterval: opts.keepalive.intervalMs, keepaliveCountMax: opts.keepalive.countMax } : {}),
  });
  const uninstallGuard = installSessionGuard();
  const tunnels = new Tunnels({ service, log, maxTunnelsPerUser: limits.maxTunnelsPerUser });

  // The stages, innermost first: each is handed the next.
  const sessions = createSessions(core);
  const { runExec } = createExec(core, sessions);
  const { startShell } = createShell(core, sessions);
  const { onSession } = createRequests(core, sessions, { runExec, startShell });
  const { onAuth } = createAuth(core);
  const { onConnection } = createConnection(core, { onAuth, onSession, onChannelGone: sessions.onChannelGone, tunnels });
  sshd.on('connection', onConnection);
  sshd.on('error', (e: Error) => log('error', `ssh: server error: ${errText(e)}`));
  const tcp = createListener(core, { handshake: (sock) => sshd.injectSocket(sock), onChannelGone: sessions.onChannelGone });
  const stopWatchingUsers = watchUsers(core, sessions);

  // ---- listen / stop ---------------------------------------------------------------------------

  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(opts.port, opts.host, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
  tcp.on('error', (e) => log('error', `ssh: listener error: ${errText(e)}`));
  const addr = tcp.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  core.port = port;

  let stopped: Promise<void> | undefined;
  return {
    port,
    sessions: () => core.live,
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        core.stopping = true;
        stopWatchingUsers();
        tunnels.stop();
        tcp.close(() => {
          clearTimeout(kill);
          uninstallGuard();
          resolve();
        });
        for (const c of conns) {
          for (const s of [...c.sessions]) sessions.closeSessionWith(s, 'kindler is shutting down', EXIT.failed);
          if (c.client) c.client.end();
          else c.sock.destroy();
        }
        const kill = setTimeout(() => {
          for (const c of conns) c.sock.destroy();
        }, 2000);
        kill.unref();
      })),
  };
}
