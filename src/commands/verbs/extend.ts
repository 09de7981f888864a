/** The `extend` verb. */
import { EXIT } from '../../core/errors.js';
import { print } from '../follow.js';
import { type Verb, apiOf } from './common.js';

export const extend: Verb = {
  name: 'extend',
  summary: "Push a cluster's expiry back, e.g. kindler extend dev 2h (owner or admin).",
  args: [
    { name: 'name', required: true, help: 'cluster name' },
    { name: 'duration', required: true, help: 'how much longer, e.g. 2h, 1d' },
  ],
  flags: {},
  async run(p, ctx, json) {
    const c = await apiOf(ctx).extend(ctx.actor, { name: p.args.name!, duration: p.args.duration! });
    print(ctx, json, { cluster: c }, () => `${c.name} now expires at ${c.expiresAt}\n`);
    return EXIT.ok;
  },
};
