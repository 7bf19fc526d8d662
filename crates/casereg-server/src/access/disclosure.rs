//! Small-count protection on the wire: core's rule ([`casereg_core::disclosure`]) applied to
//! every count a response carries, in the wire's terms.

use casereg_core::aggregate::Aggregate;
use casereg_core::disclosure::{self, Reported};
use casereg_core::merge::Precision;
use casereg_proto::v1 as pb;

/// A report in the wire's terms.
pub fn wire(reported: Reported) -> pb::Count {
    let precision = match reported.precision {
        Precision::Exact => pb::Precision::Exact,
        Precision::FewerThan => pb::Precision::FewerThan,
        Precision::MoreThan => pb::Precision::MoreThan,
        Precision::AtLeast => pb::Precision::AtLeast,
    };
    pb::Count {
        value: reported.value,
        precision: precision.into(),
    }
}

/// A count as it came over the wire (an unknown precision is read as exact, as the
/// contract's default).
pub fn read(count: &pb::Count) -> Reported {
    let precision = match pb::Precision::try_from(count.precision) {
        Ok(pb::Precision::FewerThan) => Precision::FewerThan,
        Ok(pb::Precision::MoreThan) => Precision::MoreThan,
        Ok(pb::Precision::AtLeast) => Precision::AtLeast,
        Ok(pb::Precision::Exact | pb::Precision::Unspecified) | Err(_) => Precision::Exact,
    };
    Reported {
        value: count.value,
        precision,
    }
}

/// One count as a caller at threshold `k` may see it.
pub fn count(value: u64, k: u64) -> pb::Count {
    wire(disclosure::count(value, k))
}

/// The counts of `aggregate` as a caller at threshold `k` may see them (0 or 1: exact), in
/// the order of its cells; then total, other, none.
pub fn protect(aggregate: &Aggregate, k: u64) -> (Vec<pb::Count>, pb::Count, pb::Count, pb::Count) {
    let shown = disclosure::protect(aggregate, k);
    (
        shown.cells.into_iter().map(wire).collect(),
        wire(shown.total),
        wire(shown.other),
        wire(shown.none),
    )
}
