/**
 * `K` on the selected cluster: calls the session's `kubeconfig` (the same verb as every face) and shows
 * the commands to use the cluster from the user's own machine, then the kubeconfig itself.
 */
import type { KubeconfigResult } from '../commands/kubeconfig.js';
import { sessionApi } from '../commands/session.js';
import type { Dialog, TuiPort } from './port.js';
import { errorOf } from './forms.js';
import { escapeTags, plain } from './text.js';

/** The overlay's lines for a kubeconfig reply (untrusted text: no tags, no control characters). */
export function kubeconfigLines(r: KubeconfigResult): string[] {
  const t = (s: string) => escapeTags(plain(s, 4000));
  const cred = r.credential === 'admin' ? 'the admin credential' : `a read-only credential (expires ${r.expiresAt ?? '?'})`;
  const head = [
    `{bold}${t(r.context)}{/bold}: ${cred}, ${t(r.mode)} mode, server ${t(r.server)}`,
    '',
    ...(r.tunnel
      ? ['{bold}1. open the tunnel{/bold} (leave it running):', `   ${t(r.tunnel.command)}`, '{bold}2. save the kubeconfig{/bold}:', `   ${t(r.save)}`]
      : ['{bold}save the kubeconfig{/bold}:', `   ${t(r.save)}`]),
    `{bold}${r.tunnel ? '3' : 'then'}.{/bold} kubectl --kubeconfig kindler-${t(r.cluster)}.yaml get nodes`,
    '',
    '{gray-fg}the kubeconfig:{/gray-fg}',
  ];
  return [
    ...head,
    ...r.kubeconfig
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map(t),
  ];
}

/** Opens the kubeconfig overlay for the selected cluster (the details dialog, titled by the cluster). */
export function openKubeconfig(app: TuiPort): void {
  const c = app.selected();
  if (!c) return;
  const d: Dialog = { kind: 'details', name: `${c.name} — kubeconfig`, lines: ['{gray-fg}making the kubeconfig…{/gray-fg}'] };
  app.dialog = d;
  app.overlay.reset();
  sessionApi(app.backend)
    .kubeconfig({ name: c.name })
    .then(
      app.guard((r: KubeconfigResult) => {
        try {
          d.lines = kubeconfigLines(r);
        } catch {
          d.lines = ['{red-fg}unreadable reply from kubeconfig{/red-fg}'];
        }
        app.scheduler.request();
      }),
      app.guard((e: unknown) => {
        d.lines = [`{red-fg}${escapeTags(errorOf(e).message)}{/red-fg}`];
        app.scheduler.request();
      }),
    );
}
