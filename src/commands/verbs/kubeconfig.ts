/** The `kubeconfig` verb. */
import { EXIT } from '../../core/errors.js';
import { print } from '../follow.js';
import { KUBECONFIG_FLAGS } from '../kubeconfig.js';
import { type Verb, apiOf } from './common.js';

export const kubeconfig: Verb = {
  name: 'kubeconfig',
  summary:
    'Print a kubeconfig for a cluster (context kindler-NAME): its admin credential for admins and its owner, a read-only token for everyone else. --mode tunnel (default) goes through `ssh -L`; --mode direct needs api.publicAddress.',
  args: [{ name: 'name', required: true, help: 'cluster name' }],
  flags: KUBECONFIG_FLAGS,
  async run(p, ctx, json) {
    const f = p.flags as Record<string, string | undefined>;
    const r = await apiOf(ctx).kubeconfig(ctx.actor, {
      name: p.args.name!,
      ...(f.mode !== undefined ? { mode: f.mode } : {}),
      ...(f['local-port'] !== undefined ? { localPort: f['local-port'] } : {}),
      ...(f.duration !== undefined ? { duration: f.duration } : {}),
    });
    print(ctx, json, r, () => r.kubeconfig);
    if (!json && ctx.io.isTTY && r.tunnel) ctx.io.err(`open the tunnel with: ${r.tunnel.command}\n`);
    return EXIT.ok;
  },
};
