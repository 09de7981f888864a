/** The `import-csv` verb. */
import { EXIT, usageError } from '../../core/errors.js';
import { shown } from '../../core/text.js';
import { print } from '../follow.js';
import { table } from '../format.js';
import { type Verb, apiOf } from './common.js';

export const importCsv: Verb = {
  name: 'import-csv',
  summary: "Import the older tool's config/environments.csv once: each row is imported or refused with the reason.",
  args: [{ name: 'file', required: true, help: 'path to environments.csv' }],
  fileArg: 'file',
  flags: {},
  async run(p, ctx, json) {
    const { rows } = await apiOf(ctx).importCsv(ctx.actor, {
      read: async () => {
        try {
          return await ctx.io.readFile(p.args.file!);
        } catch (e) {
          throw usageError(`file: cannot read ${shown(p.args.file!, 80)} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'file');
        }
      },
    });
    print(ctx, json, { rows }, () =>
      rows.length
        ? table(
            ['LINE', 'NAME', 'RESULT', 'REASON'],
            rows.map((r) => [r.line, r.name, r.result, r.reason]),
          )
        : 'no rows\n',
    );
    return rows.some((r) => r.result === 'refused') ? EXIT.failed : EXIT.ok;
  },
};
