/**
 * The cluster and task model shared by every layer. Pure data: no I/O here.
 */

/** Providers kindler can drive. */
export const PROVIDERS = ['k3d', 'kind'] as const;
export type Provider = (typeof PROVIDERS)[number];

/** What the user asked for. */
export const DESIRED_STATES = ['present', 'stopped', 'absent'] as const;
export type DesiredState = (typeof DESIRED_STATES)[number];

/** What kindler last knew to be true. `unknown` until checked with the provider. */
export const ACTUAL_STATES = ['creating', 'running', 'stopped', 'deleting', 'absent', 'failed', 'unknown'] as const;
export type ActualState = (typeof ACTUAL_STATES)[number];

/** Per-cluster record of one provisioning step's last outcome (cluster, kubeconfig, route, …). */
export interface StepRecord {
  key: string;
  title: string;
  state: 'running' | 'succeeded' | 'failed' | 'skipped';
  at: string;
  taskId: string;
  error?: string;
}

/** Services a cluster can ask the registration hooks to register it with (create --register, KINDLER_REGISTER). */
export const REGISTER_TARGETS = ['portainer', 'argocd'] as const;
export type RegisterTarget = (typeof REGISTER_TARGETS)[number];

export interface ClusterOptions {
  /** false: no HAProxy route for this cluster (create --no-route, CSV haproxy_route=false). Default true. */
  route?: boolean;
  /** Which registration hooks act for this cluster (create --register, CSV register_portainer). Default none. */
  register?: RegisterTarget[];
}

/** Whether the cluster wants a route (the default) or was created with --no-route. */
export function wantsRoute(c: Pick<Cluster, 'options'>): boolean {
  return c.options?.route !== false;
}

/** The services the cluster asked to be registered with (none unless it asked). */
export function registerOf(c: Pick<Cluster, 'options'>): RegisterTarget[] {
  return c.options?.register ? [...c.options.register] : [];
}

export interface Cluster {
  name: string;
  provider: Provider;
  servers: number;
  agents: number;
  image?: string;
  httpPort: number;
  httpsPort: number;
  apiPort: number;
  subnet?: string;
  owner: string;
  createdAt: string;
  desired: DesiredState;
  actual: ActualState;
  lastError?: string;
  expiresAt?: string;
  kubeContext: string;
  kubeconfig: string;
  nodeAddress?: string;
  /** NAME.BASE_DOMAIN when routes are on. */
  domain?: string;
  /** Ingress NodePort inside the cluster (route backend port), when known (imports). */
  ingressNodePort?: number;
  /**
   * Per-cluster choices (create --no-route / --register, import-csv haproxy_route / register_portainer). Every
   * record written since schemaVersion 2 has them; an absent field means the default: routed, registered nowhere.
   */
  options?: ClusterOptions;
  /** Last task that acted on this cluster. */
  lastTaskId?: string;
  steps?: StepRecord[];
  updatedAt: string;
}

export const TASK_KINDS = ['create', 'delete', 'start', 'stop', 'import-image', 'sync'] as const;
export type TaskKind = (typeof TASK_KINDS)[number];

export const TASK_STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TERMINAL_TASK_STATES: readonly TaskState[] = ['succeeded', 'failed', 'cancelled', 'interrupted'];

export function isTerminal(state: TaskState): boolean {
  return TERMINAL_TASK_STATES.includes(state);
}

export interface TaskStep {
  n: number;
  of: number;
  key: string;
  title: string;
  state: 'running' | 'succeeded' | 'failed';
  startedAt: string;
  finishedAt?: string;
  /** Why this step failed (post steps: route, git branch, hooks). */
  error?: string;
}

export interface Task {
  id: string;
  kind: TaskKind;
  cluster: string;
  user: string;
  state: TaskState;
  progress: number;
  step?: string;
  steps: TaskStep[];
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number | null;
  signal?: string;
  /** The reason a task did not succeed, plus the last stderr lines. */
  error?: { reason: string; stderrTail: string[] };
  notes: string[];
  /** Did the undo work after a failed create run, and how did it end. */
  cleanup?: 'done' | 'failed' | 'not-needed';
  params?: Record<string, string | number | boolean>;
  logLines: number;
}

/** An audit event: who did what to which target, and how it ended. */
export interface AuditEvent {
  at: string;
  user: string;
  fingerprint?: string;
  source: string;
  action: string;
  target: string;
  result: 'ok' | 'refused' | 'failed';
  taskId?: string;
  detail?: string;
}

/** Whether state reaches the disk. */
export interface StoreHealth {
  /** False while the last write failed (or the lock was lost): changes live only in memory. */
  saving: boolean;
  /** Why not, in one line. */
  problem?: string;
  /** When saving stopped (ISO time). */
  since?: string;
  /** Failed writes since then. */
  failures?: number;
  /** The lock was lost: nothing is written again until kindler is restarted. */
  lockLost?: boolean;
}
