/** The `create` verb. */
import { authorize } from '../../access/authorize.js';
import { parseDuration } from '../../core/duration.js';
import { refused } from '../../core/errors.js';
import { parsePort } from '../../core/ports.js';
import { checkImage, MIN_CLUSTER_PORT, parseCount, parseProvider, parseRegister, type CreateInput } from '../../core/spec.js';
import { sanitizeLine } from '../../core/text.js';
import { report, WAIT } from '../follow.js';
import { type Verb, allow } from './common.js';

export const create: Verb = {
  name: 'create',
  summary: 'Create a cluster. Prints the task at once; --wait follows it to the end.',
  args: [{ name: 'name', required: true, help: 'cluster name: lowercase DNS label, starts with a letter' }],
  flags: {
    provider: { type: 'string', value: 'k3d|kind', help: 'provider (default from config; a retry keeps the recorded one)' },
    servers: { type: 'string', value: 'N', help: 'server / control-plane nodes, 1-7 (default from config; a retry keeps the recorded count)' },
    agents: { type: 'string', value: 'N', help: 'agent / worker nodes, 0-20 (default from config; a retry keeps the recorded count)' },
    image: { type: 'string', value: 'IMAGE', help: 'node image (default: the provider default)' },
    'http-port': { type: 'string', value: 'P', help: 'host port for ingress HTTP (default: allocated)' },
    'https-port': { type: 'string', value: 'P', help: 'host port for ingress HTTPS (default: allocated)' },
    'api-port': { type: 'string', value: 'P', help: 'host port for the API server (default: allocated)' },
    subnet: { type: 'string', value: 'CIDR', help: 'k3d only: a dedicated docker network subnet' },
    ttl: { type: 'string', value: 'DURATION', help: 'expire after this long, e.g. 2h or 1d (default from config; a retry keeps the recorded expiry)' },
    'remove-on-failure': { type: 'bool', help: 'drop the record if the create fails (default: keep it as failed)' },
    'no-route': { type: 'bool', help: 'no HAProxy route NAME.BASE_DOMAIN for this cluster (--no-route=false routes it again on a retry; a retry keeps the recorded choice)' },
    register: { type: 'string', value: 'LIST', help: 'registration hooks that act for this cluster: portainer,argocd, or none (default none; a retry keeps the recorded list)' },
    ...WAIT,
  },
  async run(p, ctx, json) {
    const f = p.flags as Record<string, string | undefined>;
    // Only what was given: the engine fills the rest from the record (a retry) or the config defaults (a
    // new cluster). An explicit --ttl must be a duration (an empty one is an error, not "no TTL").
    const ttl = f.ttl;
    const req: CreateInput = {
      name: p.args.name!,
      ...(f.provider !== undefined ? { provider: parseProvider(f.provider) } : {}),
      ...(f.servers !== undefined ? { servers: parseCount('servers', f.servers) } : {}),
      ...(f.agents !== undefined ? { agents: parseCount('agents', f.agents) } : {}),
      ...(f.image !== undefined ? (checkImage(f.image), { image: f.image }) : {}),
      ...(f['http-port'] !== undefined ? { httpPort: parsePort('http-port', f['http-port'], MIN_CLUSTER_PORT) } : {}),
      ...(f['https-port'] !== undefined ? { httpsPort: parsePort('https-port', f['https-port'], MIN_CLUSTER_PORT) } : {}),
      ...(f['api-port'] !== undefined ? { apiPort: parsePort('api-port', f['api-port'], MIN_CLUSTER_PORT) } : {}),
      ...(f.subnet !== undefined ? { subnet: f.subnet } : {}),
      ...(ttl !== undefined ? { ttlMs: parseDuration('ttl', ttl) } : {}),
      ...(p.flags['remove-on-failure'] ? { removeOnFailure: true } : {}),
      ...(p.flags['no-route'] !== undefined || f.register !== undefined
        ? { options: { ...(p.flags['no-route'] !== undefined ? { route: !p.flags['no-route'] } : {}), ...(f.register !== undefined ? { register: parseRegister(f.register) } : {}) } }
        : {}),
    };
    allow(ctx, 'create');
    // Re-creating a recorded cluster acts on that record: decided (under the engine's admission lock,
    // against the record as it is then) by the same authorize, and a refusal is audited like any other.
    const task = await ctx.engine.create(req, ctx.actor, (existing, changes) => {
      const d = authorize(ctx.actor, 'recreate', { owner: existing.owner, cluster: existing.name, changes });
      if (!d.ok) throw refused(d.reason);
    });
    // A retry says what it reuses (the task's log starts with the same line).
    if (!json && typeof task.params?.retry === 'string') ctx.io.out(`${sanitizeLine(task.params.retry)}\n`);
    return report(ctx, p, json, task);
  },
};
