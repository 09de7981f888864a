/**
 * The strict argv parser shared by every face: known flags only, values checked, one clear line on error.
 */
import { usageError } from '../core/errors.js';
import { sanitizeLine, shown } from '../core/text.js';

export interface FlagSpec {
  type: 'string' | 'bool';
  /** Shown in help. */
  help: string;
  value?: string;
}

export interface VerbSpec {
  name: string;
  /** Not listed in help or completion (the completion scripts' own helper). */
  hidden?: boolean;
  summary: string;
  args: { name: string; required: boolean; help: string }[];
  flags: Record<string, FlagSpec>;
  /** The argument that names a file the client reads (import-csv). */
  fileArg?: string;
}

export interface Parsed {
  args: Record<string, string | undefined>;
  flags: Record<string, string | boolean | undefined>;
}

export const COMMON_FLAGS: Record<string, FlagSpec> = {
  json: { type: 'bool', help: 'print JSON instead of text' },
  help: { type: 'bool', help: 'show this help' },
};

/**
 * Parses argv (after the verb) against the spec. Throws a usage error naming the flag or argument.
 * Every boolean flag is the same: `--x` or `--x=true` sets it, `--x=false` clears it, any other
 * value is refused.
 */
export function parseArgs(spec: VerbSpec, argv: readonly string[]): Parsed {
  const flags: Parsed['flags'] = {};
  const positional: string[] = [];
  const all = { ...spec.flags, ...COMMON_FLAGS };
  let onlyArgs = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!onlyArgs && a === '--') {
      onlyArgs = true;
      continue;
    }
    if (!onlyArgs && a === '-h') {
      flags.help = true;
      continue;
    }
    if (!onlyArgs && a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const f = all[name];
      if (!f) throw usageError(`${flagLabel(`--${name}`)}: unknown flag for "${spec.name}" (see kindler ${spec.name} --help)`, fieldOf(name));
      if (f.type === 'bool') {
        if (eq >= 0) {
          const v = a.slice(eq + 1);
          if (v !== 'true' && v !== 'false')
            throw usageError(`--${name}: is a switch: give --${name}, --${name}=true or --${name}=false (got ${shown(v, 20)})`, name);
          flags[name] = v === 'true';
        } else flags[name] = true;
        continue;
      }
      let v: string | undefined;
      if (eq >= 0) v = a.slice(eq + 1);
      else {
        v = argv[i + 1];
        i++;
      }
      if (v === undefined || (eq < 0 && v.startsWith('--'))) throw usageError(`--${name}: needs a value (${f.value ?? 'VALUE'})`, name);
      if (flags[name] !== undefined) throw usageError(`--${name}: given more than once`, name);
      flags[name] = v;
      continue;
    }
    if (!onlyArgs && a.startsWith('-') && a.length > 1)
      throw usageError(`${flagLabel(a)}: unknown flag for "${spec.name}" (see kindler ${spec.name} --help)`, fieldOf(a));
    positional.push(a);
  }
  const args: Parsed['args'] = {};
  if (flags.help) return { args, flags };
  if (positional.length > spec.args.length) {
    throw usageError(`${spec.name}: unexpected argument ${shown(positional[spec.args.length]!, 40)} (usage: ${usageLine(spec)})`);
  }
  spec.args.forEach((s, i) => {
    const v = positional[i];
    if (v === undefined && s.required) throw usageError(`${s.name}: required (usage: ${usageLine(spec)})`, s.name);
    // No argument of any verb may be empty: "" must never quietly mean "any" or "the latest".
    if (v === '') throw usageError(`${s.name}: must not be empty (usage: ${usageLine(spec)})`, s.name);
    args[s.name] = v;
  });
  return { args, flags };
}

/**
 * How an unknown flag is named at the start of its error line: as typed when it is short printable
 * ASCII that cannot be mistaken for the message's own punctuation, else quoted (escaped, cut at 40).
 */
function flagLabel(flag: string): string {
  return /^-{1,2}[!-~]{1,40}$/.test(flag) && !/[:"'`\\]/.test(flag) ? flag : shown(flag, 40);
}

/** The `field` reported for an unknown flag: printable and short, whatever was typed. */
function fieldOf(name: string): string {
  return sanitizeLine(name).slice(0, 40);
}

export function usageLine(spec: VerbSpec): string {
  const args = spec.args.map((a) => (a.required ? a.name.toUpperCase() : `[${a.name.toUpperCase()}]`)).join(' ');
  const flags = Object.entries(spec.flags)
    .map(([k, f]) => (f.type === 'bool' ? `[--${k}]` : `[--${k} ${f.value ?? 'VALUE'}]`))
    .join(' ');
  return ['kindler', spec.name, args, flags, '[--json]'].filter(Boolean).join(' ');
}

/**
 * Lays out `label  text` rows: labels padded to a common indent (at most `maxLabel` wide; a longer
 * label gets its text on the next line), the text wrapped at word boundaries under that indent so no
 * line is wider than `columns` (a single word longer than the room is left whole).
 */
export function twoColumns(rows: [string, string][], columns: number, indent = 2, maxLabel = 24): string[] {
  const labelW = Math.min(maxLabel, Math.max(0, ...rows.map(([l]) => l.length)));
  const textCol = indent + labelW + 2;
  const room = Math.max(20, columns - textCol);
  const lines: string[] = [];
  for (const [label, text] of rows) {
    const wrapped = wrapWords(text, room);
    const pad = ' '.repeat(textCol);
    if (label.length > labelW) {
      lines.push(`${' '.repeat(indent)}${label}`);
      for (const w of wrapped) lines.push(`${pad}${w}`);
    } else {
      wrapped.forEach((w, i) => lines.push(i === 0 ? `${' '.repeat(indent)}${label.padEnd(labelW)}  ${w}` : `${pad}${w}`));
    }
  }
  return lines;
}

/** Splits text into lines of at most `width` characters at spaces (a longer word stays whole). */
export function wrapWords(text: string, width: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (!cur) cur = word;
    else if (cur.length + 1 + word.length <= width) cur += ` ${word}`;
    else {
      out.push(cur);
      cur = word;
    }
  }
  out.push(cur);
  return out;
}

export function helpText(spec: VerbSpec, columns = 80): string {
  const width = Math.max(40, columns);
  const lines = [...wrapWords(spec.summary, width), '', ...wrapWords(`usage: ${usageLine(spec)}`, width - 9).map((l, i) => (i ? `         ${l}` : l))];
  if (spec.args.length) {
    lines.push('', 'arguments:');
    lines.push(
      ...twoColumns(
        spec.args.map((a) => [a.name.toUpperCase(), a.help]),
        width,
      ),
    );
  }
  lines.push('', 'flags:');
  lines.push(
    ...twoColumns(
      Object.entries({ ...spec.flags, ...COMMON_FLAGS }).map(([k, f]) => [`--${k}${f.type === 'string' ? ` ${f.value ?? 'VALUE'}` : ''}`, f.help]),
      width,
    ),
  );
  return `${lines.join('\n')}\n`;
}
