//! How the client commands print: tables and short summaries for people, or exactly
//! the API's JSON for scripts (`-o json`).

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// Prints `value` as the API returned it (pretty JSON) on stdout.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A table with a header row; columns are padded to their widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Self {
            rows: vec![header.iter().map(|cell| cell.to_string()).collect()],
        }
    }

    pub fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows.push(cells.iter().map(|cell| printable(cell)).collect());
    }

    pub fn print(&self) {
        print!("{self}");
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let columns = self.rows.first().map_or(0, Vec::len);
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                self.rows
                    .iter()
                    .map(|row| row[column].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                if column + 1 == columns {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[column]));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Aligned `key: value` lines for one record.
pub fn fields(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    for (key, value) in pairs {
        println!(
            "{:<width$}  {}",
            format!("{key}:"),
            printable(value),
            width = width + 1
        );
    }
}

/// Text from the server as a terminal may show it: control characters (escape
/// sequences another user could have put in a name or a message) become `?`.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The same for several lines: line breaks are kept.
pub fn printable_text(text: &str) -> String {
    text.split('\n').map(printable).collect::<Vec<_>>().join("\n")
}

/// `1.2s`, `340ms`, `3m05s`: a duration as people read it.
pub fn duration(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let ms = (to - from).num_milliseconds().max(0);
    match ms {
        ms if ms < 1000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        ms => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// A timestamp to the second, in UTC.
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// An optional cell: `-` when absent.
pub fn or_dash(value: Option<impl std::fmt::Display>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let mut table = Table::new(["ID", "STATUS"]);
        table.row(["a-long-id".into(), "running".into()]);
        table.row(["b".into(), "completed".into()]);
        assert_eq!(
            table.to_string(),
            "ID         STATUS\na-long-id  running\nb          completed\n"
        );
    }

    #[test]
    fn escape_sequences_never_reach_the_terminal() {
        let mut table = Table::new(["NAME"]);
        table.row(["evil\u{1b}]0;owned\u{7}\nname".into()]);
        assert_eq!(table.to_string(), "NAME\nevil?]0;owned??name\n");
    }

    #[test]
    fn durations_read_naturally() {
        let start = DateTime::<Utc>::from_timestamp(0, 0).expect("a time");
        let after = |ms| start + chrono::TimeDelta::milliseconds(ms);
        assert_eq!(duration(start, after(340)), "340ms");
        assert_eq!(duration(start, after(1234)), "1.2s");
        assert_eq!(duration(start, after(185_000)), "3m05s");
    }
}
