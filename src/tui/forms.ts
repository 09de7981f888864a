/**
 * The TUI's small input state machines (pure, no blessed): a one-line text input, the create form
 * and the type-the-name delete prompt. Each renders itself as tagged lines for an overlay box.
 */
import type { CreateArgs } from '../commands/api.js';
import { parseDuration } from '../core/duration.js';
import { KindlerError } from '../core/errors.js';
import { nameProblem } from '../core/names.js';
import { parsePort } from '../core/ports.js';
import { checkImage, checkSubnet, MIN_CLUSTER_PORT, parseCount, SUBNET_KIND_RULE } from '../core/spec.js';
import type { Provider } from '../core/types.js';
import { typedChar, type KeyEvent } from './keys.js';
import { escapeTags, fit, plain, truncate } from './text.js';

/** A one-line text input. */
export class LineInput {
  value = '';
  constructor(readonly max = 128) {}

  /** Applies an editing key; returns whether it was consumed. */
  edit(id: string | null, ch: string | undefined, key: KeyEvent | undefined): boolean {
    if (id === 'backspace') {
      this.value = [...this.value].slice(0, -1).join('');
      return true;
    }
    if (id === 'C-u') {
      this.value = '';
      return true;
    }
    if (id === 'C-w') {
      this.value = this.value.replace(/\S*\s*$/, '');
      return true;
    }
    const c = typedChar(ch, key);
    if (c === null) return false;
    if ([...this.value].length < this.max) this.value += c;
    return true;
  }

  /** The value with a block cursor when focused, tag-escaped. */
  show(focused: boolean): string {
    const v = escapeTags(plain(this.value));
    return focused ? `${v}{inverse} {/inverse}` : v;
  }

  /** The value in exactly `w` columns (cursor included): its end stays in view while it is longer. */
  showFixed(focused: boolean, w: number): string {
    let v = plain(this.value);
    const room = focused ? w - 1 : w;
    if (v.length > room) v = `…${v.slice(v.length - room + 1)}`;
    const shown = escapeTags(fit(v, room));
    if (!focused) return shown;
    const pad = room - v.length;
    return `${escapeTags(v)}{inverse} {/inverse}${' '.repeat(Math.max(0, pad))}`;
  }
}

/** What a key did to a dialog. */
export type DialogResult = 'submit' | 'cancel' | null;

interface FieldSpec {
  key: string;
  label: string;
  hint: string;
  choices?: readonly string[];
}

/** The create form's fields, in order; keys are the `create` flags (name is the argument). */
export const CREATE_FIELDS: readonly FieldSpec[] = [
  { key: 'name', label: 'name', hint: 'a-z 0-9 -, starts with a letter' },
  { key: 'provider', label: 'provider', hint: '←/→ to choose', choices: ['default', 'k3d', 'kind'] },
  { key: 'servers', label: 'servers', hint: '1-7; blank = default' },
  { key: 'agents', label: 'agents', hint: '0-20; blank = default' },
  { key: 'image', label: 'image', hint: 'node image; blank = default' },
  { key: 'http-port', label: 'http port', hint: 'blank = auto' },
  { key: 'https-port', label: 'https port', hint: 'blank = auto' },
  { key: 'api-port', label: 'api port', hint: 'blank = auto' },
  { key: 'subnet', label: 'subnet', hint: 'k3d only, a CIDR; blank = shared' },
  { key: 'ttl', label: 'TTL', hint: 'e.g. 2h or 1d; blank = default' },
];

/** Columns of a value in the create form (the form keeps one width whatever is typed). */
export const FORM_VALUE_WIDTH = 28;

/** The message of a thrown validation error. */
function problem(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    return plain((e as Error)?.message ?? e, 300);
  }
}

/**
 * Every broken rule in the form's values at once (field key → one line), checked with the same
 * rules the create verb applies; the daemon still has the last word (ports in use, names taken).
 */
export function createProblems(values: Record<string, string>, provider: string): Map<string, string> {
  const out = new Map<string, string>();
  const put = (k: string, p: string | null) => p && out.set(k, p);
  const prov = (provider === 'default' ? 'k3d' : provider) as Provider;
  put('name', nameProblem(values.name ?? '', prov));
  for (const k of ['servers', 'agents'] as const)
    if (values[k])
      put(
        k,
        problem(() => parseCount(k, values[k]!)),
      );
  if (values.image)
    put(
      'image',
      problem(() => checkImage(values.image!)),
    );
  for (const k of ['http-port', 'https-port', 'api-port'])
    if (values[k])
      put(
        k,
        problem(() => parsePort(k, values[k]!, MIN_CLUSTER_PORT)),
      );
  if (values.subnet) put('subnet', provider === 'kind' ? `subnet: ${SUBNET_KIND_RULE}` : problem(() => checkSubnet(values.subnet!)));
  if (values.ttl)
    put(
      'ttl',
      problem(() => parseDuration('ttl', values.ttl!)),
    );
  return out;
}

/** The one-line reason of a failed call (a KindlerError's message, and its field when it names one). */
export function errorOf(e: unknown): { message: string; field?: string } {
  if (e instanceof KindlerError) return { message: plain(e.message, 300), ...(e.field ? { field: e.field } : {}) };
  return { message: plain((e as Error)?.message ?? e, 300) };
}

/** The create form. */
export class CreateForm {
  readonly inputs: LineInput[] = CREATE_FIELDS.map(() => new LineInput(64));
  choice = 0;
  focus = 0;
  error: string | undefined;
  errorField: string | undefined;
  /** Every broken rule found by the last submit (field key → line), shown all at once. */
  problems = new Map<string, string>();
  busy = false;

  /** The typed values by field key (trimmed). */
  values(): Record<string, string> {
    const v: Record<string, string> = {};
    CREATE_FIELDS.forEach((f, i) => {
      if (!f.choices) v[f.key] = this.inputs[i]!.value.trim();
    });
    return v;
  }

  /** Checks every field; returns whether the form may be submitted (else the problems show and the first broken field gets focus). */
  validate(): boolean {
    this.problems = createProblems(this.values(), CREATE_FIELDS[1]!.choices![this.choice]!);
    if (!this.problems.size) return true;
    this.error = undefined;
    this.errorField = undefined;
    this.focus = CREATE_FIELDS.findIndex((f) => this.problems.has(f.key));
    return false;
  }

  /** Handles a key; 'submit' means run `argv()`. */
  key(id: string | null, ch: string | undefined, key: KeyEvent | undefined): DialogResult {
    if (this.busy) return id === 'escape' ? 'cancel' : null;
    const f = CREATE_FIELDS[this.focus]!;
    switch (id) {
      case 'escape':
        return 'cancel';
      case 'enter':
        return this.validate() ? 'submit' : null;
      case 'tab':
      case 'down':
        this.focus = (this.focus + 1) % CREATE_FIELDS.length;
        return null;
      case 'S-tab':
      case 'up':
        this.focus = (this.focus + CREATE_FIELDS.length - 1) % CREATE_FIELDS.length;
        return null;
    }
    if (f.choices) {
      const n = f.choices.length;
      if (id === 'left') this.choice = (this.choice + n - 1) % n;
      else if (id === 'right' || id === 'space') this.choice = (this.choice + 1) % n;
      return null;
    }
    this.inputs[this.focus]!.edit(id, ch, key);
    return null;
  }

  /** The `create` argv for the current values (blank fields are left to the daemon's defaults). */
  argv(): string[] {
    const flags: string[] = [];
    let name = '';
    CREATE_FIELDS.forEach((f, i) => {
      if (f.choices) {
        const v = f.choices[this.choice]!;
        if (v !== 'default') flags.push(`--${f.key}=${v}`);
        return;
      }
      const v = this.inputs[i]!.value.trim();
      if (f.key === 'name') name = v;
      else if (v !== '') flags.push(`--${f.key}=${v}`);
    });
    return ['create', ...flags, '--json', '--', ...(name ? [name] : [])];
  }

  /** The typed `create` arguments for the current values (blank fields are left to the daemon's defaults). */
  args(): CreateArgs {
    const a: Record<string, string> = { name: '' };
    const key: Record<string, keyof CreateArgs> = { 'http-port': 'httpPort', 'https-port': 'httpsPort', 'api-port': 'apiPort' };
    CREATE_FIELDS.forEach((f, i) => {
      const v = f.choices ? f.choices[this.choice]! : this.inputs[i]!.value.trim();
      if (f.key === 'name') a.name = v;
      else if (f.choices ? v !== 'default' : v !== '') a[key[f.key] ?? f.key] = v;
    });
    return a as unknown as CreateArgs;
  }

  /** Shows a failed submit's reason inline (and marks its field). */
  fail(message: string, field?: string): void {
    this.busy = false;
    this.problems = new Map();
    this.error = message;
    this.errorField = field;
    const i = CREATE_FIELDS.findIndex((f) => f.key === field);
    if (i >= 0) this.focus = i;
  }

  /**
   * The form's lines (tagged), `width` columns wide at most: every row keeps its width whatever is
   * typed (values scroll inside a fixed field), and every problem is listed, in field order.
   */
  lines(width = 76): string[] {
    const out = CREATE_FIELDS.map((f, i) => {
      const focused = i === this.focus;
      const mark = focused ? '{cyan-fg}›{/cyan-fg}' : ' ';
      const label = `${f.label}:`.padEnd(12);
      const value = f.choices
        ? escapeTags(fit(f.choices.join(' '), FORM_VALUE_WIDTH)).replace(f.choices[this.choice]!, `{inverse}${f.choices[this.choice]}{/inverse}`)
        : this.inputs[i]!.showFixed(focused && !this.busy, FORM_VALUE_WIDTH);
      // A broken field's mark sits before its value, so a long value can never push it off the row.
      const bad = this.errorField === f.key || this.problems.has(f.key) ? '{red-fg}✗{/red-fg}' : ' ';
      const hint = truncate(f.hint, Math.max(0, width - 2 - 12 - 2 - FORM_VALUE_WIDTH - 2));
      return `${mark} ${focused ? `{bold}${label}{/bold}` : label}${bad} ${value}  {gray-fg}${escapeTags(hint)}{/gray-fg}`;
    });
    out.push('');
    const errors = this.busy ? [] : [...this.problems.values(), ...(this.error ? [this.error] : [])].map((e) => `error: ${e}`);
    if (this.busy) out.push('{yellow-fg}creating…{/yellow-fg}');
    else if (!errors.length) out.push('');
    for (const e of errors) out.push(`{red-fg}✗ ${escapeTags(truncate(e, width - 2))}{/red-fg}`);
    out.push('{bold}enter{/bold} create  {bold}tab/↑↓{/bold} field  {bold}esc{/bold} cancel');
    return out;
  }
}

/** The delete confirmation: the user must type the cluster's exact name. */
export class DeletePrompt {
  readonly input = new LineInput(128);
  error: string | undefined;
  busy = false;
  constructor(readonly name: string) {}

  /** Handles a key; 'submit' only once the typed name matches exactly. */
  key(id: string | null, ch: string | undefined, key: KeyEvent | undefined): DialogResult {
    if (id === 'escape') return 'cancel';
    if (this.busy) return null;
    if (id === 'enter') {
      if (this.input.value === this.name) return 'submit';
      this.error = 'the typed name does not match; nothing was deleted';
      return null;
    }
    if (this.input.edit(id, ch, key)) this.error = undefined;
    return null;
  }

  /** Shows a failed delete's reason inline. */
  fail(message: string): void {
    this.busy = false;
    this.error = message;
  }

  /** The prompt's lines (tagged). */
  lines(): string[] {
    const n = escapeTags(plain(this.name));
    return [
      `Delete cluster {bold}${n}{/bold}? Its containers and kubeconfig entries are removed.`,
      `Type the cluster's name to confirm:`,
      '',
      `{cyan-fg}›{/cyan-fg} ${this.input.show(!this.busy)}`,
      '',
      this.busy ? '{yellow-fg}deleting…{/yellow-fg}' : this.error ? `{red-fg}error: ${escapeTags(this.error)}{/red-fg}` : '',
      '{bold}enter{/bold} delete  {bold}esc{/bold} cancel',
    ];
  }
}
