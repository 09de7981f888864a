/**
 * Is something on this host already listening on a port? Checked by trying to bind it.
 */
import { createServer } from 'node:net';

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
