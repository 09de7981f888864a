/** The `list` verb. */
import { EXIT } from '../../core/errors.js';
import { print } from '../follow.js';
import { clusterTable } from '../format.js';
import { type Verb, fitWidth, apiOf } from './common.js';

export const list: Verb = {
  name: 'list',
  summary: 'List clusters with their desired and actual state.',
  args: [],
  flags: {},
  async run(_p, ctx, json) {
    const r = await apiOf(ctx).list(ctx.actor);
    print(ctx, json, r, () => clusterTable(r.clusters, fitWidth(ctx)));
    return EXIT.ok;
  },
};
