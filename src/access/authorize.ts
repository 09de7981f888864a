/**
 * Roles and the one authorization function every face uses.
 *   viewer   reads only
 *   operator creates; deletes, starts, stops, imports into and cancels only what it owns
 *   admin    everything, including users and imports of the old tool's CSV
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export type Action =
  | 'read'
  | 'create'
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
  | 'reconcile';

export interface Principal {
  user: string;
  role: Role;
}

/** What an action is about: the owner of the cluster (or the starter of the task) decides for operators. */
export interface Target {
  owner?: string;
  /** For cancel: who started the task. */
  taskUser?: string;
}

export type Decision = { ok: true } | { ok: false; reason: string };

const OWNED: readonly Action[] = ['delete', 'start', 'stop', 'import-image', 'cancel', 'extend', 'sync'];
const ADMIN_ONLY: readonly Action[] = ['import-csv', 'users', 'audit', 'reconcile'];

/** Decides whether `who` may do `action` on `target`. The reason is one line for the refusal. */
export function authorize(who: Principal, action: Action, target: Target = {}): Decision {
  if (who.role === 'admin') return { ok: true };
  if (action === 'read') return { ok: true };
  if (who.role === 'viewer') return { ok: false, reason: `${who.user} is a viewer: viewers can only read (${action} needs operator or admin)` };
  // operator
  if (ADMIN_ONLY.includes(action)) return { ok: false, reason: `${action} needs the admin role (${who.user} is an operator)` };
  if (action === 'create') return { ok: true };
  if (OWNED.includes(action)) {
    const mine = target.owner === who.user || (action === 'cancel' && target.taskUser === who.user);
    if (mine) return { ok: true };
    return { ok: false, reason: `${action}: operators may only act on their own clusters (owner is ${target.owner ?? 'someone else'})` };
  }
  return { ok: false, reason: `${action} is not allowed for ${who.role}` };
}

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}
