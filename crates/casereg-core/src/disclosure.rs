//! Small-count protection: the one statement of the rule, applied by the server to every
//! count on its way out and by the merge tests to model what each center answers.
//!
//! Threat model: a caller without record-level access must not learn that between 1 and
//! k−1 cases (k = `--min-cell-count`) share a combination of facts, because in rare
//! diseases such a small group can identify a person. So:
//! - a cell count from 1 to k−1 is reported as "fewer than k" ([`Precision::FewerThan`],
//!   value k), never the value;
//! - when anything in an answer is withheld, its totals (`total`, `other`, `none`) are
//!   blurred to "more than R" where R is the largest multiple of k below the true value,
//!   so subtracting the exact cells from a total leaves k possibilities, not one;
//! - zero is exact (no one is described by an empty cell); k of 0 or 1 means exact access.
//!
//! What this does not protect against: differencing across *several* queries (asking for
//! a group with and without one more condition), repeated queries with overlapping filters,
//! or combining answers from several centers. Restrict who may query at count level
//! accordingly.

use crate::aggregate::Aggregate;
use crate::merge::{Bounds, Precision};

/// A count as a caller may see it: a value and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    /// The count, or the bound `precision` says it is.
    pub value: u64,
    /// How `value` relates to the count.
    pub precision: Precision,
}

impl Reported {
    /// Exactly `value`.
    pub const fn exact(value: u64) -> Self {
        Self {
            value,
            precision: Precision::Exact,
        }
    }

    /// What the report says of the count, read at the reporter's threshold `k`; `None` for
    /// a report no threshold produces.
    pub fn bounds(self, k: u64) -> Option<Bounds> {
        Bounds::from_reported(self.value, self.precision, k)
    }
}

/// Whether `value` is withheld at threshold `k`.
pub fn withheld(value: u64, k: u64) -> bool {
    k > 1 && (1..k).contains(&value)
}

/// One count (a cell, or a count on its own) as a caller at threshold `k` may see it.
pub fn count(value: u64, k: u64) -> Reported {
    if withheld(value, k) {
        Reported {
            value: k,
            precision: Precision::FewerThan,
        }
    } else {
        Reported::exact(value)
    }
}

/// A total: exact unless something in the answer was withheld (`blur`), then blurred to
/// the k-wide range above the largest multiple of k below it.
fn total(value: u64, k: u64, blur: bool) -> Reported {
    if withheld(value, k) {
        return count(value, k);
    }
    if blur && value > 0 {
        Reported {
            value: (value - 1) / k * k,
            precision: Precision::MoreThan,
        }
    } else {
        Reported::exact(value)
    }
}

/// An aggregate's counts as a caller at threshold `k` may see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    /// One per cell, in the aggregate's order.
    pub cells: Vec<Reported>,
    /// The aggregate's total, other and none.
    pub total: Reported,
    pub other: Reported,
    pub none: Reported,
}

/// The counts of `aggregate` as a caller at threshold `k` may see them.
pub fn protect(aggregate: &Aggregate, k: u64) -> Protected {
    let blur = aggregate
        .cells
        .iter()
        .map(|c| c.count)
        .chain([aggregate.other, aggregate.none])
        .any(|v| withheld(v, k));
    Protected {
        cells: aggregate.cells.iter().map(|c| count(c.count, k)).collect(),
        total: total(aggregate.total, k, blur),
        other: total(aggregate.other, k, blur),
        none: total(aggregate.none, k, blur),
    }
}

#[cfg(test)]
mod tests {
    use crate::aggregate::{Cell, GroupKey};

    use super::*;

    fn aggregate(cells: &[u64], total: u64, other: u64, none: u64) -> Aggregate {
        Aggregate {
            cells: cells
                .iter()
                .map(|&count| Cell {
                    keys: vec![GroupKey::Sex(0)],
                    count,
                })
                .collect(),
            total,
            other,
            none,
        }
    }

    fn more_than(value: u64) -> Reported {
        Reported {
            value,
            precision: Precision::MoreThan,
        }
    }

    fn fewer_than(value: u64) -> Reported {
        Reported {
            value,
            precision: Precision::FewerThan,
        }
    }

    #[test]
    fn a_small_cell_is_never_shown_and_totals_do_not_give_it_away() {
        // female 40, male 57, unknown 3: total 100.
        let shown = protect(&aggregate(&[57, 40, 3], 100, 0, 0), 5);
        assert_eq!(
            shown.cells,
            [Reported::exact(57), Reported::exact(40), fewer_than(5)]
        );
        // 100 is blurred to "more than 95": 96..=100, so the third cell could be 1..=3.
        assert_eq!(shown.total, more_than(95));
        assert_eq!(
            (shown.other, shown.none),
            (Reported::exact(0), Reported::exact(0))
        );
        for count in shown.cells.iter().chain([&shown.total]) {
            assert_ne!(count.value, 3);
        }
    }

    #[test]
    fn nothing_small_means_everything_exact_and_k_zero_means_exact() {
        let shown = protect(&aggregate(&[57, 43], 100, 0, 0), 5);
        assert!(
            shown
                .cells
                .iter()
                .chain([&shown.total])
                .all(|c| c.precision == Precision::Exact)
        );
        let shown = protect(&aggregate(&[97, 3], 100, 0, 0), 0);
        assert_eq!(
            (shown.cells[1], shown.total),
            (Reported::exact(3), Reported::exact(100))
        );
    }

    #[test]
    fn small_other_and_none_are_withheld_too() {
        let shown = protect(&aggregate(&[50], 54, 2, 2), 5);
        assert_eq!((shown.other, shown.none), (fewer_than(5), fewer_than(5)));
        assert_eq!(shown.total, more_than(50));
    }

    #[test]
    fn every_report_reads_back_as_bounds_holding_the_count() {
        for k in 0..8 {
            // Totals are blurred only when something was withheld, which takes k ≥ 2.
            for blur in [false, k >= 2] {
                for value in 0..40 {
                    let reported = if blur {
                        total(value, k, true)
                    } else {
                        count(value, k)
                    };
                    let bounds = reported.bounds(k).expect("a possible report");
                    assert!(bounds.contains(value), "{value} at {k}: {reported:?}");
                }
            }
        }
    }
}
