/** The `adopt` verb. */
import { EXIT } from '../../core/errors.js';
import { print } from '../follow.js';
import { type Verb, apiOf } from './common.js';

export const adopt: Verb = {
  name: 'adopt',
  summary: 'Record a cluster the provider has but kindler does not (admin). Nothing is created or changed.',
  args: [{ name: 'name', required: true, help: 'the unmanaged cluster' }],
  flags: { provider: { type: 'string', value: 'k3d|kind', help: 'its provider (default from config)' } },
  async run(p, ctx, json) {
    const c = await apiOf(ctx).adopt(ctx.actor, { name: p.args.name!, ...(p.flags.provider !== undefined ? { provider: p.flags.provider as string } : {}) });
    print(ctx, json, { cluster: c }, () => `adopted ${c.name} (${c.provider}, ${c.actual})\n`);
    return EXIT.ok;
  },
};
