//! Rendering: reads the model (and plans) and writes text. Tables look like kubectl's (upper-case
//! headers, columns three spaces apart, no box drawing); `-o json|yaml` print versioned
//! documents (`apiVersion: bluegreen.io/v1`). Nothing here reads the cluster or the clock:
//! `now` comes in, so output is deterministic in tests.

pub mod history;
pub mod list;
pub mod plan;
pub mod status;

use crate::error::{Error, Result};
use serde::Serialize;

pub const API_VERSION: &str = "bluegreen.io/v1";

/// Whether to colour: only on a terminal, never with NO_COLOR or machine output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub fn good(&self, t: &str) -> String {
        self.paint(t, "32")
    }
    pub fn warn(&self, t: &str) -> String {
        self.paint(t, "33")
    }
    pub fn bold(&self, t: &str) -> String {
        self.paint(t, "1")
    }
}

/// A kubectl-style table: header row, left-aligned columns three spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let all: Vec<&Vec<String>> = std::iter::once(&header).chain(rows).collect();
    let columns = header.len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            all.iter()
                .filter_map(|r| r.get(i))
                .map(|c| visible_width(c))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in all {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(columns) {
            line.push_str(cell);
            if i + 1 < columns {
                line.push_str(&" ".repeat(widths[i] - visible_width(cell) + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The width a terminal gives `s`: colour escapes (`ESC [ … m`) take none.
fn visible_width(s: &str) -> usize {
    let mut width = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for e in chars.by_ref() {
                if e.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            width += 1;
        }
    }
    width
}

/// Upstream's `HumanDuration` (what kubectl's AGE column shows).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    let d = h / 24;
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => {
            if s % 60 == 0 {
                format!("{m}m")
            } else {
                format!("{m}m{}s", s % 60)
            }
        }
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => {
            if m % 60 == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{}m", m % 60)
            }
        }
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => {
            if h % 24 == 0 {
                format!("{d}d")
            } else {
                format!("{d}d{}h", h % 24)
            }
        }
        _ if h < 24 * 365 * 2 => format!("{d}d"),
        _ if h < 24 * 365 * 8 => {
            if d % 365 == 0 {
                format!("{}y", d / 365)
            } else {
                format!("{}y{}d", d / 365, d % 365)
            }
        }
        _ => format!("{}y", d / 365),
    }
}

/// Age of an RFC 3339 timestamp at `now`; `<unknown>` if unparseable.
pub fn age(ts: Option<&str>, now: jiff::Timestamp) -> String {
    match ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

/// The last path segment of an image reference: `registry/x/web:1.2` → `web:1.2`.
pub fn short_image(image: &str) -> &str {
    image.rsplit('/').next().unwrap_or(image)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// Serializes a document for `-o json|yaml`.
pub fn document<T: Serialize>(value: &T, format: Format) -> Result<String> {
    match format {
        Format::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| Error::Other(format!("cannot encode JSON: {e}"))),
        Format::Yaml => serde_saphyr::to_string(value)
            .map_err(|e| Error::Other(format!("cannot encode YAML: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_like_kubectl() {
        let t = table(
            &["NAME", "READY", "AGE"],
            &[
                vec!["shop-blue".into(), "3/3".into(), "12d".into()],
                vec!["x".into(), "0/0".into(), "5s".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME        READY   AGE\nshop-blue   3/3     12d\nx           0/0     5s\n"
        );
    }

    /// Colour escapes take no width: a coloured cell aligns like a plain one.
    #[test]
    fn coloured_cells_align_like_plain_ones() {
        let style = Style { color: true };
        let coloured = table(
            &["COLOR", "ROLE", "READY"],
            &[
                vec!["blue".into(), style.good("active"), "3/3".into()],
                vec!["green".into(), "preview".into(), "0/0".into()],
            ],
        );
        let plain = table(
            &["COLOR", "ROLE", "READY"],
            &[
                vec!["blue".into(), "active".into(), "3/3".into()],
                vec!["green".into(), "preview".into(), "0/0".into()],
            ],
        );
        assert_eq!(coloured.replace(&style.good("active"), "active"), plain);
        assert!(coloured.contains("\x1b["), "{coloured:?}");
    }

    #[test]
    fn ages() {
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(7200), "120m");
        assert_eq!(human_duration(5 * 3600 + 60), "5h1m");
        assert_eq!(human_duration(12 * 86400), "12d");
        assert_eq!(
            short_image("registry.example.com/shop/web:1.4.2"),
            "web:1.4.2"
        );
    }
}
