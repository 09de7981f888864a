/**
 * Host ports for clusters: honouring given ports (the port rules, other records, the routes frontend's own
 * ports, what is busy on the host and which docker container holds it) or allocating omitted ones from the
 * configured ranges; and the api.publicAddress check (docker can publish only on an address the host has).
 */
import type { Config } from '../core/config.js';
import { conflict, failed, usageError } from '../core/errors.js';
import { allocatePort, type PortKind } from '../core/ports.js';
import { assertClusterPort, flagOf, type CreateRequest } from '../core/spec.js';
import type { Cluster } from '../core/types.js';
import { dockerPublishers, hostIPv4Addresses, hostPortBusy } from '../provision/hostports.js';
import type { EngineContext } from './context.js';

export interface PickOptions {
  /** Names a port in messages (default: its flag). */
  field?: (k: PortKind) => string;
  /** Whether a given port is taken on the host (default: the host check). */
  givenBusy?: (port: number) => Promise<string | null>;
}

export class Ports {
  constructor(private readonly ctx: EngineContext) {}

  /** Host ports kindler itself serves on (the routes frontend), with the config key that sets each. */
  own(): Map<number, string> {
    const out = new Map<number, string>();
    const r = this.ctx.cfg.routes;
    if (!r.enabled) return out;
    out.set(r.listen.http.port, 'routes.listen.http.port');
    if (r.listen.https) out.set(r.listen.https.port, 'routes.listen.https.port');
    return out;
  }

  /** Why a port is taken on the host, or null (null always when checkHostPorts is off). */
  hostBusy(port: number): Promise<string | null> {
    return this.ctx.cfg.checkHostPorts ? hostPortBusy(port) : Promise.resolve(null);
  }

  /**
   * Honours given ports or refuses them; allocates omitted ones from the configured ranges. A port recorded
   * on `existing` (a retry) counts as given, but is not checked on the host again.
   */
  async pick(req: CreateRequest, existing: Cluster | undefined, others: Cluster[], o: PickOptions = {}): Promise<Record<PortKind, number>> {
    const cfg = this.ctx.cfg;
    const field = o.field ?? flagOf;
    const taken = new Map<number, string>();
    for (const c of others) for (const k of ['httpPort', 'httpsPort', 'apiPort'] as const) taken.set(c[k], c.name);
    const own = this.own();
    const out = {} as Record<PortKind, number>;
    const ranges: Record<PortKind, keyof Config['ports']> = { httpPort: 'http', httpsPort: 'https', apiPort: 'api' };
    // Given ports first, so allocation never hands out one the user asked for.
    for (const k of ['httpPort', 'httpsPort', 'apiPort'] as const) {
      const want = req[k] ?? existing?.[k];
      if (want === undefined) continue;
      // Recorded ports are held to the same rules as given ones (a record may predate a rule).
      assertClusterPort(field(k), want);
      const key = own.get(want);
      if (key) throw usageError(`${field(k)}: ${want} is the routes frontend's own port (${key}); choose another`, field(k));
      const owner = taken.get(want);
      if (owner) throw conflict(`${field(k)}: ${want} is already used by cluster "${owner}"`, field(k));
      if (req[k] !== undefined) {
        const busy = await (o.givenBusy ?? ((p: number) => this.hostBusy(p)))(want);
        if (busy) {
          const holders = await dockerPublishers(want, this.ctx.opts.scriptEnv);
          const who = holders.length
            ? `docker container${holders.length > 1 ? 's' : ''} ${holders.map((h) => `"${h}"`).join(', ')} publish${holders.length > 1 ? '' : 'es'} it`
            : busy;
          throw conflict(`${field(k)}: ${want} is not available: ${who}`, field(k));
        }
      }
      out[k] = want;
      taken.set(want, req.name);
    }
    for (const k of ['httpPort', 'httpsPort', 'apiPort'] as const) {
      if (out[k] !== undefined) continue;
      const range = cfg.ports[ranges[k]];
      const skip = new Set([...taken.keys(), ...own.keys()]);
      for (;;) {
        const p = allocatePort(range, skip);
        if (p === null) throw conflict(`${field(k)}: no free port left in the configured range ${range.from}-${range.to}`, field(k));
        if (!(await this.hostBusy(p))) {
          out[k] = p;
          taken.set(p, req.name);
          break;
        }
        skip.add(p);
      }
    }
    return out;
  }

  /**
   * docker publishes a cluster's API on api.publicAddress, and can only bind an address this host has:
   * one it lacks fails the create half-way (the provider rolls back). Refuse before anything starts.
   */
  assertApiAddressOnHost(): void {
    const addr = this.ctx.cfg.api.publicAddress;
    if (addr === undefined || hostIPv4Addresses().includes(addr)) return;
    throw failed(
      `api.publicAddress: ${addr} is not an address of this host (it has ${hostIPv4Addresses().join(', ') || 'no IPv4 address'}), so docker cannot publish a cluster's API on it; add the address to an interface or change api.publicAddress`,
    );
  }
}
