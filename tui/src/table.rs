//! Tables that build only the rows on screen (ratatui #1004: `Table` lays
//! out every row it is given, so a 1,000-site fleet would cost 1,000 rows a
//! frame). A table here is a length, a selection and a function that makes
//! the cells of row `i`; drawing asks it for the visible window only, and
//! cuts every cell, header and title to its room with `…`.
//!
//! The window is a page: rows `[k·h, (k+1)·h)` for the page holding the
//! selection. It depends on nothing but the selection and the height, so
//! drawing stays a pure function of the state.
//!
//! A table whose rows have ids (sites, nodes, alerts) keeps its selection on
//! an id, not a row number: when a refresh moves the rows, the selection
//! goes with its row ([`ListState::follow`]), and a table of alerts with the
//! focus keeps the selected row where it is on screen ([`hold`]) until the
//! operator moves. Such a table can be sorted by any column ([`Sort`]).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Range;

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};

use crate::keymap::Action;
use crate::text;
use crate::theme::Theme;

/// Rows moved by page up / page down.
pub const PAGE: usize = 10;

/// The column a table is sorted by, and whether the other way round (each
/// column has its own order: worst first, A to Z, fullest first, …).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sort {
    pub column: usize,
    pub reversed: bool,
}

/// The selection, filter and order of one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListState {
    pub selected: usize,
    pub filter: String,
    /// The id of the selected row, in a table whose rows have ids.
    pub key: Option<String>,
    /// The row number the selected row is held at (see [`hold`]).
    pub held: Option<usize>,
    /// The order the operator chose; None: the table's own.
    pub sort: Option<Sort>,
    /// The ids of the rows marked for a bulk action (Space), kept by id
    /// whatever the filter or the order.
    pub marks: BTreeSet<String>,
}

impl ListState {
    /// Applies a motion to a list of `len` rows. Returns false for an action
    /// that is not a motion.
    pub fn motion(&mut self, action: Action, len: usize) -> bool {
        let last = len.saturating_sub(1);
        self.selected = match action {
            Action::Up => self.selected.saturating_sub(1),
            Action::Down => (self.selected + 1).min(last),
            Action::PageUp => self.selected.saturating_sub(PAGE),
            Action::PageDown => (self.selected + PAGE).min(last),
            Action::Top => 0,
            Action::Bottom => last,
            _ => return false,
        };
        true
    }

    /// The selection as an index into a list of `len` rows.
    pub fn index(&self, len: usize) -> Option<usize> {
        (len > 0).then(|| self.selected.min(len - 1))
    }

    /// A motion in a table whose rows, as drawn, have the ids `ids`: the
    /// selection moves and takes the id of its new row. False for an action
    /// that is not a motion.
    pub fn step<S: AsRef<str>>(&mut self, action: Action, ids: &[S]) -> bool {
        if !self.motion(action, ids.len()) {
            return false;
        }
        self.select(self.selected, ids);
        true
    }

    /// Selects row `i` of a table whose rows, as drawn, have the ids `ids`
    /// (a click, a motion): the row is held there from now on.
    pub fn select<S: AsRef<str>>(&mut self, i: usize, ids: &[S]) {
        self.selected = i;
        let at = self.index(ids.len());
        self.key = at.map(|i| ids[i].as_ref().to_string());
        self.held = at;
    }

    /// Puts the selection back on the row of its id after the rows changed
    /// (`ids`: the rows as they will be drawn). When the id is no longer
    /// there, the selection stays at its row number (the nearest row now)
    /// and the id that left is returned, to say so.
    pub fn follow<S: AsRef<str>>(&mut self, ids: &[S]) -> Option<String> {
        let Some(key) = self.key.clone() else {
            self.select(self.selected, ids);
            return None;
        };
        if let Some(i) = ids.iter().position(|id| id.as_ref() == key) {
            self.selected = i;
            return None;
        }
        self.select(self.selected.min(ids.len().saturating_sub(1)), ids);
        Some(key)
    }

    /// A different set of rows (a new filter, a severity): the selection
    /// goes to the first row.
    pub fn restart(&mut self) {
        self.selected = 0;
        self.key = None;
        self.held = None;
    }

    /// Marks the row `id`, or unmarks it: whether it is marked now.
    pub fn toggle_mark(&mut self, id: &str) -> bool {
        if self.marks.remove(id) {
            false
        } else {
            self.marks.insert(id.to_string());
            true
        }
    }

    pub fn is_marked(&self, id: &str) -> bool {
        self.marks.contains(id)
    }

    /// Drops every mark: how many there were.
    pub fn clear_marks(&mut self) -> usize {
        std::mem::take(&mut self.marks).len()
    }

    pub fn set_filter(&mut self, text: &str) {
        self.filter = text.to_string();
        self.restart();
    }

    /// Holds the selected row where it is now (the table took the focus).
    pub fn hold_here(&mut self) {
        self.held = self.key.as_ref().map(|_| self.selected);
    }

    /// The order of the table: the operator's, else the table's own
    /// (`default`, a column).
    pub fn order(&self, default: usize) -> Sort {
        self.sort.unwrap_or(Sort {
            column: default,
            reversed: false,
        })
    }

    /// Sorts by the next of `columns` columns, in its own order. The
    /// selection stays on its id, wherever that row goes.
    pub fn next_sort(&mut self, default: usize, columns: usize) -> Sort {
        let s = self.order(default);
        self.sort = Some(Sort {
            column: (s.column + 1) % columns.max(1),
            reversed: false,
        });
        self.held = None;
        self.order(default)
    }

    /// Sorts the other way round, by the same column.
    pub fn reverse_sort(&mut self, default: usize) -> Sort {
        let s = self.order(default);
        self.sort = Some(Sort {
            reversed: !s.reversed,
            ..s
        });
        self.held = None;
        self.order(default)
    }
}

/// A column a table sorts by: its header, and its order in words each way
/// round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub title: &'static str,
    pub order: &'static str,
    pub reversed: &'static str,
}

/// "sorted by LAST HEARD, longest silent first".
pub fn sorted_by(columns: &[Column], s: Sort) -> String {
    match columns.get(s.column) {
        Some(c) => format!(
            "sorted by {}, {}",
            c.title,
            if s.reversed { c.reversed } else { c.order }
        ),
        None => "sorted".into(),
    }
}

/// Sorts `rows` by `sort`: `cmp(column, a, b)` compares two rows by a
/// column in that column's own order (with a tie-break that makes the
/// order total); reversed, the whole order is turned round.
pub fn sort<T>(rows: &mut [T], sort: Sort, cmp: impl Fn(usize, &T, &T) -> Ordering) {
    rows.sort_by(|a, b| cmp(sort.column, a, b));
    if sort.reversed {
        rows.reverse();
    }
}

/// `rows` in their order, except the selected row (found by `id`), which
/// stays at the row number it is held at: a row that would move under the
/// cursor (an alert inserted above it) keeps its place until the selection
/// moves, and the rows around it flow.
pub fn hold<'k, T>(state: &ListState, rows: &mut Vec<T>, id: impl Fn(&T) -> &'k str) {
    let (Some(key), Some(at)) = (&state.key, state.held) else {
        return;
    };
    if let Some(i) = rows.iter().position(|r| id(r) == key.as_str()) {
        let row = rows.remove(i);
        rows.insert(at.min(rows.len()), row);
    }
}

/// The rows of a table of `len` rows drawn `height` rows high: the page that
/// holds `selected`.
pub fn window(len: usize, selected: usize, height: usize) -> Range<usize> {
    if height == 0 || len == 0 {
        return 0..0;
    }
    let selected = selected.min(len - 1);
    let start = selected / height * height;
    start..(start + height).min(len)
}

/// Whether a row whose text fields are `fields` passes `filter`: every
/// space-separated word of the filter is in some field, ignoring case.
pub fn matches(filter: &str, fields: &[&str]) -> bool {
    let filter = filter.to_lowercase();
    filter
        .split_whitespace()
        .all(|word| fields.iter().any(|f| f.to_lowercase().contains(word)))
}

/// "1 match", "3 matches", "no match".
pub fn match_count(n: usize) -> String {
    match n {
        0 => "no match".into(),
        1 => "1 match".into(),
        n => format!("{n} matches"),
    }
}

/// How to draw one table.
pub struct Spec<'a> {
    pub title: String,
    pub header: Vec<&'a str>,
    pub widths: Vec<Constraint>,
    pub len: usize,
    pub state: &'a ListState,
    pub focused: bool,
    /// Shown when there are no rows.
    pub empty: String,
    /// Where to record the drawn rows for mouse clicks, and as which pane.
    pub hit: Option<(&'a crate::component::Hits, usize)>,
    /// The header column the rows are sorted by (it gets an arrow: ▼ in
    /// the column's own order, ▲ reversed), when the table sorts.
    pub sorted: Option<Sort>,
    /// Whether row `i` is marked, in a table that takes marks: while any
    /// row is, a first column shows ✓ on them and the title counts them.
    pub marked: Option<&'a dyn Fn(usize) -> bool>,
}

/// The widths of the columns of a table `width` cells wide inside its
/// borders, as ratatui's `Table` lays them out (no highlight symbol, one
/// cell between columns).
pub fn column_widths(widths: &[Constraint], width: u16) -> Vec<usize> {
    Layout::horizontal(widths.to_vec())
        .flex(Flex::Start)
        .spacing(1)
        .split(Rect::new(0, 0, width, 1))
        .iter()
        .map(|r| usize::from(r.width))
        .collect()
}

/// Draws a bordered table, building only the visible rows; `row` gives the
/// cells of row `i`, each cut to its column with `…` when longer.
pub fn render<'a>(
    frame: &mut Frame,
    area: Rect,
    spec: Spec<'_>,
    theme: &Theme,
    row: impl Fn(usize) -> Vec<Line<'a>>,
) {
    let marks = spec.state.marks.len();
    let marked = spec.marked.filter(|_| marks > 0);
    let mut title = vec![Span::styled(format!(" {} ", spec.title), theme.title())];
    if marked.is_some() {
        title.push(Span::styled(format!("· {marks} marked "), theme.key()));
    }
    if !spec.state.filter.is_empty() {
        title.push(Span::styled(
            format!("/{} ", spec.state.filter),
            theme.key(),
        ));
        title.push(Span::styled(
            format!("· {} ", match_count(spec.len)),
            theme.dim(),
        ));
    }
    let title = text::fit_line(Line::from(title), usize::from(area.width.saturating_sub(4)));
    // Borders (2) and the header (1).
    let height = area.height.saturating_sub(3) as usize;
    let range = window(spec.len, spec.state.selected, height);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border(spec.focused))
        .title(title);
    let block = if spec.len > height && height > 0 {
        block.title_bottom(
            Line::from(Span::styled(
                format!(" {}–{} of {} ", range.start + 1, range.end, spec.len),
                theme.dim(),
            ))
            .right_aligned(),
        )
    } else {
        block
    };
    if spec.len == 0 {
        let p = Paragraph::new(Line::from(Span::styled(spec.empty, theme.dim()))).block(block);
        frame.render_widget(p, area);
        return;
    }
    let inner = crate::pane::inner(area);
    if let Some((hits, pane)) = spec.hit {
        hits.push(crate::component::Hit {
            rows: Rect {
                y: inner.y + 1,
                height: inner.height.saturating_sub(1),
                ..inner
            },
            pane,
            first: range.start,
            len: spec.len,
        });
    }
    // Marks: a narrow first column.
    let (widths, header_labels) = match marked {
        Some(_) => (
            std::iter::once(Constraint::Length(1))
                .chain(spec.widths.iter().copied())
                .collect(),
            std::iter::once("")
                .chain(spec.header.iter().copied())
                .collect(),
        ),
        None => (spec.widths.clone(), spec.header.clone()),
    };
    let shift = usize::from(marked.is_some());
    let room = column_widths(&widths, inner.width);
    let fit = |i: usize, line: Line<'a>| {
        Cell::from(text::fit_line(line, room.get(i).copied().unwrap_or(0)))
    };
    let rows: Vec<Row<'a>> = range
        .clone()
        .map(|i| {
            let mark =
                marked.map(|m| Line::from(Span::styled(if m(i) { "✓" } else { " " }, theme.key())));
            Row::new(
                mark.into_iter()
                    .chain(row(i))
                    .enumerate()
                    .map(|(c, l)| fit(c, l)),
            )
        })
        .collect();
    let header = Row::new(header_labels.iter().enumerate().map(|(i, label)| {
        let w = room.get(i).copied().unwrap_or(0);
        match spec.sorted {
            Some(s) if s.column + shift == i => {
                let arrow = if s.reversed { "▲" } else { "▼" };
                Cell::from(format!("{}{arrow}", text::fit(label, w.saturating_sub(1))))
            }
            _ => Cell::from(text::fit(label, w)),
        }
    }))
    .style(theme.header());
    let highlight = if spec.focused {
        theme.selected()
    } else {
        theme.selected_unfocused()
    };
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .column_spacing(1)
        .row_highlight_style(highlight);
    let mut state =
        TableState::default().with_selected(spec.state.index(spec.len).map(|i| i - range.start));
    frame.render_stateful_widget(table, area, &mut state);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_page_holding_the_selection() {
        assert_eq!(window(100, 0, 10), 0..10);
        assert_eq!(window(100, 9, 10), 0..10);
        assert_eq!(window(100, 10, 10), 10..20);
        assert_eq!(window(25, 24, 10), 20..25);
        assert_eq!(window(25, 99, 10), 20..25);
        assert_eq!(window(0, 0, 10), 0..0);
        assert_eq!(window(5, 0, 0), 0..0);
    }

    #[test]
    fn filters_match_every_word_somewhere_ignoring_case() {
        assert!(matches("lab", &["BL-LAB-1", "Lab 1"]));
        assert!(matches("lab north", &["BL-LAB-1", "north"]));
        assert!(!matches("lab south", &["BL-LAB-1", "north"]));
        assert!(matches("", &["x"]));
    }

    #[test]
    fn only_the_visible_rows_are_built() {
        use std::cell::Cell;
        let theme = Theme::default();
        let built = Cell::new(0usize);
        let state = ListState {
            selected: 517,
            ..ListState::default()
        };
        let mut terminal =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(60, 23)).unwrap();
        terminal
            .draw(|f| {
                let spec = Spec {
                    title: "sites".into(),
                    header: vec!["N"],
                    widths: vec![Constraint::Fill(1)],
                    len: 1_000,
                    state: &state,
                    focused: true,
                    empty: String::new(),
                    hit: None,
                    sorted: None,
                    marked: None,
                };
                render(f, f.area(), spec, &theme, |i| {
                    built.set(built.get() + 1);
                    vec![Line::from(i.to_string())]
                });
            })
            .unwrap();
        // 23 rows: borders and header leave 20, the page holding row 517.
        assert_eq!(built.get(), 20);
        let screen = terminal.backend().to_string();
        assert!(screen.contains("501–520 of 1000"), "{screen}");
        assert!(screen.contains("517"), "{screen}");
    }

    #[test]
    fn motions_stay_inside_the_list() {
        let mut s = ListState::default();
        assert!(s.motion(Action::Up, 5));
        assert_eq!(s.selected, 0);
        s.motion(Action::Bottom, 5);
        assert_eq!(s.selected, 4);
        s.motion(Action::Down, 5);
        assert_eq!(s.selected, 4);
        assert!(!s.motion(Action::Open, 5));
    }

    #[test]
    fn the_selection_follows_its_id_when_rows_move_and_says_when_it_left() {
        let mut s = ListState::default();
        s.follow(&["a", "b", "c"]);
        assert_eq!(s.key.as_deref(), Some("a"), "the first row, pinned");
        assert!(s.step(Action::Down, &["a", "b", "c"]));
        assert_eq!((s.selected, s.key.as_deref()), (1, Some("b")));
        // A row inserted above: the selection moves with b.
        assert_eq!(s.follow(&["x", "a", "b", "c"]), None);
        assert_eq!(s.selected, 2);
        // b resolves: the nearest row (same row number), and it is said.
        assert_eq!(s.follow(&["x", "a", "c"]), Some("b".to_string()));
        assert_eq!((s.selected, s.key.as_deref()), (2, Some("c")));
        assert_eq!(s.follow(&[] as &[&str]), Some("c".to_string()));
        assert_eq!(s.key, None);
    }

    #[test]
    fn a_held_row_keeps_its_place_until_the_selection_moves() {
        let mut s = ListState::default();
        let ids = ["a", "b", "c"];
        s.step(Action::Down, &ids);
        // Two rows arrive above b: it stays second.
        let mut rows = vec!["x", "y", "a", "b", "c"];
        hold(&s, &mut rows, |r| r);
        assert_eq!(rows, ["x", "b", "y", "a", "c"]);
        assert_eq!(s.follow(&rows), None);
        assert_eq!(s.selected, 1);
        // Moving down selects the row below it on screen, held there.
        s.step(Action::Down, &rows);
        assert_eq!(s.key.as_deref(), Some("y"));
        let mut rows = vec!["x", "y", "a", "b", "c"];
        hold(&s, &mut rows, |r| r);
        assert_eq!(rows, ["x", "a", "y", "b", "c"]);
    }

    #[test]
    fn sorting_cycles_the_columns_and_reverses() {
        let mut s = ListState::default();
        assert_eq!(
            s.order(1),
            Sort {
                column: 1,
                reversed: false
            }
        );
        assert_eq!(s.next_sort(1, 3).column, 2);
        assert_eq!(s.next_sort(1, 3).column, 0);
        assert!(s.reverse_sort(1).reversed);
        assert_eq!(
            s.next_sort(1, 3),
            Sort {
                column: 1,
                reversed: false
            }
        );
        let mut rows = vec![3, 1, 2];
        sort(
            &mut rows,
            Sort {
                column: 0,
                reversed: true,
            },
            |_, a, b| a.cmp(b),
        );
        assert_eq!(rows, [3, 2, 1]);
    }

    #[test]
    fn cells_and_headers_are_cut_with_an_ellipsis() {
        let theme = Theme::default();
        let state = ListState::default();
        let mut terminal =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(24, 5)).unwrap();
        terminal
            .draw(|f| {
                let spec = Spec {
                    title: "alerts".into(),
                    header: vec!["SEVERITY", "ALERT"],
                    widths: vec![Constraint::Length(4), Constraint::Fill(1)],
                    len: 1,
                    state: &state,
                    focused: true,
                    empty: String::new(),
                    hit: None,
                    sorted: Some(Sort {
                        column: 1,
                        reversed: false,
                    }),
                    marked: None,
                };
                render(f, f.area(), spec, &theme, |_| {
                    vec![Line::from("hard"), Line::from("bl-lab-1-hub: rolled back")]
                });
            })
            .unwrap();
        let screen = terminal.backend().to_string();
        assert!(screen.contains("│SEV… ALERT▼"), "{screen}");
        assert!(screen.contains("│hard bl-lab-1-hub: ro…│"), "{screen}");
    }
}
