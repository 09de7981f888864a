/**
 * Stage: one SSH connection after the handshake (ssh2's 'connection'). Routes what the client asks
 * for: authentication to auth.ts, 'session' channels (capped per connection) to requests.ts,
 * 'direct-tcpip' to the cluster API tunnels (forward.ts); unix-socket forwarding and global requests
 * (remote forwarding) are refused and logged. Login releases the pre-auth slot and arms the
 * no-channel timer; the connection's close ends its sessions and tunnels.
 */
import type { AuthContext, ClientInfo, Connection, Session } from 'ssh2';
import { shown } from '../core/text.js';
import { errText, type Conn, type Sess, type SshCore } from './core.js';
import type { Tunnels } from './forward.js';

export interface ConnectionStages {
  onAuth: (c: Conn, ctx: AuthContext) => void;
  onSession: (c: Conn, session: Session) => void;
  onChannelGone: (s: Sess) => void;
  tunnels: Tunnels;
}

export function createConnection(core: SshCore, next: ConnectionStages) {
  const { log, limits, users, limiter, byPeer, who, release, armIdle, acceptChannel } = core;
  const { onAuth, onSession, onChannelGone, tunnels } = next;
  const onConnection = (client: Connection, info: ClientInfo) => {
    const c = byPeer.get(`${info.ip}:${info.port}`);
    if (!c || core.stopping) {
      client.end();
      return;
    }
    byPeer.delete(`${info.ip}:${info.port}`);
    c.client = client;
    client.on('error', (e: Error & { level?: string }) => {
      if (e.level === 'client-timeout') {
        log('warn', `ssh: ${who(c)}: keepalive timeout; closing`);
        c.sock.destroy();
      } else log('info', `ssh: ${who(c)}: connection error: ${errText(e)}`);
    });
    client.on('authentication', (ctx) => {
      try {
        onAuth(c, ctx);
      } catch (e) {
        log('error', `ssh: ${c.ip}: authentication handler failed: ${errText(e)}`);
        try {
          ctx.reject(['publickey']);
        } catch { /* already answered */ }
      }
    });
    client.on('ready', () => {
      c.authed = true;
      release(c);
      limiter.forgive(c.ip, c.id);
      log('info', `ssh: ${c.user} (${c.role}) logged in from ${c.ip} with key ${c.fp} (login name ${shown(c.loginName ?? '', 32)})`);
      armIdle(c);
    });
    client.on('session', (accept, reject) => {
      if (!c.authed || core.stopping) return reject();
      if (c.channels >= limits.maxChannelsPerConnection) {
        log('warn', `ssh: ${who(c)}: session channel refused: ${c.channels} already open on this connection (max ${limits.maxChannelsPerConnection})`);
        return reject();
      }
      const session = acceptChannel(c, 'a session channel', accept);
      if (!session) return;
      c.channels++;
      clearTimeout(c.idle);
      onSession(c, session);
    });
    client.on('tcpip', (accept, reject, i) => {
      if (!c.authed || core.stopping || c.ending) return reject();
      // Only to a cluster's API, by cluster name (see forward.ts); everything else is refused there.
      c.tunnelConn ??= {
        who: who(c),
        ip: c.ip,
        principal: () => {
          const cur = users.byFingerprint(c.fp!);
          if (!cur || cur.user !== c.user) return undefined;
          return { user: cur.user, role: cur.role, source: `ssh ${c.ip}`, fingerprint: c.fp! };
        },
        takeChannel: () => {
          if (c.channels >= limits.maxChannelsPerConnection) return false;
          c.channels++;
          clearTimeout(c.idle);
          return true;
        },
        releaseChannel: () => {
          c.channels--;
          armIdle(c);
        },
        tunnels: c.tunnels,
        audited: new Set(),
      };
      tunnels.open(c.tunnelConn, i, accept, reject);
    });
    client.on('openssh.streamlocal', (_accept, reject, i) => {
      log('warn', `ssh: ${who(c)}: unix socket forwarding to ${shown(String(i.socketPath), 64)} refused`);
      reject();
    });
    client.on('request', (_accept, reject, name) => {
      log('warn', `ssh: ${who(c)}: global request ${shown(String(name), 40)} (remote forwarding) refused`);
      reject?.();
    });
    client.on('close', () => {
      for (const s of [...c.sessions]) onChannelGone(s);
      for (const t of [...c.tunnels]) t.close('the connection closed');
    });
  };

  return { onConnection };
}
