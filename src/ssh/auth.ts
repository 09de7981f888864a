/**
 * Stage: authentication (the ssh2 'authentication' event). Public keys listed in the users file only;
 * ssh-rsa (SHA-1) signatures refused. Each failure is counted per connection (closed after
 * maxAuthTries), per offered key and per address (ratelimit.ts) and answered late while the address is
 * flagged; a listed key shields its connection in the pre-auth table; logged-in connections are capped
 * per user.
 */
import type { AuthContext } from 'ssh2';
import { fingerprint } from '../access/users.js';
import { shown } from '../core/text.js';
import type { Conn, SshCore } from './core.js';

export function createAuth(core: SshCore) {
  const { log, limits, users, limiter, slots, userConns, endConn } = core;
  /**
   * One failed authentication attempt: counted for the connection, the offered key and the address,
   * then refused (after rateLimit.delayMs while the address is blocked).
   */
  const failAuth = (c: Conn, ctx: AuthContext, why: string, fp?: string) => {
    c.failures++;
    log('warn', `ssh: ${c.ip}: login refused: ${why}`);
    const rl = limits.rateLimit;
    if (limiter.fail(c.ip, c.id, fp)) {
      // Not a lockout: everyone on the host may share this address. Listed keys still log in from it.
      log('warn', `ssh: ${c.ip}: ${rl.failures} failed logins within ${rl.windowMs} ms; for ${rl.blockMs} ms its pending connections are closed first when the pre-auth table is full and its failed attempts are answered after ${rl.delayMs} ms (keys in the users file still log in from it at once)`);
    }
    if (fp && limiter.keyFailures(fp) === rl.failures) log('warn', `ssh: key ${fp}: ${rl.failures} failed logins within ${rl.windowMs} ms (last from ${c.ip})`);
    const last = c.failures >= limits.maxAuthTries;
    if (last) log('warn', `ssh: ${c.ip}: ${c.failures} failed authentication attempts; closing the connection`);
    const answer = () => {
      try {
        ctx.reject(['publickey']);
      } catch { /* the connection is gone */ }
      if (last) endConn(c);
    };
    const delay = rl.delayMs > 0 && !c.ending && limiter.blockedFor(c.ip) > 0 ? rl.delayMs : 0;
    if (!delay) return answer();
    // Bounded: one timer per failed attempt, at most maxAuthTries per connection, cleared on close.
    const timer = setTimeout(() => {
      c.delayed.delete(timer);
      if (!c.sock.destroyed) answer();
    }, delay);
    c.delayed.add(timer);
  };

  const onAuth = (c: Conn, ctx: AuthContext) => {
    c.loginName ??= ctx.username;
    if (core.stopping || c.ending) return ctx.reject(['publickey']);
    if (ctx.method === 'none') return ctx.reject(['publickey']);
    if (ctx.method !== 'publickey') return failAuth(c, ctx, `${ctx.method} authentication is not offered`);
    const fp = fingerprint(ctx.key.data);
    // ssh2 reports rsa-sha2-256/512 as algo 'ssh-rsa' with hashAlgo set; plain ssh-rsa means SHA-1.
    if (ctx.key.algo === 'ssh-rsa' && ctx.hashAlgo !== 'sha256' && ctx.hashAlgo !== 'sha512') {
      return failAuth(c, ctx, `key ${fp}: ssh-rsa (SHA-1) signatures are not accepted; use rsa-sha2-256 or rsa-sha2-512 (OpenSSH >= 7.2 does)`, fp);
    }
    const match = users.findByKey(ctx.key.algo, ctx.key.data);
    if (!match) {
      return failAuth(c, ctx, `unknown key ${fp} (${shown(ctx.key.algo, 30)})`, fp);
    }
    // A listed key: this connection is closed last when the pre-auth table is full.
    slots.shield(c.ip, c);
    if (!ctx.signature || !ctx.blob) {
      // "Would you accept this key?" Proves nothing; the client must now sign with it.
      return ctx.accept();
    }
    let ok = false;
    try {
      ok = match.key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true;
    } catch {
      ok = false;
    }
    if (!ok) {
      return failAuth(c, ctx, `bad signature for key ${fp}`, fp);
    }
    const held = userConns.get(match.user) ?? 0;
    if (held >= limits.maxConnectionsPerUser) {
      // Not a failed login: the key is fine, the user holds too many connections.
      log('warn', `ssh: ${c.ip}: login of ${match.user} with key ${fp} refused: ${held} connections already logged in for ${match.user} (max ${limits.maxConnectionsPerUser}); close some and retry`);
      ctx.reject(['publickey']);
      return endConn(c);
    }
    userConns.set(match.user, held + 1);
    c.userCounted = true;
    c.user = match.user;
    c.role = match.role;
    c.fp = match.fingerprint;
    ctx.accept();
  };

  return { onAuth };
}
