//! Tables that build only the rows on screen (ratatui #1004: `Table` lays
//! out every row it is given, so a 1,000-site fleet would cost 1,000 rows a
//! frame). A table here is a length, a selection and a function that makes
//! row `i`; drawing asks it for the visible window only.
//!
//! The window is a page: rows `[k·h, (k+1)·h)` for the page holding the
//! selection. It depends on nothing but the selection and the height, so
//! drawing stays a pure function of the state.

use std::ops::Range;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};

use crate::keymap::Action;
use crate::theme::Theme;

/// Rows moved by page up / page down.
pub const PAGE: usize = 10;

/// The selection and filter of one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListState {
    pub selected: usize,
    pub filter: String,
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
}

/// Draws a bordered table, building only the visible rows.
pub fn render<'a>(
    frame: &mut Frame,
    area: Rect,
    spec: Spec<'_>,
    theme: &Theme,
    row: impl Fn(usize) -> Row<'a>,
) {
    let mut title = vec![Span::styled(format!(" {} ", spec.title), theme.title())];
    if !spec.state.filter.is_empty() {
        title.push(Span::styled(
            format!("/{} ", spec.state.filter),
            theme.key(),
        ));
    }
    // Borders (2) and the header (1).
    let height = area.height.saturating_sub(3) as usize;
    let range = window(spec.len, spec.state.selected, height);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border(spec.focused))
        .title(Line::from(title));
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
    if let Some((hits, pane)) = spec.hit {
        let inner = crate::pane::inner(area);
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
    let rows: Vec<Row<'a>> = range.clone().map(row).collect();
    let header = Row::new(spec.header.clone()).style(theme.header());
    let highlight = if spec.focused {
        theme.selected()
    } else {
        theme.selected_unfocused()
    };
    let table = Table::new(rows, spec.widths.clone())
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
            filter: String::new(),
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
                };
                render(f, f.area(), spec, &theme, |i| {
                    built.set(built.get() + 1);
                    Row::new(vec![i.to_string()])
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
}
