/** The `adopt` verb. */
import { EXIT, usageError } from '../../core/errors.js';
import { looksLikeName } from '../../core/names.js';
import { parseProvider } from '../../core/spec.js';
import { print } from '../follow.js';
import { type Verb, allow } from './common.js';

export const adopt: Verb = {
  name: 'adopt',
  summary: 'Record a cluster the provider has but kindler does not (admin). Nothing is created or changed.',
  args: [{ name: 'name', required: true, help: 'the unmanaged cluster' }],
  flags: { provider: { type: 'string', value: 'k3d|kind', help: 'its provider (default from config)' } },
  async run(p, ctx, json) {
    allow(ctx, 'reconcile');
    const provider = parseProvider((p.flags.provider as string | undefined) ?? ctx.engine.cfg.defaults.provider);
    if (!looksLikeName(p.args.name!)) throw usageError('name: must be a lowercase DNS label', 'name');
    const c = await ctx.engine.adopt(p.args.name!, provider, ctx.actor);
    print(ctx, json, { cluster: c }, () => `adopted ${c.name} (${c.provider}, ${c.actual})\n`);
    return EXIT.ok;
  },
};
