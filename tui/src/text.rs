//! How times, durations and quantities read on screen, how text is cut to
//! its room (always ending with `…`, never silently) or laid out on lines
//! without breaking a value, and the duration the silence prompt parses. No
//! clock here: every "ago" takes `now_ms`.

use ratatui::text::{Line, Span};

/// "4s", "12m", "3h", "2d" for a span of milliseconds (negative spans read as
/// zero).
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => {
            let (h, m) = (s / 3600, s % 3600 / 60);
            if m == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{m:02}m")
            }
        }
        _ => {
            let (d, h) = (s / 86_400, s % 86_400 / 3600);
            if h == 0 {
                format!("{d}d")
            } else {
                format!("{d}d{h}h")
            }
        }
    }
}

/// "12s ago", "in 5m".
pub fn ago(now_ms: i64, then_ms: i64) -> String {
    if then_ms > now_ms {
        format!("in {}", duration(then_ms - now_ms))
    } else {
        format!("{} ago", duration(now_ms - then_ms))
    }
}

/// The first 12 characters of an id.
pub fn short(id: &str) -> &str {
    match id.char_indices().nth(12) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// "2025-06-15 14:03" (UTC) for unix milliseconds.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// "2025-06-15 14:03:27" (UTC): a moment named to the second (as-of mode).
pub fn utc_seconds(ms: i64) -> String {
    format!("{}:{:02}", utc(ms), ms.div_euclid(1000).rem_euclid(60))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// "14:32 UTC" for a time on the same UTC day as `now_ms`, else
/// "2025-06-16 14:32 UTC".
pub fn clock(now_ms: i64, ms: i64) -> String {
    let (today, then) = (utc(now_ms), utc(ms));
    match (today.split_once(' '), then.split_once(' ')) {
        (Some((d1, _)), Some((d2, hm))) if d1 == d2 => format!("{hm} UTC"),
        _ => format!("{then} UTC"),
    }
}

/// "42%" for a percentage, "-" for none.
pub fn pct(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.0}%"),
        _ => "-".into(),
    }
}

/// Parses a duration as typed in the silence prompt: `90s`, `30m`, `2h`,
/// `1d`, `1h30m`, `1w`; a bare number is minutes.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let bad = || format!("'{s}' is not a duration: expected e.g. 30m, 2h, 1d or 1h30m");
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = t.parse::<i64>() {
        return if n > 0 {
            Ok(n.saturating_mul(60_000))
        } else {
            Err(bad())
        };
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            ' ' if num.is_empty() => continue,
            _ => return Err(bad()),
        };
        let n: i64 = num.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() || total <= 0 {
        return Err(bad());
    }
    Ok(total)
}

/// Cuts `s` to `width` characters, with an ellipsis when it was longer.
pub fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// The width of one character on screen (2 for wide ones).
fn char_width(c: char) -> usize {
    let mut buf = [0u8; 4];
    Span::raw(&*c.encode_utf8(&mut buf)).width()
}

/// Cuts a line of spans to `width` cells, ending with `…` (in the style of
/// the span it cuts) when it was longer.
pub fn fit_line(line: Line<'_>, width: usize) -> Line<'_> {
    if line.width() <= width {
        return line;
    }
    let Line {
        style,
        alignment,
        spans,
    } = line;
    let mut out: Vec<Span> = Vec::new();
    let mut room = width.saturating_sub(1);
    for span in spans {
        if width == 0 {
            break;
        }
        let mut kept = String::new();
        let mut cut = false;
        for c in span.content.chars() {
            let w = char_width(c);
            if w > room {
                cut = true;
                break;
            }
            room -= w;
            kept.push(c);
        }
        if cut {
            kept.push('…');
            out.push(Span::styled(kept, span.style));
            break;
        }
        out.push(Span::styled(kept, span.style));
    }
    let mut line = Line::from(out).style(style);
    line.alignment = alignment;
    line
}

/// Lays out `fields` (each a value with its label, never broken) on lines
/// `width` wide, two spaces apart: a field that does not fit on a line
/// starts the next; one wider than a whole line is cut with `…`.
pub fn flow(fields: Vec<Vec<Span<'static>>>, width: usize) -> Vec<Line<'static>> {
    let mut lines: Vec<Line> = Vec::new();
    let mut current: Vec<Span> = Vec::new();
    let mut used = 0usize;
    for field in fields {
        let field = fit_line(Line::from(field), width);
        let w = field.width();
        if w == 0 {
            continue;
        }
        if used > 0 && used + 2 + w > width {
            lines.push(Line::from(std::mem::take(&mut current)));
            used = 0;
        }
        if used > 0 {
            current.push(Span::raw("  "));
            used += 2;
        }
        used += w;
        current.extend(field.spans);
    }
    if !current.is_empty() {
        lines.push(Line::from(current));
    }
    lines
}

/// How many rows `text` takes wrapped at word boundaries inside a pane
/// `width` wide (borders excluded).
pub fn wrapped_rows(text: &str, width: u16) -> u16 {
    let room = usize::from(width.saturating_sub(2).max(1));
    let mut rows = 1u16;
    let mut used = 0usize;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let w = word.chars().count();
        let need = if used == 0 { w } else { used + 1 + w };
        if need <= room {
            used = need;
        } else {
            rows += 1;
            used = w.min(room);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_largest_sensible_unit() {
        assert_eq!(duration(4_000), "4s");
        assert_eq!(duration(125_000), "2m");
        assert_eq!(duration(3_600_000), "1h");
        assert_eq!(duration(5_400_000), "1h30m");
        assert_eq!(duration(2 * 86_400_000 + 3_600_000), "2d1h");
        assert_eq!(ago(10_000, 4_000), "6s ago");
        assert_eq!(ago(0, 60_000), "in 1m");
    }

    #[test]
    fn utc_dates_match_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_750_000_000_000), "2025-06-15 15:06");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00");
    }

    #[test]
    fn silence_durations_parse_and_bad_ones_are_named() {
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration(" 2d "), Ok(172_800_000));
        assert_eq!(parse_duration("15"), Ok(900_000));
        for bad in ["", "h", "1x", "0m", "-5", "1h3"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("not a duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn fit_cuts_with_an_ellipsis() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }

    #[test]
    fn a_cut_line_ends_with_an_ellipsis_in_the_style_of_what_it_cut() {
        use ratatui::style::{Color, Style};
        let red = Style::new().fg(Color::Red);
        let line = Line::from(vec![Span::raw("node "), Span::styled("rolled back", red)]);
        let cut = fit_line(line.clone(), 10);
        assert_eq!(cut.to_string(), "node roll…");
        assert_eq!(cut.width(), 10);
        assert_eq!(cut.spans.last().map(|s| s.style), Some(red));
        assert_eq!(fit_line(line.clone(), 16).to_string(), "node rolled back");
        assert_eq!(fit_line(line, 0).to_string(), "");
    }

    #[test]
    fn fields_flow_onto_lines_without_breaking_a_value() {
        let fields = vec![
            vec![Span::raw("BL-WH-N")],
            vec![Span::raw("heard "), Span::raw("2s ago")],
            vec![Span::raw("3/3 nodes up")],
        ];
        let lines = flow(fields, 22);
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(text, ["BL-WH-N  heard 2s ago", "3/3 nodes up"]);
        let long = flow(vec![vec![Span::raw("a-very-long-node-name")]], 8);
        assert_eq!(long[0].to_string(), "a-very-…");
    }

    #[test]
    fn clock_leaves_out_the_date_of_today() {
        assert_eq!(clock(1_750_000_000_000, 1_750_001_800_000), "15:36 UTC");
        assert_eq!(
            clock(1_750_000_000_000, 1_750_000_000_000 + 86_400_000),
            "2025-06-16 15:06 UTC"
        );
    }
}
