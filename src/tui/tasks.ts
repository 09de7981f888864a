/**
 * The tasks panel: one line per queued or running task with a text progress bar, percent, elapsed
 * time, who started it and the current step. Selectable (mouse too) to show that task's log.
 */
import type { Widgets } from 'blessed';
import type { Task } from '../core/types.js';
import { taskRow } from './model.js';
import { panel, selectList, setFocusStyle, setLabel } from './widgets.js';

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
  private readonly list: Widgets.ListElement;
  private items: string[] = [];
  private selected = -1;
  private syncing = false;
  private empty = true;

  constructor(parent: Widgets.Node, onPick: (index: number) => void) {
    this.frame = panel(parent, ' tasks ');
    this.list = selectList(this.frame, 0);
    this.list.on('select item', (_el: unknown, i: number) => {
      if (!this.syncing && !this.empty) onPick(i);
    });
  }

  /** Draws the task lines; returns whether anything on screen changed. */
  update(v: TasksView): boolean {
    let changed = setLabel(this.frame, v.tasks.length ? ` tasks (${v.tasks.length} active) ` : ' tasks ');
    changed = setFocusStyle(this.frame, v.focused) || changed;
    const empty = v.tasks.length === 0;
    const items = empty ? ['no queued or running tasks'] : v.tasks.map((t) => taskRow(t, Math.max(10, v.width - 2), v.nowMs));
    if (empty !== this.empty) {
      this.empty = empty;
      (this.list as unknown as { interactive: boolean }).interactive = !empty;
      changed = true;
    }
    if (items.length !== this.items.length || items.some((s, i) => s !== this.items[i])) {
      this.items = items;
      this.syncing = true;
      try {
        this.list.setItems(items as unknown as Widgets.BlessedElement[]);
      } finally {
        this.syncing = false;
      }
      changed = true;
    }
    const sel = empty ? 0 : Math.max(0, Math.min(v.selected, items.length - 1));
    if (sel !== this.selected || changed) {
      this.selected = sel;
      this.syncing = true;
      try {
        this.list.select(sel);
      } finally {
        this.syncing = false;
      }
      changed = true;
    }
    return changed;
  }
}
