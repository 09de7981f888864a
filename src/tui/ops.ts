/**
 * The TUI's operator views, each a typed verb of the session (the CLI's checks and errors): `r` reconcile
 * (admin), the `:` command prompt (`:audit`, `:reconcile`, `:help`, `:q`), `e` extend by 1h, and the
 * TTL warning lines every session shows for clusters about to expire. Untrusted text is cleaned and
 * tag-escaped before it is drawn.
 */
import type { ReconcileResult } from '../commands/api.js';
import { sessionApi } from '../commands/session.js';
import { formatDuration } from '../core/duration.js';
import type { AuditEvent, Cluster } from '../core/types.js';
import { TTL_WARN_MS, expiring, expiryOf } from '../core/expiry.js';
import type { Dialog, TuiPort } from './port.js';
import { errorOf } from './forms.js';
import { commandNames } from './keys.js';
import { MAX_BANNER } from './layout.js';
import { clean, escapeTags, fit, plain, truncate } from './text.js';

/** How much `e` adds to the selected cluster's expiry. */
export const EXTEND_BY = '1h';
/** How many audit events the `:audit` view asks for. */
export const AUDIT_LIMIT = 500;

const red = (s: string) => `{red-fg}${s}{/red-fg}`;
const esc = (v: unknown, max = 300) => escapeTags(plain(v, max));

// ---- reconcile ---------------------------------------------------------------------------------

/** The reconcile result's lines (tagged): drift, healed with task ids, skipped, errors; "no drift" when none. */
export function reconcileLines(r: ReconcileResult | Error): string[] {
  if (r instanceof Error) return [red(escapeTags(errorOf(r).message))];
  const j = r && typeof r === 'object' && Array.isArray((r as { drift?: unknown }).drift) ? (r as unknown as Record<string, unknown>) : null;
  if (!j) return [red('unreadable reply from reconcile')];
  const list = (k: string) => (Array.isArray(j[k]) ? (j[k] as Record<string, unknown>[]).filter((x) => x && typeof x === 'object') : []);
  const drift = list('drift');
  const healed = list('healed');
  const skipped = list('skipped');
  const errors = list('errors');
  const out: string[] = [`{bold}pass at ${esc(j.at, 40)}{/bold}  ${drift.length} drift · ${healed.length} healed · ${errors.length} errors`, ''];
  if (!drift.length && !errors.length) out.push('{green-fg}no drift{/green-fg}');
  for (const d of drift) {
    const heal = plain(d.heal, 20);
    out.push(
      `{yellow-fg}drift  {/yellow-fg} ${esc(fit(plain(d.kind, 12), 9))} ${esc(d.cluster, 60)}: ${esc(d.detail)}${heal && heal !== 'report' ? ` (heal: ${escapeTags(heal)})` : ''}`,
    );
  }
  for (const h of healed) out.push(`{green-fg}healed {/green-fg} ${esc(h.cluster, 60)}: ${esc(h.kind, 20)} → task ${esc(h.taskId, 20)}`);
  for (const s of skipped) out.push(`{gray-fg}skipped ${esc(s.cluster, 60)}: ${esc(s.reason)}{/gray-fg}`);
  for (const e of errors) out.push(red(`error   ${esc(e.cluster, 60)}: ${esc(e.error)}`));
  return out;
}

/** `r`: runs a reconcile pass (admin) and shows the result in a dialog; one pass at a time. */
export function openReconcile(app: TuiPort): void {
  if (!app.backend.may('reconcile')) return;
  if (app.reconciling) {
    app.dialog = app.reconciling;
    app.overlay.reset();
    return;
  }
  const d: Dialog = { kind: 'reconcile', lines: ['{yellow-fg}reconciling…{/yellow-fg}'] };
  app.dialog = d;
  app.reconciling = d;
  app.overlay.reset();
  const done = (lines: string[], summary: string, error: boolean) => {
    app.reconciling = null;
    d.lines = lines;
    // Closed while it ran: the outcome goes to the status line instead.
    if (app.dialog !== d) app.say(summary, error);
    app.scheduler.request();
  };
  sessionApi(app.backend)
    .reconcile()
    .then(
      app.guard((r: ReconcileResult) => {
        const lines = reconcileLines(r);
        const n = (v: unknown) => (Array.isArray(v) ? v.length : 0);
        const whole = Array.isArray(r?.drift);
        const summary = whole
          ? `reconcile: ${n(r.drift)} drift, ${n(r.healed)} healed, ${n(r.errors)} errors`
          : 'reconcile failed: unreadable reply from reconcile';
        // A pass that could not ask the provider (or a cluster) failed, as its exit code says.
        done(lines, summary, !whole || n(r.errors) > 0);
      }),
      app.guard((e: unknown) => {
        const m = errorOf(e).message;
        done([red(escapeTags(m))], `reconcile failed: ${m}`, true);
      }),
    );
}

// ---- audit --------------------------------------------------------------------------------------

const AUDIT_COLS: [string, number][] = [
  ['TIME', 19],
  ['USER', 10],
  ['SOURCE', 9],
  ['ACTION', 10],
  ['TARGET', 14],
  ['RESULT', 7],
  ['TASK', 7],
];

/** The audit view's column header (tagged). */
export const AUDIT_HEAD = `{bold}${escapeTags([...AUDIT_COLS.map(([t, w]) => fit(t, w)), 'DETAIL'].join(' '))}{/bold}`;

/** The audit events as lines (tagged), oldest first so the newest is last. */
export function auditLines(events: unknown[]): string[] {
  const when = (t: number) => (Number.isFinite(t) ? t : 0);
  const rows = events
    .filter((e): e is AuditEvent => Boolean(e) && typeof e === 'object')
    .map((e, i) => ({ e, i, t: when(Date.parse(String(e.at))) }))
    .sort((a, b) => a.t - b.t || a.i - b.i);
  if (!rows.length) return ['{gray-fg}no audit events{/gray-fg}'];
  return rows.map(({ e }) => {
    const time = plain(e.at, 40).replace('T', ' ').slice(0, 19);
    const cells = [time, clean(e.user, 60), clean(e.source, 40), clean(e.action, 40), clean(e.target, 80), clean(e.result, 20), clean(e.taskId, 20)];
    const text = escapeTags(`${AUDIT_COLS.map(([, w], k) => fit(cells[k]!, w)).join(' ')} ${e.detail ? plain(e.detail, 300) : ''}`.trimEnd());
    return e.result === 'failed' ? red(text) : e.result === 'refused' ? `{yellow-fg}${text}{/yellow-fg}` : text;
  });
}

/** `:audit`: the last AUDIT_LIMIT audit events in a scrollable view, scrolled to the newest (admin). */
export function openAudit(app: TuiPort): void {
  if (!app.backend.may('audit')) return;
  const d: Dialog = { kind: 'audit', head: [AUDIT_HEAD], lines: ['{gray-fg}loading…{/gray-fg}'] };
  app.dialog = d;
  app.overlay.reset();
  const show = (lines: string[]) => {
    d.lines = lines;
    if (app.dialog === d) app.overlay.end();
    app.scheduler.request();
  };
  sessionApi(app.backend)
    .audit({ limit: AUDIT_LIMIT })
    .then(
      app.guard((j: { events?: unknown }) => show(Array.isArray(j?.events) ? auditLines(j.events) : [red('unexpected reply from audit')])),
      app.guard((e: unknown) => show([red(escapeTags(errorOf(e).message))])),
    );
}

// ---- the `:` prompt ---------------------------------------------------------------------------

/** Runs a `:` command line; returns an inline error to keep the prompt open with, or null when done. */
export function runCommandLine(app: TuiPort, line: string): string | null {
  const cmd = line.trim().replace(/^:+/, '').trim();
  const flags = app.helpFlags();
  switch (cmd) {
    case '':
      return null;
    case 'q':
    case 'q!':
    case 'quit':
      app.quit();
      return null;
    case 'help':
    case '?':
      app.dialog = { kind: 'help' };
      app.overlay.reset();
      return null;
    case 'reset':
      app.resetView();
      app.say('view reset: no filter, all clusters, sorted by name, clusters focused, log following');
      return null;
    case 'audit':
      if (!flags.canAudit) return `:audit is not allowed for ${plain(app.backend.principal.role, 20)} (admin only)`;
      openAudit(app);
      return null;
    case 'reconcile':
      if (!flags.canReconcile) return `:reconcile is not allowed for ${plain(app.backend.principal.role, 20)} (admin only)`;
      openReconcile(app);
      return null;
    default:
      return `unknown command "${truncate(plain(cmd), 30)}" (try ${commandNames(flags).join(', ')})`;
  }
}

// ---- expiry -------------------------------------------------------------------------------------

/** Whether `e` applies to this cluster: it has an expiry, is not being deleted, and this user may extend it. */
export function canExtend(app: TuiPort, c: Cluster | undefined): c is Cluster {
  return Boolean(c && c.expiresAt && c.desired !== 'absent' && app.backend.may('extend', c.owner));
}

/** `e`: extends the selected cluster by 1h; the outcome goes to the status line. */
export function extendSelected(app: TuiPort, c: Cluster): void {
  const what = `extend ${clean(c.name, 60)} by ${EXTEND_BY}`;
  app.say(`${what}…`);
  sessionApi(app.backend)
    .extend({ name: c.name, duration: EXTEND_BY })
    .then(
      // What `extend` prints: NAME now expires at TIME.
      app.guard((x: Cluster | undefined) => app.say(x && x.name ? `${what}: ${plain(`${x.name} now expires at ${x.expiresAt}`, 200)}` : `${what}: done`)),
      app.guard((e: unknown) => app.say(`${what} failed: ${errorOf(e).message}`, true)),
    );
}

/** Clusters within TTL_WARN_MS of their expiry, soonest first. */
export function expiringSoon(clusters: Iterable<Cluster>, nowMs: number): Cluster[] {
  return expiring([...clusters], nowMs, TTL_WARN_MS);
}

/**
 * The TTL warning lines (tagged, at most MAX_BANNER): one per expiring cluster, the last one
 * summing up the rest. `mayExtend` adds the `e` hint for clusters this user may extend.
 */
export function bannerLines(soon: Cluster[], nowMs: number, width: number, mayExtend: (c: Cluster) => boolean): string[] {
  const one = (c: Cluster) => {
    const name = clean(c.name, 60);
    const left = formatDuration(Math.max(0, (expiryOf(c) ?? nowMs) - nowMs));
    return `⚠ ${name} expires in ${left} — kindler extend ${name} 2h${mayExtend(c) ? ' (or select it and press e for +1h)' : ''}`;
  };
  const shown = soon.length > MAX_BANNER ? soon.slice(0, MAX_BANNER - 1) : soon;
  const lines = shown.map(one);
  if (soon.length > shown.length) {
    const rest = soon.slice(shown.length);
    lines.push(`⚠ ${rest.length} more clusters expire within ${formatDuration(TTL_WARN_MS)}: ${rest.map((c) => clean(c.name, 60)).join(', ')}`);
  }
  return lines.map((l) => `{yellow-fg}{bold}${escapeTags(truncate(l, Math.max(1, width)))}{/bold}{/yellow-fg}`);
}
