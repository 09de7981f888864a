/** The verb table, in help order: one file per verb. */
import type { Verb } from './common.js';
import { list } from './list.js';
import { show } from './show.js';
import { create } from './create.js';
import { deleteVerb } from './delete.js';
import { start } from './start.js';
import { stop } from './stop.js';
import { sync } from './sync.js';
import { importImage } from './import-image.js';
import { tasks } from './tasks.js';
import { task } from './task.js';
import { logs } from './logs.js';
import { cancel } from './cancel.js';
import { kubeconfig } from './kubeconfig.js';
import { doctor } from './doctor.js';
import { importCsv } from './import-csv.js';
import { extend } from './extend.js';
import { audit } from './audit.js';
import { reconcile } from './reconcile.js';
import { adopt } from './adopt.js';
import { routes } from './routes.js';
import { whoami } from './whoami.js';
import { users } from './users.js';
import { completion } from './completion.js';
import { completeVerb } from './complete.js';
import { version } from './version.js';

export const VERBS: readonly Verb[] = [
  list,
  show,
  create,
  deleteVerb,
  start,
  stop,
  sync,
  importImage,
  tasks,
  task,
  logs,
  cancel,
  kubeconfig,
  doctor,
  importCsv,
  extend,
  audit,
  reconcile,
  adopt,
  routes,
  whoami,
  users,
  completion,
  completeVerb,
  version,
];
