/**
 * Steps that run after a task's script succeeded: routes, the GitOps branch, registration hooks.
 * Each is independent: one failing never stops the others, and none undoes the cluster.
 */
import type { Cluster, TaskKind } from '../core/types.js';

export interface PostStepContext {
  kind: TaskKind;
  taskId: string;
  /** The cluster as the script left it (for a delete: its last record, actual `absent`). */
  cluster: Cluster;
  /** Every cluster in state now (routes are rendered from all of them). */
  clusters: () => Cluster[];
  /** One line into the task's log. */
  log: (line: string) => void;
}

export interface PostStep {
  key: string;
  title: (c: Cluster, kind: TaskKind) => string;
  /** Whether this step runs after a task of `kind`. */
  applies: (kind: TaskKind, c: Cluster) => boolean;
  /** Does the work; throws with a one-line reason (the step's error) on failure. */
  run: (ctx: PostStepContext) => Promise<void>;
  /** GitOps only: the remote head of each branch (null when absent), through the step's own clone and queue. */
  branchStatus?: (names: string[]) => Promise<Map<string, string | null>>;
}
