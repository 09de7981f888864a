/**
 * The tasks panel: one line per queued or running task with a text progress bar, percent, elapsed
 * time, who started it and the current step. Selectable (mouse too) to show that task's log.
 */
import type { Widgets } from 'blessed';
import type { Task } from '../core/types.js';
import { taskRow } from './model.js';
import { panel, RowList, setFocusStyle, setLabel } from './widgets.js';

/** What the tasks panel shows in one frame. */
export interface TasksView {
  tasks: Task[];
  selected: number;
  focused: boolean;
  width: number;
  nowMs: number;
}

/** The tasks panel widget. */
export class TasksPanel {
  readonly frame: Widgets.BoxElement;
  private readonly rows: RowList;

  constructor(parent: Widgets.Node, onPick: (index: number) => void) {
    this.frame = panel(parent, ' tasks ');
    this.rows = new RowList(this.frame, false, onPick);
  }

  /** Draws the task lines; returns whether anything on screen changed. */
  update(v: TasksView): boolean {
    let changed = setLabel(this.frame, v.tasks.length ? ` tasks (${v.tasks.length} active) ` : ' tasks ');
    changed = setFocusStyle(this.frame, v.focused) || changed;
    changed =
      this.rows.sync(
        v.tasks.map((t) => taskRow(t, Math.max(10, v.width - 2), v.nowMs)),
        'no queued or running tasks',
        v.selected,
      ) || changed;
    return changed;
  }
}
