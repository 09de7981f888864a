/**
 * Roles and the one authorization function every face uses.
 *   viewer   reads only
 *   operator creates; re-creates, deletes, starts, stops, imports into and cancels only what it owns
 *   admin    everything, including users and imports of the old tool's CSV; re-creating someone else's
 *            record retries it as recorded (its image, ports and subnet stay the owner's to change)
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export type Action =
  | 'read'
  | 'create'
  | 'recreate'
  | 'delete'
  | 'start'
  | 'stop'
  | 'import-image'
  | 'cancel'
  | 'extend'
  | 'sync'
  | 'import-csv'
  | 'users'
  | 'audit'
  | 'reconcile'
  /** A kubeconfig for a cluster (and a tunnel to its API): everyone who may read; what credential it carries is decided by 'kubeconfig-admin'. */
  | 'kubeconfig'
  /** The cluster's admin credential: admins and the cluster's owner; everyone else gets a read-only one. */
  | 'kubeconfig-admin';

export interface Principal {
  user: string;
  role: Role;
}

/** What an action is about: the owner of the cluster (or the starter of the task) decides for operators. */
export interface Target {
  owner?: string;
  /** For cancel: who started the task. */
  taskUser?: string;
  /** For recreate: the cluster, and the recorded settings the request would change (flag names: image, http-port, subnet, ...). */
  cluster?: string;
  changes?: readonly string[];
}

export type Decision = { ok: true } | { ok: false; reason: string };

const OWNED: readonly Action[] = ['recreate', 'delete', 'start', 'stop', 'import-image', 'cancel', 'extend', 'sync', 'kubeconfig-admin'];
const ADMIN_ONLY: readonly Action[] = ['import-csv', 'users', 'audit', 'reconcile'];

/** Decides whether `who` may do `action` on `target`. The reason is one line for the refusal. */
export function authorize(who: Principal, action: Action, target: Target = {}): Decision {
  if (who.role === 'admin') return action === 'recreate' ? recreateByAdmin(who, target) : { ok: true };
  if (action === 'read' || action === 'kubeconfig') return { ok: true };
  if (who.role === 'viewer') return { ok: false, reason: `${who.user} is a viewer: viewers can only read (${action} needs operator or admin)` };
  // operator
  if (ADMIN_ONLY.includes(action)) return { ok: false, reason: `${action} needs the admin role (${who.user} is an operator)` };
  if (action === 'create') return { ok: true };
  if (OWNED.includes(action)) {
    const mine = target.owner === who.user || (action === 'cancel' && target.taskUser === who.user);
    if (mine) return { ok: true };
    if (action === 'recreate')
      return {
        ok: false,
        reason: `name: ${target.cluster ? `cluster "${target.cluster}"` : 'the cluster'} belongs to ${target.owner ?? 'someone else'}; operators may only re-create their own clusters`,
      };
    return { ok: false, reason: `${action}: operators may only act on their own clusters (owner is ${target.owner ?? 'someone else'})` };
  }
  return { ok: false, reason: `${action} is not allowed for ${who.role}` };
}

/** An admin may retry anyone's record, but only its owner changes what the owner chose for it. */
function recreateByAdmin(who: Principal, target: Target): Decision {
  const changes = target.changes ?? [];
  if (target.owner === undefined || target.owner === who.user || changes.length === 0) return { ok: true };
  const name = target.cluster ? `cluster "${target.cluster}"` : 'the cluster';
  return {
    ok: false,
    reason: `${changes[0]}: ${name} belongs to ${target.owner}; only its owner may change its ${changes.join(', ')} on re-create (omit ${changes.map((c) => `--${c}`).join(', ')} to retry it as recorded, or delete it first)`,
  };
}

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}
