//! `tui`: the ratatui console. Nothing here yet: the console is issue 5.
