//! The `Ontology` gRPC service: term look-up, search and relatives over the loaded HPO.

use std::sync::Arc;

use casereg_core::ids::TermId;
use casereg_core::limits::{DEFAULT_TERM_RESULTS, MAX_TERM_QUERY_BYTES, MAX_TERM_RESULTS};
use casereg_core::ontology::{Resolution, Term};
use casereg_proto::v1 as pb;
use casereg_proto::v1::ontology_server::Ontology as OntologyApi;
use tonic::{Request, Response, Status};

use crate::grpc::status::invalid_field;
use crate::registry::Registry;

/// The gRPC face of the registry's ontology.
#[derive(Debug, Clone)]
pub struct OntologyService {
    registry: Arc<Registry>,
}

impl OntologyService {
    /// Serves the ontology of `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    fn term_ref(&self, id: TermId) -> pb::TermRef {
        pb::TermRef {
            id: id.to_string(),
            name: self
                .registry
                .hpo
                .term(id)
                .map(|t| t.name.clone())
                .unwrap_or_default(),
        }
    }

    fn term(&self, term: &Term) -> pb::Term {
        let Term {
            id,
            name,
            synonyms,
            parents,
            obsolete,
            replaced_by,
        } = term;
        pb::Term {
            id: id.to_string(),
            name: name.clone(),
            synonyms: synonyms.clone(),
            parents: parents.iter().map(|p| self.term_ref(*p)).collect(),
            obsolete: *obsolete,
            replaced_by: replaced_by.map(|r| r.to_string()).unwrap_or_default(),
            child_count: u32::try_from(self.registry.hpo.children(*id).len()).unwrap_or(u32::MAX),
        }
    }

    /// Parses `id` and finds the term it stands for (alt ids → primary; obsolete ids →
    /// replacement when `follow_replacement`).
    fn resolve(&self, id: &str, follow_replacement: bool) -> Result<&Term, Status> {
        let term_id = TermId::parse(id).map_err(|e| invalid_field("id", e.0))?;
        let hpo = &self.registry.hpo;
        let resolved = match hpo.resolve(term_id) {
            Resolution::Current(t) | Resolution::AltId(t) | Resolution::Obsolete(t) => t,
            Resolution::ObsoleteReplaced(replacement) if follow_replacement => replacement,
            Resolution::ObsoleteReplaced(_) => term_id,
            Resolution::Unknown(t) => {
                return Err(Status::not_found(format!(
                    "{t} is not in HPO release {}",
                    hpo.version()
                )));
            }
        };
        hpo.term(resolved).ok_or_else(|| {
            Status::not_found(format!(
                "{resolved} is not in HPO release {}",
                hpo.version()
            ))
        })
    }

    fn relatives(&self, id: &str, up: bool) -> Result<pb::GetRelativesResponse, Status> {
        let term = self.resolve(id, true)?;
        let hpo = &self.registry.hpo;
        let ids = if up {
            hpo.ancestors(term.id)
        } else {
            hpo.descendants(term.id)
        };
        Ok(pb::GetRelativesResponse {
            term: Some(self.term_ref(term.id)),
            relatives: ids.into_iter().map(|t| self.term_ref(t)).collect(),
        })
    }
}

#[tonic::async_trait]
impl OntologyApi for OntologyService {
    #[tracing::instrument(skip_all)]
    async fn get_term(
        &self,
        request: Request<pb::GetTermRequest>,
    ) -> Result<Response<pb::GetTermResponse>, Status> {
        let pb::GetTermRequest { id } = request.into_inner();
        let term = self.resolve(&id, false)?;
        let canonical = term.id.to_string();
        Ok(Response::new(pb::GetTermResponse {
            term: Some(self.term(term)),
            requested_id: if canonical == id { String::new() } else { id },
            release: self.registry.hpo.version().to_owned(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn search_terms(
        &self,
        request: Request<pb::SearchTermsRequest>,
    ) -> Result<Response<pb::SearchTermsResponse>, Status> {
        let pb::SearchTermsRequest {
            query,
            limit,
            include_obsolete,
        } = request.into_inner();
        if query.trim().is_empty() || query.len() > MAX_TERM_QUERY_BYTES {
            return Err(invalid_field(
                "query",
                format!(
                    "must hold 1 to {MAX_TERM_QUERY_BYTES} bytes of text, got {}",
                    query.len()
                ),
            ));
        }
        let limit = match limit {
            0 => DEFAULT_TERM_RESULTS,
            n if n > MAX_TERM_RESULTS => {
                return Err(invalid_field(
                    "limit",
                    format!("is {n}; the limit is {MAX_TERM_RESULTS}"),
                ));
            }
            n => n,
        };
        let (hits, total) = self
            .registry
            .hpo
            .search(&query, limit as usize, include_obsolete);
        Ok(Response::new(pb::SearchTermsResponse {
            matches: hits
                .into_iter()
                .map(|hit| pb::TermMatch {
                    term: Some(pb::TermRef {
                        id: hit.term.id.to_string(),
                        name: hit.term.name.clone(),
                    }),
                    matched: hit.matched.to_owned(),
                    synonym: hit.synonym,
                })
                .collect(),
            total: u32::try_from(total).unwrap_or(u32::MAX),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_ancestors(
        &self,
        request: Request<pb::GetRelativesRequest>,
    ) -> Result<Response<pb::GetRelativesResponse>, Status> {
        Ok(Response::new(
            self.relatives(&request.into_inner().id, true)?,
        ))
    }

    #[tracing::instrument(skip_all)]
    async fn get_descendants(
        &self,
        request: Request<pb::GetRelativesRequest>,
    ) -> Result<Response<pb::GetRelativesResponse>, Status> {
        Ok(Response::new(
            self.relatives(&request.into_inner().id, false)?,
        ))
    }
}
