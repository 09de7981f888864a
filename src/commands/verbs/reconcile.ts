/** The `reconcile` verb. */
import { EXIT } from '../../core/errors.js';
import { sanitizeLine } from '../../core/text.js';
import { print } from '../follow.js';
import { jsonText } from '../json.js';
import { type Verb, apiOf } from './common.js';

export const reconcile: Verb = {
  name: 'reconcile',
  summary:
    'Compare state with what the providers have; heal per configured drift kind (admin). --dry-run only reports (exit 10 on drift); --last shows the last pass.',
  args: [],
  flags: {
    'dry-run': { type: 'bool', help: 'report drift, change nothing (exit 0 none, 10 drift)' },
    last: { type: 'bool', help: 'show the last pass from reconcile.jsonl' },
  },
  async run(p, ctx, json) {
    const dryRun = Boolean(p.flags['dry-run']);
    const api = apiOf(ctx);
    if (p.flags.last) {
      const { last, problems } = await api.lastReconcile(ctx.actor);
      if (!json) for (const m of problems) ctx.io.err(`warning: ${sanitizeLine(m)}\n`);
      print(ctx, json, { last, problems }, () => (last ? `${jsonText(last, 2)}\n` : 'no reconcile pass has run yet\n'));
      return EXIT.ok;
    }
    const r = await api.reconcile(ctx.actor, { dryRun });
    print(ctx, json, r, () => {
      const lines = r.drift.map((d) => `${d.kind.padEnd(9)} ${d.cluster}: ${d.detail}${d.heal !== 'report' && !dryRun ? ` (healing: ${d.heal})` : ''}`);
      for (const h of r.healed) lines.push(`healed    ${h.cluster}: ${h.kind} → task ${h.taskId}`);
      for (const e of r.errors) lines.push(`error     ${e.cluster}: ${e.error}`);
      return `${lines.length ? lines.map((l) => sanitizeLine(l)).join('\n') : 'no drift'}\n`;
    });
    // A pass that could not ask the provider (or a cluster) is a failure, never "no drift".
    if (r.errors.length) return EXIT.failed;
    if (dryRun) return r.drift.length ? 10 : EXIT.ok;
    return EXIT.ok;
  },
};
