//! The row list: which nodes are open, which match the filter, the keyboard cursor.

use egui::{Key, Ui};

use super::{Inventory, NodeKey, OPEN_BY_DEFAULT_MAX_VMS, Row, RowKind, TreeOutput, TreeView};
use crate::gui::Selection;

impl TreeView {
    /// Opens every node of every section.
    pub fn expand_all(&mut self) {
        self.default_open = true;
        self.toggled.clear();
        self.filter_closed.clear();
        self.closed_sections = [false; 4];
        self.dirty = true;
    }

    /// How many rows the tree shows (open and matching the filter), section headers
    /// included, as of the last frame.
    pub fn row_count(&self) -> usize {
        self.rows.len()
    }

    fn key(inv: &Inventory, n: usize) -> NodeKey {
        (inv.nodes[n].section, inv.nodes[n].select.clone())
    }

    fn is_open(&self, inv: &Inventory, n: usize) -> bool {
        let key = Self::key(inv, n);
        if self.needle.is_empty() {
            self.default_open != self.toggled.contains(&key)
        } else {
            !self.filter_closed.contains(&key)
        }
    }

    pub(super) fn set_open(&mut self, inv: &Inventory, n: usize, open: bool) {
        let key = Self::key(inv, n);
        if self.needle.is_empty() {
            if open == self.default_open {
                self.toggled.remove(&key);
            } else {
                self.toggled.insert(key);
            }
        } else if open {
            self.filter_closed.remove(&key);
        } else {
            self.filter_closed.insert(key);
        }
        self.dirty = true;
    }

    /// Brings the rows up to date with the inventory and the filter.
    pub(super) fn update(&mut self, inv: &Inventory, needle: &str) {
        if self.revision != inv.revision {
            if self.name != inv.name {
                // Another topology: start from its default.
                self.name = inv.name.clone();
                self.default_open = inv.vm_count <= OPEN_BY_DEFAULT_MAX_VMS;
                self.toggled.clear();
                self.closed_sections = [false; 4];
                self.offset = 0.0;
            }
            self.revision = inv.revision;
            self.dirty = true;
        }
        if self.needle != needle {
            self.needle = needle.to_string();
            self.filter_closed.clear();
            self.dirty = true;
        }
        if !self.dirty {
            return;
        }
        self.dirty = false;
        // The cursor's row moves with the rebuild: keep it on the same node (a VM shows
        // under its host and its datastore; the keys are unique within a section).
        let cursor_key = self.cursor.and(self.cursor_key.take());
        self.cursor = None;
        let keep = (!self.needle.is_empty()).then(|| matches(inv, &self.needle));
        let kept = |n: usize| keep.as_ref().is_none_or(|k| k[n]);
        let mut rows = Vec::new();
        for (s, roots) in inv.roots.iter().enumerate() {
            let count = roots.iter().filter(|&&n| kept(n)).count();
            if keep.is_some() && count == 0 {
                continue;
            }
            let open = keep.is_some() || !self.closed_sections[s];
            rows.push(Row {
                kind: RowKind::Section {
                    section: s as u8,
                    count,
                },
                depth: 0,
                open,
                has_children: count > 0,
            });
            if open {
                for &n in roots {
                    self.push_rows(inv, n, 1, &kept, &mut rows);
                }
            }
        }
        self.rows = rows;
        if let Some(key) = cursor_key {
            let r = self
                .rows
                .iter()
                .position(|r| matches!(r.kind, RowKind::Node(n) if Self::key(inv, n) == key));
            if let Some(r) = r {
                self.set_cursor(inv, r);
            }
        }
    }

    fn push_rows(
        &self,
        inv: &Inventory,
        n: usize,
        depth: u16,
        kept: &dyn Fn(usize) -> bool,
        rows: &mut Vec<Row>,
    ) {
        if !kept(n) {
            return;
        }
        let node = &inv.nodes[n];
        let has_children = node.children.iter().any(|&c| kept(c));
        let open = has_children && self.is_open(inv, n);
        rows.push(Row {
            kind: RowKind::Node(n),
            depth,
            open,
            has_children,
        });
        if open {
            for &c in &node.children {
                self.push_rows(inv, c, depth + 1, kept, rows);
            }
        }
    }

    /// The row of the selection: the cursor if it is on it, else the first row showing it.
    pub(super) fn selected_row(
        &self,
        inv: &Inventory,
        selection: &Option<Selection>,
    ) -> Option<usize> {
        let sel = selection.as_ref()?;
        let on = |r: usize| matches!(self.rows.get(r), Some(Row { kind: RowKind::Node(n), .. }) if &inv.nodes[*n].select == sel);
        if let Some(c) = self.cursor.filter(|&c| on(c)) {
            return Some(c);
        }
        (0..self.rows.len()).find(|&r| on(r))
    }

    /// The next node row from `from` in direction `step` (+1 or -1), section headers skipped.
    pub(super) fn next_node_row(&self, from: Option<usize>, down: bool) -> Option<usize> {
        let is_node = |r: usize| matches!(self.rows[r].kind, RowKind::Node(_));
        match (from, down) {
            (None, true) => (0..self.rows.len()).find(|&r| is_node(r)),
            (None, false) => (0..self.rows.len()).rev().find(|&r| is_node(r)),
            (Some(f), true) => (f + 1..self.rows.len()).find(|&r| is_node(r)),
            (Some(f), false) => (0..f).rev().find(|&r| is_node(r)),
        }
    }

    pub(super) fn select_row(
        &mut self,
        inv: &Inventory,
        r: usize,
        selection: &mut Option<Selection>,
    ) {
        if let RowKind::Node(n) = self.rows[r].kind {
            *selection = Some(inv.nodes[n].select.clone());
            self.set_cursor(inv, r);
            self.scroll_to = Some(r);
        }
    }

    /// Puts the cursor on row `r` (a node's row).
    pub(super) fn set_cursor(&mut self, inv: &Inventory, r: usize) {
        if let RowKind::Node(n) = self.rows[r].kind {
            self.cursor = Some(r);
            self.cursor_key = Some(Self::key(inv, n));
        }
    }

    /// Arrow keys, Enter: move the selection over the rows, open and close nodes.
    pub(super) fn keyboard(
        &mut self,
        ui: &Ui,
        inv: &Inventory,
        selection: &mut Option<Selection>,
        out: &mut TreeOutput,
    ) {
        let ctx = ui.ctx();
        let free = ctx.memory(|m| m.focused().is_none() && m.top_modal_layer().is_none())
            && !ctx.any_popup_open();
        if !free || self.rows.is_empty() {
            return;
        }
        const KEYS: [Key; 5] = [
            Key::ArrowUp,
            Key::ArrowDown,
            Key::ArrowLeft,
            Key::ArrowRight,
            Key::Enter,
        ];
        if !ctx.input(|i| KEYS.iter().any(|&k| i.key_pressed(k))) {
            return;
        }
        let current = self.selected_row(inv, selection);
        // Take only the keys the tree acts on.
        let take = |k: Key| ctx.input_mut(|i| i.consume_key(egui::Modifiers::NONE, k));
        let (up, down) = (take(Key::ArrowUp), take(Key::ArrowDown));
        let (left, right, enter) = if current.is_some() {
            (
                take(Key::ArrowLeft),
                take(Key::ArrowRight),
                take(Key::Enter),
            )
        } else {
            (false, false, false)
        };
        if up || down {
            if let Some(r) = self.next_node_row(current, down) {
                self.select_row(inv, r, selection);
            }
            return;
        }
        let Some(r) = current else { return };
        let row = self.rows[r];
        let RowKind::Node(n) = row.kind else { return };
        if enter {
            out.show_details = true;
            self.scroll_to = Some(r);
        } else if left {
            if row.open {
                self.set_open(inv, n, false);
            } else if let Some(p) = inv.nodes[n].parent {
                // Up to the parent's row.
                if let Some(pr) = (0..r)
                    .rev()
                    .find(|&k| self.rows[k].kind == RowKind::Node(p))
                {
                    self.select_row(inv, pr, selection);
                }
            }
        } else if right && row.has_children {
            if row.open {
                self.select_row(inv, r + 1, selection);
            } else {
                self.set_open(inv, n, true);
            }
        }
    }
}

/// For every node: does it stay under `needle`? A node stays if its label contains it,
/// if an ancestor's does (with all its descendants), or if a descendant's does.
fn matches(inv: &Inventory, needle: &str) -> Vec<bool> {
    fn mark(inv: &Inventory, n: usize, needle: &str, all: bool, keep: &mut [bool]) -> bool {
        let hit = all || inv.nodes[n].lower.contains(needle);
        let mut any = hit;
        for &c in &inv.nodes[n].children {
            any |= mark(inv, c, needle, hit, keep);
        }
        keep[n] = any;
        any
    }
    let mut keep = vec![false; inv.nodes.len()];
    for roots in &inv.roots {
        for &n in roots {
            mark(inv, n, needle, false, &mut keep);
        }
    }
    keep
}
