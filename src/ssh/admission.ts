/**
 * Stage: the TCP listener, before ssh2 sees a byte. Bounds all connections (maxConnections: a pending
 * one makes room, or the newcomer is dropped when all are logged in) and those not logged in yet
 * (PreAuthSlots: a full table closes a pending one, never the newcomer), closes a connection not
 * logged in within loginGraceMs (not a failed login), and cleans up after every close. Then hands the
 * socket to the handshake (ssh2's injectSocket).
 */
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { errText, normIp, type Conn, type Sess, type SshCore } from './core.js';

export interface AdmissionStages {
  /** Starts the SSH handshake on an admitted socket (may throw). */
  handshake: (sock: Socket) => void;
  onChannelGone: (s: Sess) => void;
}

export function createListener(core: SshCore, next: AdmissionStages): NetServer {
  const { log, limits, slots, conns, byPeer, userConns, logThrottled, release } = core;
  const { handshake, onChannelGone } = next;
  const tcp: NetServer = createServer((sock) => {
    sock.on('error', () => undefined);
    const ip = normIp(sock.remoteAddress);
    if (core.stopping) {
      sock.destroy();
      return;
    }
    // All connections together stay below the fd limit: a pending one makes room, or the newcomer is
    // dropped when every connection is logged in (each user holds at most maxConnectionsPerUser).
    const full = conns.size >= limits.maxConnections;
    if (full && slots.size() === 0) {
      logThrottled('conn cap', 'warn', `ssh: ${ip}: connection dropped: ${conns.size} connections open, all logged in (max ${limits.maxConnections})`);
      sock.destroy();
      return;
    }
    const c: Conn = { id: ++core.connSeq, ip, sock, authed: false, released: false, delayed: new Set(), userCounted: false, failures: 0, sessions: new Set(), channels: 0, ending: false, tunnels: new Set() };
    // A newcomer is always admitted; a full table closes the least active pending connection of the
    // source holding the most (blocked sources first; never one that offered a listed key while others remain).
    const adm = slots.admit(ip, c, full);
    if (adm.evict) {
      const v = adm.evict;
      logThrottled(`evict ${v.ip}`, 'warn', `ssh: ${v.ip}: a connection not logged in yet was closed to make room for one from ${ip} (${full ? `${conns.size} connections open, max ${limits.maxConnections}` : `${limits.maxUnauthenticated} not logged in, max ${limits.maxUnauthenticated}`}; ${slots.held(v.ip)} still pending from ${v.ip})`);
      release(v);
      v.sock.destroy();
      conns.delete(v);
    }
    c.onData = () => slots.touch(ip, c);
    sock.on('data', c.onData);
    const peer = `${sock.remoteAddress}:${sock.remotePort}`;
    conns.add(c);
    byPeer.set(peer, c);
    sock.setNoDelay(true);
    c.grace = setTimeout(() => {
      if (c.authed) return;
      // Slow or idle, not wrong: not counted as a failed login.
      log('warn', `ssh: ${ip}: not logged in within ${limits.loginGraceMs} ms; closing`);
      sock.destroy();
    }, limits.loginGraceMs);
    sock.once('close', () => {
      release(c);
      clearTimeout(c.idle);
      for (const d of c.delayed) clearTimeout(d);
      c.delayed.clear();
      conns.delete(c);
      if (c.userCounted) {
        c.userCounted = false;
        const n = (userConns.get(c.user!) ?? 1) - 1;
        if (n > 0) userConns.set(c.user!, n);
        else userConns.delete(c.user!);
      }
      if (byPeer.get(peer) === c) byPeer.delete(peer);
      for (const s of [...c.sessions]) onChannelGone(s);
      for (const t of [...c.tunnels]) t.close('the connection closed');
      if (c.authed) log('info', `ssh: ${c.user} from ${ip} disconnected`);
      else if (c.failures) log('info', `ssh: ${ip}: disconnected without logging in (${c.failures} failed attempts)`);
    });
    try {
      handshake(sock);
    } catch (e) {
      log('error', `ssh: ${ip}: cannot start the SSH handshake: ${errText(e)}`);
      sock.destroy();
    }
  });
  return tcp;
}
