/**
 * Key names and the key hints (footer and help). A hint is listed only when its key is accepted
 * here, for this user: actions the role may not do are neither shown nor handled.
 */

/** The parts of a blessed key event the TUI reads. */
export interface KeyEvent {
  name?: string;
  ctrl?: boolean;
  meta?: boolean;
  shift?: boolean;
  full?: string;
  sequence?: string;
}

const NAMED = new Set(['up', 'down', 'left', 'right', 'enter', 'escape', 'tab', 'backspace', 'delete', 'pageup', 'pagedown', 'home', 'end', 'space']);

/**
 * A stable id for a keypress: `C-c`, `S-tab`, `up`, `enter`, or the printable character itself
 * (`S`, `/`, `?`). Returns null for events to ignore (blessed's duplicate `return` before `enter`).
 */
export function keyId(ch: string | undefined, key: KeyEvent | undefined): string | null {
  const name = key?.name;
  if (name === 'return' || name === 'linefeed') return null;
  if (key?.ctrl && name) return `C-${name}`;
  if (name && NAMED.has(name)) return name === 'tab' && key?.shift ? 'S-tab' : name;
  if (key?.meta) return null;
  if (ch && ch.length === 1 && ch >= ' ' && ch !== '\x7f') return ch;
  return null;
}

/** A printable character typed into a text field (null for anything else). */
export function typedChar(ch: string | undefined, key: KeyEvent | undefined): string | null {
  if (key?.ctrl || key?.meta) return null;
  if (!ch || [...ch].length !== 1) return null;
  const cp = ch.codePointAt(0)!;
  if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return null;
  // Every other character joins the value as typed, even one the screen can only show as a placeholder
  // (an emoji) or not at all (a combining mark, a zero-width space): dropping it would silently turn
  // "é" (e + U+0301) or "a🙂" into "e" or "a", a different and valid name. The field shows the value
  // through terminalSafe; the verb's rules then refuse it with the field named.
  return ch;
}

/** One key hint. */
export interface Hint {
  key: string;
  label: string;
}

/** Which panel has the keyboard. */
export type Focus = 'table' | 'tasks' | 'log';

/** What the hints depend on: the focus, and what this user may do to the current selection. */
export interface HintContext {
  focus: Focus;
  fullLog: boolean;
  hasCluster: boolean;
  canCreate: boolean;
  canDelete: boolean;
  /** The start/stop toggle for the selected cluster, when allowed. */
  toggle?: 'start' | 'stop';
  canCancel: boolean;
  /** `e`: the selected cluster has an expiry this user may extend. */
  canExtend?: boolean;
  /** `r`: this user may run a reconcile pass. */
  canReconcile?: boolean;
  following: boolean;
  searching: boolean;
}

/** The hints valid in the main view right now, most important first (the footer cuts from the end). */
export function mainHints(c: HintContext): Hint[] {
  const h: Hint[] = [];
  if (c.focus === 'log' || c.fullLog) {
    h.push({ key: '/', label: 'search' });
    if (c.searching) h.push({ key: 'n/N', label: 'next/prev' });
    h.push(
      { key: 'f', label: c.following ? 'unfollow' : 'follow' },
      { key: 'l', label: c.fullLog ? 'panels' : 'full log' },
      { key: 'w', label: 'wrap' },
      { key: 't', label: 'stamps' },
    );
    if (c.fullLog) h.push({ key: 'esc', label: 'back' });
    else h.push({ key: 'tab', label: 'focus' });
    h.push({ key: '↑↓', label: 'scroll' });
  } else {
    if (c.focus === 'table' && c.canCreate) h.push({ key: 'c', label: 'create' });
    if (c.focus === 'table' && c.canDelete) h.push({ key: 'd', label: 'delete' });
    if (c.focus === 'table' && c.toggle) h.push({ key: 's', label: c.toggle });
    if (c.focus === 'table' && c.canExtend) h.push({ key: 'e', label: 'extend 1h' });
    if (c.canCancel) h.push({ key: 'x', label: 'cancel' });
    if (c.canReconcile) h.push({ key: 'r', label: 'reconcile' });
    if (c.hasCluster) h.push({ key: 'enter', label: 'details' });
    if (c.focus === 'table' && c.hasCluster) h.push({ key: 'K', label: 'kubeconfig' });
    if (c.focus === 'table') h.push({ key: '/', label: 'filter' }, { key: 'm', label: 'mine' }, { key: 'N/A/O/E/P', label: 'sort' });
    h.push(
      { key: 'l', label: 'full log' },
      { key: 'f', label: c.following ? 'unfollow' : 'follow' },
      { key: 'tab', label: 'focus' },
      { key: '↑↓', label: 'select' },
    );
  }
  return h;
}

/** Renders hints into one line of at most `width` columns; `:` command, `?` help and `q` quit are always kept. */
export function fitHints(hints: Hint[], width: number): string {
  const tail: Hint[] = [
    { key: ':', label: 'cmd' },
    { key: '?', label: 'help' },
    { key: 'q', label: 'quit' },
  ];
  const item = (x: Hint) => `{bold}${x.key}{/bold} ${x.label}`;
  const len = (x: Hint) => [...x.key].length + 1 + x.label.length;
  let used = tail.reduce((n, x) => n + len(x) + 2, 0);
  const shown: Hint[] = [];
  for (const x of hints) {
    if (used + len(x) + 2 > width) break;
    shown.push(x);
    used += len(x) + 2;
  }
  return [...shown, ...tail].map(item).join('  ');
}

/** What the help screen may mention for this user. */
export interface HelpFlags {
  canCreate: boolean;
  canAct: boolean;
  canCancel: boolean;
  canExtend?: boolean;
  canReconcile?: boolean;
  canAudit?: boolean;
}

/** The `:` commands this user may run, for the help screen and the prompt's hints. */
export function commandNames(o: { canAudit?: boolean; canReconcile?: boolean }): string[] {
  return [...(o.canAudit ? [':audit'] : []), ...(o.canReconcile ? [':reconcile'] : []), ':reset', ':help', ':q'];
}

/** Columns of the help screen's text: the screen less the overlay's margins and border. */
export function helpWidth(cols: number): number {
  return Math.min(100, cols - 6);
}

/** Key column width in the help screen. */
const HELP_KEY_W = 16;

/** Splits `text` into lines of at most `w` columns at spaces; a word longer than a line is cut with a `…` mark. */
export function wrapWords(text: string, w: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (let word of text.split(' ')) {
    while (word.length > w) {
      if (cur) {
        out.push(cur);
        cur = '';
      }
      out.push(`${word.slice(0, w - 1)}…`);
      word = word.slice(w - 1);
    }
    if (!cur) cur = word;
    else if (cur.length + 1 + word.length <= w) cur += ` ${word}`;
    else {
      out.push(cur);
      cur = word;
    }
  }
  if (cur || !out.length) out.push(cur);
  return out;
}

/** The help screen's rows (key, what it does): every key, limited to what this user may do. */
export function helpRows(o: HelpFlags): [string, string][] {
  return [
    ['↑/↓ j/k', 'move the selection; in the log: scroll a line'],
    ['PgUp/PgDn', 'a page up / down (space: a page down in the log and in dialogs)'],
    ['g/G Home/End', 'first / last row; in the log: oldest line / newest line (and follow)'],
    ['enter', 'the cluster view: nodes, ports, kubeconfig command, steps, tasks (esc back)'],
    ...(o.canCreate ? ([['c', 'create a cluster (a form: tab/↑↓ moves between fields, ←/→ picks the provider, enter creates)']] as [string, string][]) : []),
    ...(o.canAct
      ? ([
          ['d', 'delete the selected cluster (type its name to confirm; refused while a task of it is active)'],
          ['s', 'start or stop the selected cluster (asks first)'],
        ] as [string, string][])
      : []),
    ['K', 'a kubeconfig for the selected cluster, with the ssh -L tunnel command (read-only unless you own it or are admin)'],
    ...(o.canExtend ? ([['e', "extend the selected cluster's expiry by 1h"]] as [string, string][]) : []),
    ...(o.canCancel ? ([['x', "cancel the selected cluster's (or the picked task's) active task (asks first)"]] as [string, string][]) : []),
    ...(o.canReconcile ? ([['r', 'reconcile now: compare with the providers, heal drift, show the result']] as [string, string][]) : []),
    [
      ':',
      `command prompt: ${[...(o.canAudit ? [':audit (the audit log)'] : []), ...(o.canReconcile ? [':reconcile'] : []), ':reset (the default view)', ':help', ':q (quit)'].join(', ')}`,
    ],
    ['/', 'filter clusters (table) or search the log (log pane); esc clears'],
    ['n / N', 'next / previous search match in the log'],
    ['S', 'cycle the sort column'],
    ['f', 'follow the log on/off'],
    ['l', 'full-screen log on/off'],
    ['tab / shift-tab', 'move focus: clusters → tasks → log'],
    ['mouse', 'click picks a row, a click on the picked row opens details, the wheel moves'],
    ['y / n', 'answer a question (stop, start, cancel, quit with a half-filled form)'],
    ['?', 'this help'],
    ['esc, q', 'close a dialog, the help or the full-screen log; esc also clears a filter or search'],
    ['Ctrl-L', 'redraw the whole screen'],
    ['q, Ctrl-C', 'quit (from the main view; Ctrl-C asks first when a form has input)'],
    [
      'N A O E P C',
      'sort the table (it has focus) by name, actual state, owner, expiry, provider, creation; the same key again flips the direction (↑/↓ in the header)',
    ],
    ['m', 'mine: only the clusters you own, on/off (the table title says "mine")'],
    ['w', 'log: wrap long lines on/off'],
    ['t', 'log: the tools\' own time stamps on/off (time="…", INFO[0003], a leading ISO time)'],
  ];
}

/** The help screen's lines, wrapped to `width` columns (descriptions continue under themselves). */
export function helpLines(o: HelpFlags, width = 76): string[] {
  const descW = Math.max(10, width - HELP_KEY_W - 1);
  return helpRows(o).flatMap(([k, d]) =>
    wrapWords(d, descW).map(
      (part, i) => `{bold}${(i === 0 ? k : '').padEnd(HELP_KEY_W)}{/bold} ${part.replace(/[{}]/g, (c) => (c === '{' ? '{open}' : '{close}'))}`,
    ),
  );
}
