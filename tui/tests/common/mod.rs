//! Drives the console on the fixture fleet, key by key, without a terminal.

#![allow(dead_code)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use fleetdeck_tui::fixture::{FixtureSource, IntentLog, T0};
use fleetdeck_tui::{App, Key, Options, Source, Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

pub struct Console {
    pub app: App,
    pub source: FixtureSource,
    pub intents: IntentLog,
}

impl Console {
    pub fn new() -> Console {
        Console::with(Options::default())
    }

    pub fn read_only() -> Console {
        Console::with(Options {
            read_only: true,
            ..Options::default()
        })
    }

    pub fn themed(name: &str) -> Console {
        Console::with(Options {
            theme: Theme::named(name).unwrap(),
            ..Options::default()
        })
    }

    /// The console of another member of the fixture fleet.
    pub fn as_member(name: &str) -> Console {
        let mut source = FixtureSource::blocao();
        source.act_as(name);
        Console::on(source, Options::default())
    }

    pub fn with(options: Options) -> Console {
        Console::on(FixtureSource::blocao(), options)
    }

    fn on(mut source: FixtureSource, options: Options) -> Console {
        let intents = source.intents();
        let snap = source.snapshot();
        let mut app = App::new(snap, T0, options);
        app.pump(&mut source);
        Console {
            app,
            source,
            intents,
        }
    }

    /// Presses keys named as in the keymap, separated by spaces
    /// ("j j enter", "ctrl-c", "G").
    pub fn press(&mut self, keys: &str) {
        for name in keys.split_whitespace() {
            let k = Key::parse(name).unwrap_or_else(|e| panic!("{e}"));
            let mods = if matches!(k.code, KeyCode::Char(c) if c.is_ascii_uppercase()) {
                k.mods | KeyModifiers::SHIFT
            } else {
                k.mods
            };
            self.app.on_key(KeyEvent::new(k.code, mods));
            self.app.pump(&mut self.source);
        }
    }

    /// Types text into whatever input is open, one key per character.
    pub fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            self.app
                .on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
            self.app.pump(&mut self.source);
        }
    }

    pub fn buffer(&self, w: u16, h: u16) -> Buffer {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| self.app.draw(f)).unwrap();
        t.backend().buffer().clone()
    }

    pub fn screen(&self, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| self.app.draw(f)).unwrap();
        t.backend().to_string()
    }

    pub fn intents(&self) -> Vec<fleetdeck_tui::Intent> {
        self.intents.lock().unwrap().clone()
    }
}

/// The row of `buf` whose text contains `needle`, and the column where it
/// starts.
pub fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    let area = buf.area;
    for y in 0..area.height {
        let line: String = (0..area.width)
            .map(|x| buf[(x, y)].symbol().to_string())
            .collect();
        if let Some(byte) = line.find(needle) {
            let col = line[..byte].chars().count() as u16;
            return Some((col, y));
        }
    }
    None
}

/// The site ids listed in the overview's sites table, top to bottom.
pub fn listed_sites(screen: &str) -> Vec<String> {
    screen
        .lines()
        .map(|l| l.trim_start_matches('"'))
        .filter(|l| l.starts_with("│● ") || l.starts_with("│○ ") || l.starts_with("│▼ "))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        // Not the health bar's legend ("● green 4 · 40%").
        .filter(|id| id.parse::<u32>().is_err())
        .collect()
}

/// Replaces change ids and member keys (runs of 8 or more hex digits, some
/// of them letters and some digits; also what a dialog leaves of one) with
/// `#`s of the same length: they are hashes of the store's encoding of the
/// fixture, and a change to that encoding should not churn the snapshots.
pub fn redact_ids(screen: &str) -> String {
    let chars: Vec<char> = screen.chars().collect();
    let mut out = String::with_capacity(screen.len());
    let mut i = 0;
    while i < chars.len() {
        let starts =
            chars[i].is_ascii_hexdigit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric());
        if starts {
            let mut j = i;
            while j < chars.len() && chars[j].is_ascii_hexdigit() {
                j += 1;
            }
            let ends = j == chars.len() || !chars[j].is_ascii_alphanumeric();
            let run = &chars[i..j];
            let mixed = run.iter().any(|c| c.is_ascii_digit())
                && run.iter().any(|c| c.is_ascii_alphabetic());
            if ends && j - i >= 8 && mixed {
                out.extend(std::iter::repeat_n('#', j - i));
                i = j;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The text of the rows drawn as selected in a focused table (their
/// background is the theme's selection colour), top to bottom.
pub fn selected_rows(buf: &Buffer, theme: &fleetdeck_tui::Theme) -> Vec<String> {
    let bg = theme.selected().bg;
    let area = buf.area;
    (0..area.height)
        .filter_map(|y| {
            let cells: Vec<usize> = (0..area.width)
                .map(usize::from)
                .filter(|&x| Some(buf[(x as u16, y)].bg) == bg)
                .collect();
            (cells.len() > 3).then(|| {
                cells
                    .iter()
                    .map(|&x| buf[(x as u16, y)].symbol().to_string())
                    .collect::<String>()
                    .trim()
                    .to_string()
            })
        })
        .collect()
}

/// The screen row (y) of the first line of `buf` that contains `needle`.
pub fn row_of(buf: &Buffer, needle: &str) -> Option<u16> {
    find(buf, needle).map(|(_, y)| y)
}

impl Console {
    /// The source's data changed (heartbeats came in): the console takes a
    /// snapshot, as its loop would on the source's change signal.
    pub fn refresh(&mut self) {
        self.app.request_snapshot();
        self.app.pump(&mut self.source);
    }

    /// The fixture's clock and the console's move on to `now_ms`.
    pub fn at(&mut self, now_ms: i64) {
        self.source.set_now(now_ms);
        self.app.tick(now_ms);
        self.refresh();
    }
}
