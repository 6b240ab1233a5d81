//! Panes: the bordered, titled blocks the views and dialogs are made of,
//! the area inside one, focus moving among a view's panes, and what a view
//! shows instead when its subject left the fleet. Below the views and the
//! tables, so both use it without reaching up.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::theme::Theme;

/// A bordered pane with a title, its border lit when it has the focus.
pub fn block<'a>(theme: &Theme, title: impl Into<String>, focused: bool) -> Block<'a> {
    Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border(focused))
        .title(Span::styled(format!(" {} ", title.into()), theme.title()))
}

/// The part of `area` inside a pane's borders.
pub fn inner(area: Rect) -> Rect {
    Rect {
        x: area.x.saturating_add(1),
        y: area.y.saturating_add(1),
        width: area.width.saturating_sub(2),
        height: area.height.saturating_sub(2),
    }
}

/// Cycles a pane index forwards or backwards among `n` panes.
pub fn cycle(current: usize, n: usize, forward: bool) -> usize {
    if n == 0 {
        return 0;
    }
    if forward {
        (current + 1) % n
    } else {
        (current + n - 1) % n
    }
}

/// What a view draws in place of its panes when its subject (`what`: "node
/// whn-nvr", "site BL-WH-N") is no longer in the fleet.
pub fn gone(frame: &mut Frame, area: Rect, theme: &Theme, what: &str) {
    frame.render_widget(
        Paragraph::new(Span::styled(
            format!("{what} is not in the fleet (removed?); esc goes back"),
            theme.error(),
        )),
        area,
    );
}
