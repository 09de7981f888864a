/** The `whoami` verb. */
import { EXIT } from '../../core/errors.js';
import { print } from '../follow.js';
import { type Verb, apiOf } from './common.js';

export const whoami: Verb = {
  name: 'whoami',
  summary: 'Show who you are to kindler: user, role, how you connected.',
  args: [],
  flags: {},
  async run(_p, ctx, json) {
    const me = await apiOf(ctx).whoami(ctx.actor);
    print(ctx, json, me, () => `${me.user} (${me.role}) via ${me.source}${me.fingerprint ? `, key ${me.fingerprint}` : ''}\n`);
    return EXIT.ok;
  },
};
