//! Small-count protection, applied in one place to every aggregate on its way out.
//!
//! Threat model: a caller without record-level access must not learn that between 1 and
//! k−1 cases (k = `--min-cell-count`) share a combination of facts, because in rare
//! diseases such a small group can identify a person. So:
//! - a cell count from 1 to k−1 is returned as "fewer than k" (`PRECISION_FEWER_THAN`,
//!   value k), never the value;
//! - when anything in a response is withheld, its totals (`total`, `other`, `none`) are
//!   blurred to "more than R" where R is the largest multiple of k below the true value,
//!   so subtracting the exact cells from a total leaves k possibilities, not one;
//! - zero is exact (no one is described by an empty cell).
//!
//! What this does not protect against: differencing across *several* queries (asking for
//! a group with and without one more condition), repeated queries with overlapping filters,
//! or combining answers from several centers. Those need query auditing or noise, which
//! casereg does not do; restrict who may query (issue-level access control) accordingly.

use casereg_core::aggregate::Aggregate;
use casereg_proto::v1 as pb;

fn exact(value: u64) -> pb::Count {
    pb::Count {
        value,
        precision: pb::Precision::Exact.into(),
    }
}

fn withheld(value: u64, k: u64) -> bool {
    k > 1 && (1..k).contains(&value)
}

/// One count as a caller at threshold `k` may see it.
pub fn count(value: u64, k: u64) -> pb::Count {
    small(value, k)
}

fn small(value: u64, k: u64) -> pb::Count {
    if withheld(value, k) {
        pb::Count {
            value: k,
            precision: pb::Precision::FewerThan.into(),
        }
    } else {
        exact(value)
    }
}

/// A total: exact unless something in the response was withheld, then blurred to the
/// k-wide range above the largest multiple of k below it.
fn total(value: u64, k: u64, blur: bool) -> pb::Count {
    if withheld(value, k) {
        return small(value, k);
    }
    if blur && value > 0 {
        pb::Count {
            value: (value - 1) / k * k,
            precision: pb::Precision::MoreThan.into(),
        }
    } else {
        exact(value)
    }
}

/// The counts of `aggregate` as a caller at threshold `k` may see them (0 or 1: exact), in
/// the order of its cells; then total, other, none.
pub fn protect(aggregate: &Aggregate, k: u64) -> (Vec<pb::Count>, pb::Count, pb::Count, pb::Count) {
    let blur = aggregate
        .cells
        .iter()
        .map(|c| c.count)
        .chain([aggregate.other, aggregate.none])
        .any(|v| withheld(v, k));
    let cells = aggregate.cells.iter().map(|c| small(c.count, k)).collect();
    (
        cells,
        total(aggregate.total, k, blur),
        total(aggregate.other, k, blur),
        total(aggregate.none, k, blur),
    )
}

#[cfg(test)]
mod tests {
    use casereg_core::aggregate::{Cell, GroupKey};

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

    #[test]
    fn a_small_cell_is_never_shown_and_totals_do_not_give_it_away() {
        // female 40, male 57, unknown 3: total 100.
        let (cells, total, other, none) = protect(&aggregate(&[57, 40, 3], 100, 0, 0), 5);
        assert_eq!(cells[2].value, 5);
        assert_eq!(cells[2].precision, pb::Precision::FewerThan as i32);
        assert_eq!(cells[0], exact(57));
        // 100 is blurred to "more than 95": 96..=100, so the third cell could be 1..=3.
        assert_eq!(
            (total.value, total.precision),
            (95, pb::Precision::MoreThan as i32)
        );
        assert_eq!((other, none), (exact(0), exact(0)));
        for count in cells.iter().chain([&total]) {
            assert_ne!(count.value, 3);
        }
    }

    #[test]
    fn nothing_small_means_everything_exact_and_k_zero_means_exact() {
        let (cells, total, ..) = protect(&aggregate(&[57, 43], 100, 0, 0), 5);
        assert!(
            cells
                .iter()
                .chain([&total])
                .all(|c| c.precision == pb::Precision::Exact as i32)
        );
        let (cells, total, ..) = protect(&aggregate(&[97, 3], 100, 0, 0), 0);
        assert_eq!((cells[1], total), (exact(3), exact(100)));
    }

    #[test]
    fn small_other_and_none_are_withheld_too() {
        let (_, total, other, none) = protect(&aggregate(&[50], 54, 2, 2), 5);
        assert_eq!(other.precision, pb::Precision::FewerThan as i32);
        assert_eq!(none.precision, pb::Precision::FewerThan as i32);
        assert_eq!(
            (total.value, total.precision),
            (50, pb::Precision::MoreThan as i32)
        );
    }
}
