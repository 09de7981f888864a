/**
 * Is something on this host already listening on a port? Checked by trying to bind it; when it is,
 * docker is asked which of its containers publishes it, so the refusal can name the holder.
 */
import { createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { runCaptured } from '../os/run.js';
import { cleanLine } from '../core/text.js';

/** Resolves to a reason string when the port cannot be bound on all interfaces, or null when it is free. */
export function hostPortBusy(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', (e: NodeJS.ErrnoException) => {
      resolve(e.code === 'EADDRINUSE' ? 'something on this host is listening on it' : `it cannot be bound (${e.code ?? e.message})`);
    });
    srv.listen({ port, host: '0.0.0.0', exclusive: true }, () => srv.close(() => resolve(null)));
  });
}

/**
 * Which docker containers publish host port `port` (names, sorted), asked of the engine the scripts
 * use (`env` on top of the allow-listed environment). Empty when none does, or when docker cannot be
 * asked: this only names a holder for a refusal that stands without it.
 */
export async function dockerPublishers(port: number, env?: Record<string, string>): Promise<string[]> {
  const r = await runCaptured('docker', ['ps', '--filter', `publish=${port}`, '--format', '{{.Names}}'], {
    timeoutMs: 5_000,
    maxOutput: 64 * 1024,
    ...(env ? { env } : {}),
  });
  if (!r.ok) return [];
  return String(r.stdout)
    .split('\n')
    .map((l) => cleanLine(l.trim(), 200))
    .filter(Boolean)
    .sort();
}

/** The IPv4 addresses this host's interfaces have now (loopback included). */
export function hostIPv4Addresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4') out.push(a.address);
  return out;
}
