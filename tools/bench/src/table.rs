//! Tables printed to the terminal and written as Markdown, and the few
//! statistics the runs need.

use std::fmt::Write as _;
use std::time::Duration;

/// A titled table of text cells.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) title: String,
    pub(crate) headers: Vec<&'static str>,
    pub(crate) rows: Vec<Vec<String>>,
    /// Lines printed under the table.
    pub(crate) notes: Vec<String>,
}

impl Table {
    pub(crate) fn new(title: String, headers: Vec<&'static str>) -> Self {
        Self {
            title,
            headers,
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Aligned columns (text left in the first column, right elsewhere).
    pub(crate) fn text(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|column| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(column))
                    .map(|cell| cell.chars().count())
                    .chain([self.headers[column].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut line = String::new();
            for (column, cell) in cells.enumerate() {
                let pad = widths[column].saturating_sub(cell.chars().count());
                if column == 0 {
                    let _ = write!(line, "{cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(line, "  {}{cell}", " ".repeat(pad));
                }
            }
            line.trim_end().to_owned()
        };
        let mut out = format!("{}\n", self.title);
        out += &line(&mut self.headers.iter().copied());
        out.push('\n');
        for row in &self.rows {
            out += &line(&mut row.iter().map(String::as_str));
            out.push('\n');
        }
        for note in &self.notes {
            let _ = writeln!(out, "{note}");
        }
        out
    }

    /// A Markdown section: the title as a heading, the table, the notes.
    pub(crate) fn markdown(&self) -> String {
        let row = |cells: &mut dyn Iterator<Item = &str>| {
            let cells: Vec<String> = cells.map(|cell| cell.replace('|', "\\|")).collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let mut out = format!("### {}\n\n", self.title);
        out += &row(&mut self.headers.iter().copied());
        out += &row(&mut self
            .headers
            .iter()
            .enumerate()
            .map(|(column, _)| if column == 0 { "---" } else { "---:" }));
        for cells in &self.rows {
            out += &row(&mut cells.iter().map(String::as_str));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                let _ = writeln!(out, "{note}  ");
            }
        }
        out
    }
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when empty.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
    }
}

/// How far `values` disagree: (max − min) / median, as a fraction.
pub(crate) fn spread(values: &[f64]) -> Option<f64> {
    let median = median(values)?;
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    (median != 0.0).then(|| (max - min) / median)
}

/// `value / base` as `×1.23`, or `–` when there is no base to compare with.
pub(crate) fn ratio(value: f64, base: f64) -> String {
    if base == 0.0 || !base.is_finite() || !value.is_finite() {
        "–".to_owned()
    } else {
        format!("×{:.2}", value / base)
    }
}

/// A latency for a table: `635 µs`, `1.93 ms`, `2.10 s`.
pub(crate) fn latency(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.0} µs")
    } else if micros < 1e6 {
        format!("{:.2} ms", micros / 1e3)
    } else {
        format!("{:.2} s", micros / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut table = Table::new("GET".to_owned(), vec!["config", "req/s"]);
        table.rows.push(vec!["off".to_owned(), "12345".to_owned()]);
        table.rows.push(vec!["stuck".to_owned(), "9".to_owned()]);
        table.notes.push("medians of 3 rounds".to_owned());
        table
    }

    #[test]
    fn text_tables_align_the_first_column_left_and_the_others_right() {
        assert_eq!(
            table().text(),
            "GET\nconfig  req/s\noff     12345\nstuck       9\nmedians of 3 rounds\n"
        );
    }

    #[test]
    fn markdown_tables_have_a_heading_and_right_aligned_figures() {
        assert_eq!(
            table().markdown(),
            "### GET\n\n| config | req/s |\n| --- | ---: |\n| off | 12345 |\n| stuck | 9 |\n\nmedians of 3 rounds  \n"
        );
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(spread(&[90.0, 100.0, 110.0]), Some(0.2));
    }

    #[test]
    fn figures_are_shown_in_readable_units() {
        assert_eq!(latency(Duration::from_micros(635)), "635 µs");
        assert_eq!(latency(Duration::from_micros(1930)), "1.93 ms");
        assert_eq!(ratio(2.0, 4.0), "×0.50");
        assert_eq!(ratio(2.0, 0.0), "–");
    }
}
