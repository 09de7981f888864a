/**
 * SSH tunnels to cluster API servers: `ssh -N -L P:NAME:6443 kindler@HOST`.
 *
 * A `direct-tcpip` channel is accepted only when its destination is the name of a cluster (port 6443)
 * the user may get a kubeconfig for; it is connected to that cluster's published API port on this host
 * (loopback, or api.publicAddress when the cluster was created with it). Every other destination (other
 * hosts and addresses, raw ports, unknown names) is refused, logged and audited. A tunnel counts as a
 * channel of its connection, tunnels are capped per user, and a cluster's tunnels end when it is deleted.
 * Errors on either socket end that one tunnel only.
 */
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import type { ServerChannel, TcpipRequestInfo } from 'ssh2';
import { authorize } from '../access/authorize.js';
import type { Principal } from '../commands/index.js';
import { TUNNEL_PORT } from '../commands/kubeconfig.js';
import { sanitizeLine, shown } from '../core/text.js';
import type { Service } from '../commands/service.js';
import { serverHostPort } from '../provision/access.js';

export type TunnelLog = (level: 'info' | 'warn' | 'error', msg: string) => void;

/** What the SSH server tells the tunnels about one logged-in connection. */
export interface TunnelConn {
  /** "alice from 127.0.0.1", for log lines. */
  who: string;
  ip: string;
  /** The current principal for the connection's key, or undefined when the key was removed. */
  principal(): Principal | undefined;
  /** Counts a channel against the connection's cap; false when the cap is reached. */
  takeChannel(): boolean;
  releaseChannel(): void;
  /** Tunnels of this connection (closed with it). */
  tunnels: Set<Tunnel>;
  /** Clusters this connection already has an audited tunnel to (one "ok" event per cluster, not per channel). */
  audited: Set<string>;
}

export interface Tunnel {
  cluster: string;
  user: string;
  channel?: ServerChannel;
  sock: Socket;
  closed: boolean;
  close(why?: string): void;
  /** Bytes client → API and API → client. */
  up: number;
  down: number;
}

export interface TunnelOptions {
  service: Service;
  log: TunnelLog;
  maxTunnelsPerUser: number;
  /** How long connecting to the API port may take before the channel is refused. */
  connectTimeoutMs?: number;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export class Tunnels {
  private readonly all = new Set<Tunnel>();
  private readonly perUser = new Map<string, number>();
  private readonly off: () => void;

  constructor(private readonly o: TunnelOptions) {
    // A cluster that is being deleted (or is gone) loses its tunnels.
    this.off = o.service.onEvent((e) => {
      if (e.type === 'cluster-removed') this.closeCluster(e.name, 'the cluster was removed');
      else if (e.type === 'cluster' && e.cluster.desired === 'absent') this.closeCluster(e.cluster.name, 'the cluster is being deleted');
      else if (e.type === 'task' && e.task.kind === 'delete' && e.task.state === 'running') this.closeCluster(e.task.cluster, 'the cluster is being deleted');
    });
  }

  count(): number {
    return this.all.size;
  }

  /** Ends every tunnel to `name`. */
  closeCluster(name: string, why: string): void {
    for (const t of [...this.all]) if (t.cluster === name) t.close(why);
  }

  stop(): void {
    this.off();
    for (const t of [...this.all]) t.close('kindler is shutting down');
  }

  /** Handles one `direct-tcpip` request. Never throws. */
  open(conn: TunnelConn, info: TcpipRequestInfo, accept: () => ServerChannel, reject: () => void): void {
    try {
      this.openUnsafe(conn, info, accept, reject);
    } catch (e) {
      this.o.log('error', `ssh: ${conn.who}: tunnel request failed: ${sanitizeLine(e instanceof Error ? e.message : String(e)).slice(0, 200)}`);
      try {
        reject();
      } catch {
        /* the connection is gone */
      }
    }
  }

  private refuse(conn: TunnelConn, p: Principal | undefined, dest: string, why: string, reject: () => void): void {
    this.o.log('warn', `ssh: ${conn.who}: tunnel to ${dest} refused: ${why}`);
    if (p) this.o.service.recordAudit(p, 'tunnel', dest.slice(0, 120), 'refused', why);
    reject();
  }

  private openUnsafe(conn: TunnelConn, info: TcpipRequestInfo, accept: () => ServerChannel, reject: () => void): void {
    const { service, log } = this.o;
    const destName = String(info.destIP);
    const destPort = Number(info.destPort);
    const dest = `${shown(destName, 64)}:${Number.isInteger(destPort) ? destPort : '?'}`;
    const p = conn.principal();
    if (!p) return this.refuse(conn, p, dest, 'the key is no longer in the users file', reject);
    const c = service.getCluster(destName);
    if (!c)
      return this.refuse(
        conn,
        p,
        dest,
        `only tunnels to a cluster's API are served (ssh -N -L P:NAME:${TUNNEL_PORT}); no cluster is named ${shown(destName, 64)}`,
        reject,
      );
    if (destPort !== TUNNEL_PORT) return this.refuse(conn, p, dest, `only port ${TUNNEL_PORT} (the API server) of a cluster can be tunnelled to`, reject);
    const d = authorize(p, 'kubeconfig', { owner: c.owner, cluster: c.name });
    if (!d.ok) return this.refuse(conn, p, dest, d.reason, reject);
    if (c.desired === 'absent') return this.refuse(conn, p, dest, `${c.name} is being deleted`, reject);
    const held = this.perUser.get(p.user) ?? 0;
    if (held >= this.o.maxTunnelsPerUser)
      return this.refuse(conn, p, dest, `${held} tunnels already open for ${p.user} (max ${this.o.maxTunnelsPerUser}); close some`, reject);
    if (!conn.takeChannel()) return this.refuse(conn, p, dest, 'too many channels open on this connection (ssh.maxChannelsPerConnection)', reject);
    this.perUser.set(p.user, held + 1);

    let channel: ServerChannel | undefined;
    let settled = false;
    const t: Tunnel = {
      cluster: c.name,
      user: p.user,
      sock: undefined as unknown as Socket,
      closed: false,
      up: 0,
      down: 0,
      close: (why?: string) => {
        if (t.closed) return;
        t.closed = true;
        clearTimeout(timer);
        this.all.delete(t);
        conn.tunnels.delete(t);
        const n = (this.perUser.get(t.user) ?? 1) - 1;
        if (n > 0) this.perUser.set(t.user, n);
        else this.perUser.delete(t.user);
        conn.releaseChannel();
        if (why) log('info', `ssh: ${conn.who}: tunnel to ${c.name} closed: ${why} (${t.up} bytes up, ${t.down} down)`);
        if (!settled) {
          settled = true;
          try {
            reject();
          } catch {
            /* gone */
          }
        }
        try {
          t.sock?.destroy();
        } catch {
          /* already gone */
        }
        if (channel) {
          try {
            channel.destroy();
          } catch {
            /* already gone */
          }
        }
      },
    };
    this.all.add(t);
    conn.tunnels.add(t);
    const timer = setTimeout(
      () => t.close(`connecting to the API of ${c.name} took longer than ${this.o.connectTimeoutMs ?? 10_000} ms`),
      this.o.connectTimeoutMs ?? 10_000,
    );
    timer.unref();

    void this.target(c.name, c.kubeconfig, c.apiPort).then(
      (to) => {
        if (t.closed) return;
        const sock = connect({ host: to.host, port: to.port });
        t.sock = sock;
        sock.on('error', (e: NodeJS.ErrnoException) => t.close(`API socket ${to.host}:${to.port}: ${e.code ?? sanitizeLine(e.message).slice(0, 100)}`));
        sock.on('close', () => {
          if (!channel) return t.close(undefined);
          // The API side is done: pipe() ends the channel after what is buffered; the client closes it.
          setTimeout(() => t.close('the API side closed'), 30_000).unref();
        });
        sock.once('connect', () => {
          if (t.closed) return;
          clearTimeout(timer);
          settled = true;
          let ch: ServerChannel | undefined;
          try {
            ch = accept();
          } catch {
            ch = undefined;
          }
          if (!ch) return t.close('the client went away');
          channel = ch;
          t.channel = ch;
          sock.setNoDelay(true);
          ch.on('error', (e: Error) => t.close(`channel: ${sanitizeLine(e.message).slice(0, 100)}`));
          ch.on('close', () => t.close('the client closed it'));
          ch.on('data', (b: Buffer) => (t.up += b.length));
          sock.on('data', (b: Buffer) => (t.down += b.length));
          // pipe() carries backpressure both ways: a slow side holds the other, never memory.
          sock.pipe(ch);
          ch.pipe(sock);
          if (!conn.audited.has(c.name)) {
            conn.audited.add(c.name);
            service.recordAudit(p, 'tunnel', c.name, 'ok', `to ${to.host}:${to.port}`);
          }
          log('info', `ssh: ${conn.who}: tunnel to ${c.name} (${to.host}:${to.port}) open`);
        });
      },
      (e: unknown) => t.close(`cannot find the API of ${c.name}: ${sanitizeLine(String(e)).slice(0, 100)}`),
    );
  }

  /**
   * Where a cluster's API listens on this host: the record's API port, on the address kindler's own
   * kubeconfig names when that is loopback or api.publicAddress; else 127.0.0.1. Never anything else.
   */
  private async target(_name: string, kubeconfig: string, apiPort: number): Promise<{ host: string; port: number }> {
    let host = '127.0.0.1';
    try {
      const text = await readFile(kubeconfig, 'utf8');
      const m = /^\s*server:\s*["']?(https:\/\/[^\s"']+)/m.exec(text.slice(0, 256 * 1024));
      const hp = m ? serverHostPort(m[1]!) : null;
      const pub = this.o.service.cfg.api.publicAddress;
      if (hp && (hp.host === pub || LOOPBACK.has(hp.host))) host = hp.host === 'localhost' ? '127.0.0.1' : hp.host;
    } catch {
      /* no file: the default */
    }
    return { host, port: apiPort };
  }
}
