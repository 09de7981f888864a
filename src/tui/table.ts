/**
 * The cluster table panel: a header row and a selectable list (mouse clicks select, a click on the
 * selected row opens details). It draws rows computed by the model; it keeps no cluster state.
 */
import type { Widgets } from 'blessed';
import type { Cluster } from '../core/types.js';
import { cachedClusterRow, clusterColumns, columnsKey, headerRow, type SortKey } from './model.js';
import { panel, RowList, setFocusStyle, setLabel } from './widgets.js';

/** What the table shows in one frame. */
export interface TableView {
  clusters: Cluster[];
  selected: number;
  label: string;
  emptyText: string;
  focused: boolean;
  width: number;
  nowMs: number;
  /** The sort column and direction (marked in the header). */
  sort?: { key: SortKey; desc: boolean };
}

/** The cluster table widget. */
export class ClusterTable {
  readonly frame: Widgets.BoxElement;
  private readonly rows: RowList;

  constructor(parent: Widgets.Node, onPick: (index: number) => void, onAction: () => void) {
    this.frame = panel(parent, ' clusters ');
    this.rows = new RowList(this.frame, true, onPick, onAction);
  }

  /** Draws the header and the rows; returns whether anything on screen changed. */
  update(v: TableView): boolean {
    const cols = clusterColumns(Math.max(10, v.width - 2));
    const key = columnsKey(cols);
    let changed = setLabel(this.frame, v.label);
    changed = setFocusStyle(this.frame, v.focused) || changed;
    changed = this.rows.sync(v.clusters.map((c) => cachedClusterRow(c, cols, v.nowMs, key)), v.emptyText, v.selected, headerRow(cols, v.sort)) || changed;
    return changed;
  }

  /** Rows that fit on screen at once (for page up/down). */
  get pageSize(): number {
    return Math.max(1, (this.frame.height as number) - 3);
  }
}
