/**
 * The cluster table panel: a header row and a selectable list (mouse clicks select, a click on the
 * selected row opens details). It draws rows computed by the model; it keeps no cluster state.
 */
import type { Widgets } from 'blessed';
import type { Cluster } from '../core/types.js';
import { cachedClusterRow, clusterColumns, columnsKey, headerRow, type Column, type SortKey } from './model.js';
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

  /** The columns, their key and the header for the last width and sort (the same frame after frame). */
  private layout: { width: number; sort: string; cols: Column[]; key: string; head: string } | null = null;

  /** Draws the header and the rows; returns whether anything on screen changed. */
  update(v: TableView): boolean {
    const sort = v.sort ? `${v.sort.key}${v.sort.desc ? '-' : '+'}` : '';
    let l = this.layout;
    if (!l || l.width !== v.width || l.sort !== sort) {
      const cols = clusterColumns(Math.max(10, v.width - 2));
      l = this.layout = { width: v.width, sort, cols, key: columnsKey(cols), head: headerRow(cols, v.sort) };
    }
    const { cols, key } = l;
    let changed = setLabel(this.frame, v.label);
    changed = setFocusStyle(this.frame, v.focused) || changed;
    // Only the rows that fit are made (1,000 clusters, 30 on screen).
    changed = this.rows.syncRows(v.clusters.length, (i) => cachedClusterRow(v.clusters[i]!, cols, v.nowMs, key), v.emptyText, v.selected, l.head) || changed;
    return changed;
  }

  /** The rows on screen as of the last update: [first, end) indices into its clusters. */
  get visible(): [number, number] {
    return this.rows.visible;
  }

  /** Rows that fit on screen at once (for page up/down). */
  get pageSize(): number {
    return Math.max(1, (this.frame.height as number) - 3);
  }
}
