/** The `extend` verb. */
import { parseDuration } from '../../core/duration.js';
import { EXIT } from '../../core/errors.js';
import { print } from '../follow.js';
import { type Verb, allow } from './common.js';

export const extend: Verb = {
  name: 'extend',
  summary: "Push a cluster's expiry back, e.g. kindler extend dev 2h (owner or admin).",
  args: [
    { name: 'name', required: true, help: 'cluster name' },
    { name: 'duration', required: true, help: 'how much longer, e.g. 2h, 1d' },
  ],
  flags: {},
  async run(p, ctx, json) {
    const ms = parseDuration('duration', p.args.duration!);
    allow(ctx, 'extend', p.args.name!);
    const c = await ctx.engine.extend(p.args.name!, ms, ctx.actor);
    print(ctx, json, { cluster: c }, () => `${c.name} now expires at ${c.expiresAt}\n`);
    return EXIT.ok;
  },
};
