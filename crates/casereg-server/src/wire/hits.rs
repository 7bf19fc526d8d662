//! A stored case as a search hit: its summary, first observed phenotypes with labels, and
//! the record when asked for.

use casereg_core::CoreError;
use casereg_core::ontology::Ontology;
use casereg_proto::v1 as pb;

use crate::wire::convert;

/// Observed phenotypes a search hit lists.
const HIT_PHENOTYPES: usize = 5;

/// A search result: the summary, the first observed phenotypes with labels, and the record
/// when asked for.
pub(crate) fn search_hit(
    case: casereg_core::case::CaseRecord,
    hpo: &Ontology,
    full: bool,
) -> Result<pb::SearchHit, CoreError> {
    let phenotypes = case
        .facts
        .present
        .iter()
        .take(HIT_PHENOTYPES)
        .map(|term| pb::LabelledTerm {
            id: term.to_string(),
            label: hpo.term(*term).map(|t| t.name.clone()).unwrap_or_default(),
        })
        .collect();
    let summary = convert::case_to_summary(case.clone().into());
    let case = if full {
        Some(convert::case_to_wire(case)?)
    } else {
        None
    };
    Ok(pb::SearchHit {
        summary: Some(summary),
        phenotypes,
        case,
    })
}
