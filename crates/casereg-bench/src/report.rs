//! Building the markdown report: lines, tables and number formats.

use std::fmt::Display;

/// A markdown document under construction.
#[derive(Debug, Default)]
pub struct Markdown {
    text: String,
}

impl Markdown {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one line.
    pub fn line(&mut self, line: impl AsRef<str>) {
        self.text.push_str(line.as_ref());
        self.text.push('\n');
    }

    /// Appends an empty line.
    pub fn blank(&mut self) {
        self.text.push('\n');
    }

    /// Appends the setup lines every report starts with: the date, the machine, the CPU
    /// affinity (followed by `affinity_note`), the command and the build.
    pub fn setup(
        &mut self,
        date: &str,
        machine: &crate::machine::Machine,
        argv: &[String],
        affinity_note: &str,
    ) {
        self.line(format!("- Date: {date}"));
        self.line(format!(
            "- Machine: {}; nproc {} (of {} online CPUs); {} memory; Linux {}",
            machine.model,
            machine.nproc,
            machine.cpus_online,
            machine.mem_total_kib.map_or_else(
                || "unknown".to_owned(),
                |k| format!("{:.1} GiB", k as f64 / 1048576.0)
            ),
            machine.kernel
        ));
        self.line(format!(
            "- CPU affinity (`Cpus_allowed_list`): {}{affinity_note}",
            machine.cpus_allowed
        ));
        self.line(format!("- Command: `{}`", command_line(argv)));
        self.line(format!(
            "- Build: {}",
            if cfg!(debug_assertions) {
                "debug (timings are not representative)"
            } else {
                "release"
            }
        ));
    }

    /// Appends a table: a header row, a separator (numeric columns right-aligned when
    /// `right` says so) and the rows.
    pub fn table(&mut self, header: &[&str], right: &[bool], rows: &[Vec<String>]) {
        self.line(format!("| {} |", header.join(" | ")));
        let separators: Vec<&str> = (0..header.len())
            .map(|i| {
                if right.get(i).copied().unwrap_or(false) {
                    "---:"
                } else {
                    "---"
                }
            })
            .collect();
        self.line(format!("| {} |", separators.join(" | ")));
        for row in rows {
            self.line(format!("| {} |", row.join(" | ")));
        }
        self.blank();
    }

    /// The document.
    pub fn into_string(self) -> String {
        self.text
    }
}

/// An integer with thousands separators: `1,000,000`.
pub fn grouped(value: impl Display) -> String {
    let digits = value.to_string();
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(rest) => ("-", rest.to_owned()),
        None => ("", digits),
    };
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// A number with a precision suited to its size: three significant digits below 100, none
/// after the point above (latencies in µs, sizes in MiB, times in ms).
pub fn num(value: f64) -> String {
    if value >= 100.0 {
        grouped(value.round() as i64)
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A ratio, two decimals (`×` appended).
pub fn ratio(value: f64) -> String {
    if value >= 100.0 {
        format!("{}×", grouped(value.round() as i64))
    } else {
        format!("{value:.2}×")
    }
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> String {
    num(bytes as f64 / (1024.0 * 1024.0))
}

/// A command line as one string, quoting arguments a shell would split.
pub fn command_line(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty()
                || a.chars()
                    .any(|c| c.is_whitespace() || "'\"$`\\".contains(c))
            {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(-1234), "-1,234");
        assert_eq!(num(1234.4), "1,234");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(ratio(2.5), "2.50×");
        assert_eq!(command_line(&["a".to_owned(), "b c".to_owned()]), "a 'b c'");
    }
}
