//! Ages as search reads them: whole days since birth (negative before birth), from a number
//! and a unit or from an ISO 8601 duration. One calendar for the records and the queries, so
//! that `onset>=40y` and a recorded `P40Y` agree on where 40 years begins.

/// A unit of age in queries and durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeUnit {
    /// 365.25 days.
    Years,
    /// A twelfth of a year (30.4375 days).
    Months,
    /// 7 days.
    Weeks,
    /// 1 day.
    Days,
}

impl AgeUnit {
    /// The unit a query writes as `y`, `m`, `w` or `d`.
    pub fn from_suffix(suffix: char) -> Option<Self> {
        match suffix {
            'y' | 'Y' => Some(Self::Years),
            'm' | 'M' => Some(Self::Months),
            'w' | 'W' => Some(Self::Weeks),
            'd' | 'D' => Some(Self::Days),
            _ => None,
        }
    }
}

/// `amount` of `unit` in whole days (rounded down), saturating far beyond any human age.
pub fn days(amount: u64, unit: AgeUnit) -> i64 {
    // A year is 1461/4 days and a month a twelfth of that.
    let (numerator, denominator): (u64, u64) = match unit {
        AgeUnit::Years => (1461, 4),
        AgeUnit::Months => (1461, 48),
        AgeUnit::Weeks => (7, 1),
        AgeUnit::Days => (1, 1),
    };
    i64::try_from(amount.saturating_mul(numerator) / denominator).unwrap_or(i64::MAX)
}

/// Days in an ISO 8601 duration such as `P40Y6M`, `P3W`, `P2Y3M10D` or `P1DT12H` (time parts
/// are ignored below a day). `None` if it is not a duration of that form.
pub fn iso_duration_days(text: &str) -> Option<i64> {
    let rest = text.strip_prefix('P')?;
    let date_part = rest.split('T').next().unwrap_or("");
    if rest.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in date_part.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = AgeUnit::from_suffix(c)?;
        let amount: u64 = number.parse().ok()?;
        number.clear();
        total = total.saturating_add(days(amount, unit));
    }
    number.is_empty().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_share_one_calendar() {
        assert_eq!(days(1, AgeUnit::Years), 365);
        assert_eq!(days(4, AgeUnit::Years), 1461);
        assert_eq!(days(40, AgeUnit::Years), 14_610);
        assert_eq!(days(12, AgeUnit::Months), 365);
        assert_eq!(days(6, AgeUnit::Months), 182);
        assert_eq!(days(3, AgeUnit::Weeks), 21);
        assert_eq!(
            days(u64::MAX, AgeUnit::Years),
            i64::try_from(u64::MAX / 4).unwrap()
        );
    }

    #[test]
    fn iso_durations() {
        assert_eq!(iso_duration_days("P40Y"), Some(14_610));
        assert_eq!(iso_duration_days("P40Y6M"), Some(14_610 + 182));
        assert_eq!(iso_duration_days("P2W"), Some(14));
        assert_eq!(iso_duration_days("P1DT12H"), Some(1));
        assert_eq!(iso_duration_days("P"), None);
        assert_eq!(iso_duration_days("40Y"), None);
        assert_eq!(iso_duration_days("P4X"), None);
        assert_eq!(iso_duration_days("P4"), None);
    }
}
