//! What the report says about the machine and the process: read from `/proc`, never assumed.

use std::time::{SystemTime, UNIX_EPOCH};

/// The machine a run happened on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPUs this process may run on (what `nproc` prints).
    pub nproc: usize,
    /// Processors listed in `/proc/cpuinfo`.
    pub cpus_online: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub model: String,
    /// `MemTotal` from `/proc/meminfo`, in KiB.
    pub mem_total_kib: Option<u64>,
    /// `Cpus_allowed_list` from `/proc/self/status` (the `taskset` affinity).
    pub cpus_allowed: String,
    /// Kernel release.
    pub kernel: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The value of `key: value` lines in a `/proc` file.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// A kB figure of a `/proc` field (`VmHWM:   123456 kB`).
fn kib(value: &str) -> Option<u64> {
    value.split_whitespace().next()?.parse().ok()
}

impl Machine {
    /// Reads the machine's description.
    pub fn describe() -> Self {
        let cpuinfo = read("/proc/cpuinfo");
        let status = read("/proc/self/status");
        Self {
            nproc: std::thread::available_parallelism().map_or(1, usize::from),
            cpus_online: cpuinfo
                .lines()
                .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
                .count(),
            model: field(&cpuinfo, "model name")
                .unwrap_or("unknown")
                .to_owned(),
            mem_total_kib: field(&read("/proc/meminfo"), "MemTotal").and_then(kib),
            cpus_allowed: field(&status, "Cpus_allowed_list")
                .unwrap_or("unknown")
                .to_owned(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        }
    }
}

/// The process's peak resident set size so far (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    field(&read("/proc/self/status"), "VmHWM").and_then(kib)
}

/// The current resident set size (`VmRSS`), in KiB.
pub fn rss_kib() -> Option<u64> {
    field(&read("/proc/self/status"), "VmRSS").and_then(kib)
}

/// Now, as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }
}
