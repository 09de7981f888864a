/**
 * The cluster table panel: a header row and a selectable list (mouse clicks select, a click on the
 * selected row opens details). It draws rows computed by the model; it keeps no cluster state.
 */
import blessed from 'blessed';
import type { Widgets } from 'blessed';
import type { Cluster } from '../core/types.js';
import { clusterColumns, clusterRow, headerRow } from './model.js';
import { escapeTags } from './text.js';
import { panel, RowList, setFocusStyle, setLabel, setText } from './widgets.js';

/** What the table shows in one frame. */
export interface TableView {
  clusters: Cluster[];
  selected: number;
  label: string;
  emptyText: string;
  focused: boolean;
  width: number;
  nowMs: number;
}

/** The cluster table widget. */
export class ClusterTable {
  readonly frame: Widgets.BoxElement;
  private readonly head: Widgets.BoxElement;
  private readonly rows: RowList;

  constructor(parent: Widgets.Node, onPick: (index: number) => void, onAction: () => void) {
    this.frame = panel(parent, ' clusters ');
    this.head = blessed.box({ parent: this.frame, left: 0, right: 0, top: 0, height: 1, tags: true, wrap: false, style: { bold: true } });
    this.rows = new RowList(this.frame, 1, onPick);
    this.rows.list.on('action', () => {
      if (!this.rows.empty) onAction();
    });
  }

  /** Draws the rows; returns whether anything on screen changed. */
  update(v: TableView): boolean {
    const cols = clusterColumns(Math.max(10, v.width - 2));
    let changed = setText(this.head, `{bold}${escapeTags(headerRow(cols))}{/bold}`);
    changed = setLabel(this.frame, v.label) || changed;
    changed = setFocusStyle(this.frame, v.focused) || changed;
    changed = this.rows.sync(v.clusters.map((c) => clusterRow(c, cols, v.nowMs)), v.emptyText, v.selected) || changed;
    return changed;
  }

  /** Rows that fit on screen at once (for page up/down). */
  get pageSize(): number {
    return Math.max(1, (this.frame.height as number) - 3);
  }
}
