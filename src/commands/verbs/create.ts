/** The `create` verb. */
import { sanitizeLine } from '../../core/text.js';
import type { CreateArgs } from '../api.js';
import { report, WAIT } from '../follow.js';
import { type Verb, apiOf } from './common.js';

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
    'no-route': {
      type: 'bool',
      help: 'no HAProxy route NAME.BASE_DOMAIN for this cluster (--no-route=false routes it again on a retry; a retry keeps the recorded choice)',
    },
    register: {
      type: 'string',
      value: 'LIST',
      help: 'registration hooks that act for this cluster: portainer,argocd, or none (default none; a retry keeps the recorded list)',
    },
    ...WAIT,
  },
  async run(p, ctx, json) {
    const f = p.flags as Record<string, string | undefined>;
    const args: CreateArgs = {
      name: p.args.name!,
      ...(f.provider !== undefined ? { provider: f.provider } : {}),
      ...(f.servers !== undefined ? { servers: f.servers } : {}),
      ...(f.agents !== undefined ? { agents: f.agents } : {}),
      ...(f.image !== undefined ? { image: f.image } : {}),
      ...(f['http-port'] !== undefined ? { httpPort: f['http-port'] } : {}),
      ...(f['https-port'] !== undefined ? { httpsPort: f['https-port'] } : {}),
      ...(f['api-port'] !== undefined ? { apiPort: f['api-port'] } : {}),
      ...(f.subnet !== undefined ? { subnet: f.subnet } : {}),
      ...(f.ttl !== undefined ? { ttl: f.ttl } : {}),
      ...(p.flags['remove-on-failure'] ? { removeOnFailure: true } : {}),
      ...(p.flags['no-route'] !== undefined ? { route: !p.flags['no-route'] } : {}),
      ...(f.register !== undefined ? { register: f.register } : {}),
    };
    const task = await apiOf(ctx).create(ctx.actor, args);
    // A retry says what it reuses (the task's log starts with the same line).
    if (!json && typeof task.params?.retry === 'string') ctx.io.out(`${sanitizeLine(task.params.retry)}\n`);
    return report(ctx, p, json, task);
  },
};
