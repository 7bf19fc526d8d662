//! The registry's shared state: what every handler of every service reads.

use casereg_core::CoreError;
use casereg_core::case::{CaseDraft, TermNote};
use casereg_core::ids::CenterId;
use casereg_core::ontology::Ontology;
use casereg_core::store::Store;
use casereg_proto::v1 as pb;

use crate::access::Access;
use crate::peers::Peers;
use crate::wire::convert;

/// Everything a handler needs; shared by all requests.
#[derive(Debug)]
pub struct Registry {
    /// The durable store.
    pub store: Store,
    /// The loaded HPO release.
    pub hpo: std::sync::Arc<Ontology>,
    /// This server's center (the center of the local administrator when there are no
    /// principals).
    pub center: CenterId,
    /// How callers are identified; checked by the access layer before any handler.
    pub access: Access,
    /// Other centers' registries, asked by network calls.
    pub peers: Peers,
    /// Reject unknown HPO ids instead of warning.
    pub strict_terms: bool,
    /// Counts below this are withheld from callers below record level.
    pub min_cell_count: u64,
}

impl Registry {
    /// Checks the `phenopacket` field of a create, update or import request.
    pub(crate) fn check_record(
        &self,
        phenopacket: Option<&pb::Phenopacket>,
    ) -> Result<(CaseDraft, Vec<TermNote>), CoreError> {
        convert::phenopacket_to_draft(phenopacket, "phenopacket", &self.hpo, self.strict_terms)
    }

    /// [`Self::check_record`] for a record still in its encoding.
    pub(crate) fn check_encoded(
        &self,
        phenopacket: Option<&[u8]>,
    ) -> Result<(CaseDraft, Vec<TermNote>), CoreError> {
        convert::record_to_draft(phenopacket, "phenopacket", &self.hpo, self.strict_terms)
    }
}
