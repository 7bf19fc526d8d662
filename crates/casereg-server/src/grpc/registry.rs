//! The `CaseRegistry` gRPC service: thin handlers that convert, call the core on a blocking
//! thread (sled I/O and flushes block), and convert back.

use std::sync::Arc;

use casereg_core::CoreError;
use casereg_core::case::{TermNote, UnixMicros};
use casereg_core::ids::CaseId;
use casereg_core::limits::{
    MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_ID_BYTES, MAX_MESSAGE_BYTES, MAX_PAGE_SIZE,
    MAX_RECORD_BYTES, MAX_TEXT_BYTES,
};
use casereg_core::ontology::Ontology;
use casereg_proto::v1 as pb;
use casereg_proto::v1::case_registry_server::CaseRegistry;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::access::principals::Level;
use crate::access::{Caller, disclosure};
use crate::grpc::import;
use crate::grpc::status::{invalid_field, to_status};
use crate::registry::Registry;
use crate::wire::hits::search_hit;
use crate::wire::{convert, filter};

/// The gRPC face of a [`Registry`].
#[derive(Debug, Clone)]
pub struct CaseRegistryService {
    registry: Arc<Registry>,
}

impl CaseRegistryService {
    /// Serves `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    /// Runs `work` on the blocking pool with the registry, mapping core errors to statuses.
    async fn blocking<T, F>(&self, work: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Registry) -> Result<T, CoreError> + Send + 'static,
    {
        let registry = Arc::clone(&self.registry);
        tokio::task::spawn_blocking(move || work(&registry))
            .await
            .map_err(|e| Status::internal(format!("request task failed: {e}")))?
            .map_err(to_status)
    }
}

impl CaseRegistryService {
    /// A count as `caller`'s level may see it: exact at record level, small values withheld
    /// at count level, nothing at boolean level.
    fn visible_count(&self, caller: &Caller, value: u64) -> Option<pb::Count> {
        match caller.level() {
            Level::Boolean => None,
            Level::Count | Level::Record => Some(disclosure::count(
                value,
                caller.min_cell_count(self.registry.min_cell_count),
            )),
        }
    }
}

fn parse_case_id(text: &str) -> Result<CaseId, Status> {
    CaseId::parse(text).map_err(|e| invalid_field("case_id", e.0))
}

fn warnings(notes: Vec<TermNote>, hpo: &Ontology) -> Vec<pb::TermWarning> {
    notes
        .into_iter()
        .map(|note| convert::note_to_warning(note, hpo))
        .collect()
}

#[tonic::async_trait]
impl CaseRegistry for CaseRegistryService {
    #[tracing::instrument(skip_all, fields(phenopacket_id))]
    async fn create_case(
        &self,
        request: Request<pb::CreateCaseRequest>,
    ) -> Result<Response<pb::CreateCaseResponse>, Status> {
        let actor = Caller::of(&request)?.actor();
        let pb::CreateCaseRequest { phenopacket } = request.into_inner();
        if let Some(p) = &phenopacket {
            tracing::Span::current().record("phenopacket_id", p.id.as_str());
        }
        let response = self
            .blocking(move |r| {
                let (draft, notes) = r.check_record(phenopacket.as_ref())?;
                let outcome = r.store.create(&actor, draft, UnixMicros::now())?;
                tracing::info!(case_id = %outcome.case.id, created = outcome.created, "create");
                Ok(pb::CreateCaseResponse {
                    created: outcome.created,
                    case: Some(convert::case_to_wire(outcome.case)?),
                    warnings: warnings(notes, &r.hpo),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all, fields(case_id))]
    async fn get_case(
        &self,
        request: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::GetCaseResponse>, Status> {
        let pb::GetCaseRequest {
            case_id,
            version,
            include_retracted,
        } = request.into_inner();
        tracing::Span::current().record("case_id", case_id.as_str());
        let id = parse_case_id(&case_id)?;
        let version = (version != 0).then_some(version);
        // A point read, answered in place: sled serves it from its page cache in
        // microseconds (a miss reads a page of the file), less than a hand-off to the
        // blocking pool costs, which on a one-CPU server was most of the call.
        let case = self
            .registry
            .store
            .get(&id, version, include_retracted)
            .and_then(convert::case_to_wire)
            .map_err(to_status)?;
        Ok(Response::new(pb::GetCaseResponse { case: Some(case) }))
    }

    #[tracing::instrument(skip_all, fields(case_id, expected_version))]
    async fn update_case(
        &self,
        request: Request<pb::UpdateCaseRequest>,
    ) -> Result<Response<pb::UpdateCaseResponse>, Status> {
        let actor = Caller::of(&request)?.actor();
        let pb::UpdateCaseRequest {
            case_id,
            expected_version,
            phenopacket,
        } = request.into_inner();
        let span = tracing::Span::current();
        span.record("case_id", case_id.as_str());
        span.record("expected_version", expected_version);
        let id = parse_case_id(&case_id)?;
        if expected_version == 0 {
            return Err(invalid_field(
                "expected_version",
                "is required: the version you read (1 or more); updates never apply blind",
            ));
        }
        let response = self
            .blocking(move |r| {
                let (draft, notes) = r.check_record(phenopacket.as_ref())?;
                let outcome =
                    r.store
                        .update(&actor, &id, expected_version, draft, UnixMicros::now())?;
                tracing::info!(
                    version = outcome.case.version,
                    changed = outcome.changed,
                    "update"
                );
                Ok(pb::UpdateCaseResponse {
                    changed: outcome.changed,
                    case: Some(convert::case_to_wire(outcome.case)?),
                    warnings: warnings(notes, &r.hpo),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all, fields(case_id))]
    async fn delete_case(
        &self,
        request: Request<pb::DeleteCaseRequest>,
    ) -> Result<Response<pb::DeleteCaseResponse>, Status> {
        let actor = Caller::of(&request)?.actor();
        let pb::DeleteCaseRequest {
            case_id,
            expected_version,
            reason,
        } = request.into_inner();
        tracing::Span::current().record("case_id", case_id.as_str());
        let id = parse_case_id(&case_id)?;
        let expected = (expected_version != 0).then_some(expected_version);
        let case = self
            .blocking(move |r| {
                let case = r
                    .store
                    .retract(&actor, &id, expected, &reason, UnixMicros::now())?;
                tracing::info!(version = case.version, "retract");
                convert::case_to_wire(case)
            })
            .await?;
        Ok(Response::new(pb::DeleteCaseResponse { case: Some(case) }))
    }

    #[tracing::instrument(skip_all, fields(page_size))]
    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        let pb::ListCasesRequest {
            page_size,
            page_token,
            include_retracted,
        } = request.into_inner();
        tracing::Span::current().record("page_size", page_size);
        let response = self
            .blocking(move |r| {
                let page = r.store.list(page_size, &page_token, include_retracted)?;
                Ok(pb::ListCasesResponse {
                    cases: page
                        .cases
                        .into_iter()
                        .map(convert::case_to_summary)
                        .collect(),
                    next_page_token: page.next_page_token.unwrap_or_default(),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all)]
    async fn import_cases(
        &self,
        request: Request<Streaming<pb::ImportCasesRequest>>,
    ) -> Result<Response<pb::ImportCasesResponse>, Status> {
        // The server mounts `import::RegistryRoutes`, which reads this method's stream with
        // its records left encoded; this is the same import for the typed stream.
        let actor = Caller::of(&request)?.actor();
        let stream = tokio_stream::StreamExt::map(request.into_inner(), |message| {
            message.map(casereg_proto::zero_copy::ImportCasesRequest::from)
        });
        let response = import::import_stream(Arc::clone(&self.registry), actor, stream).await?;
        Ok(Response::new(response))
    }

    type ExportCasesStream = ReceiverStream<Result<pb::ExportCasesResponse, Status>>;

    #[tracing::instrument(skip_all)]
    async fn export_cases(
        &self,
        request: Request<pb::ExportCasesRequest>,
    ) -> Result<Response<Self::ExportCasesStream>, Status> {
        let receiver = import::export_stream(Arc::clone(&self.registry), request.into_inner())?;
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    #[tracing::instrument(skip_all, fields(page_size))]
    async fn search_cases(
        &self,
        request: Request<pb::SearchCasesRequest>,
    ) -> Result<Response<pb::SearchCasesResponse>, Status> {
        let pb::SearchCasesRequest {
            filter,
            page_size,
            page_token,
            view,
        } = request.into_inner();
        tracing::Span::current().record("page_size", page_size);
        let full = match pb::SearchView::try_from(view) {
            Ok(pb::SearchView::Full) => true,
            Ok(pb::SearchView::Summary | pb::SearchView::Unspecified) => false,
            Err(_) => return Err(invalid_field("view", format!("{view} is not a SearchView"))),
        };
        let response = self
            .blocking(move |r| {
                let query = filter::to_query(filter.as_ref(), "filter", &r.store.index())?;
                let page = r.store.search(&query, page_size, &page_token, full)?;
                let hits = page
                    .cases
                    .into_iter()
                    .map(|case| search_hit(case, &r.hpo, full))
                    .collect::<Result<_, _>>()?;
                Ok(pb::SearchCasesResponse {
                    hits,
                    next_page_token: page.next_page_token.unwrap_or_default(),
                    total: page.total,
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all)]
    async fn count_cases(
        &self,
        request: Request<pb::CountCasesRequest>,
    ) -> Result<Response<pb::CountCasesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let pb::CountCasesRequest { filter } = request.into_inner();
        // Evaluated inline: a count reads memory only and takes microseconds.
        let index = self.registry.store.index();
        let query = filter::to_query(filter.as_ref(), "filter", &index).map_err(to_status)?;
        let count = index.count(&query);
        drop(index);
        Ok(Response::new(pb::CountCasesResponse {
            count: self.visible_count(&caller, count),
            exists: count > 0,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn aggregate(
        &self,
        request: Request<pb::AggregateRequest>,
    ) -> Result<Response<pb::AggregateResponse>, Status> {
        let k = Caller::of(&request)?.min_cell_count(self.registry.min_cell_count);
        let request = request.into_inner();
        let response = self
            .blocking(move |r| crate::wire::aggregate::aggregate(&request, &r.store.index(), k))
            .await?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all)]
    async fn co_occurrence(
        &self,
        request: Request<pb::CoOccurrenceRequest>,
    ) -> Result<Response<pb::CoOccurrenceResponse>, Status> {
        let k = Caller::of(&request)?.min_cell_count(self.registry.min_cell_count);
        let request = request.into_inner();
        let response = self
            .blocking(move |r| crate::wire::aggregate::cooccurrence(&request, &r.store.index(), k))
            .await?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all)]
    async fn get_registry_info(
        &self,
        request: Request<pb::GetRegistryInfoRequest>,
    ) -> Result<Response<pb::RegistryInfo>, Status> {
        let caller = Caller::of(&request)?;
        let cases = |active| self.visible_count(&caller, active);
        let record_level = caller.level() == Level::Record;
        let caller_info = caller.info();
        let mut info = self
            .blocking(move |r| {
                let counts = r.store.counts()?;
                Ok(pb::RegistryInfo {
                    service_name: "casereg".to_owned(),
                    service_version: env!("CARGO_PKG_VERSION").to_owned(),
                    schema_version: casereg_proto::SCHEMA_VERSION.to_owned(),
                    phenopacket_schema_version: casereg_proto::PHENOPACKET_SCHEMA_VERSION
                        .to_owned(),
                    center_id: r.center.to_string(),
                    ontologies: vec![pb::OntologyRelease {
                        prefix: "HP".to_owned(),
                        name: "Human Phenotype Ontology".to_owned(),
                        version: r.hpo.version().to_owned(),
                        term_count: u32::try_from(r.hpo.term_count()).unwrap_or(u32::MAX),
                        source: r.hpo.source().to_owned(),
                        attribution: r.hpo.attribution(),
                    }],
                    active_cases: if record_level { counts.active } else { 0 },
                    retracted_cases: if record_level { counts.retracted } else { 0 },
                    limits: Some(pb::RegistryLimits {
                        max_message_bytes: MAX_MESSAGE_BYTES as u64,
                        max_record_bytes: MAX_RECORD_BYTES as u64,
                        max_text_bytes: MAX_TEXT_BYTES as u64,
                        max_id_bytes: MAX_ID_BYTES as u64,
                        max_page_size: MAX_PAGE_SIZE,
                        max_filter_depth: MAX_FILTER_DEPTH as u32,
                        max_filter_nodes: MAX_FILTER_NODES as u32,
                        all: casereg_core::limits::ALL
                            .iter()
                            .filter(|l| l.side == casereg_core::limits::Side::Server)
                            .map(|l| pb::Limit {
                                name: l.name.to_owned(),
                                value: l.value,
                                unit: l.unit.to_owned(),
                            })
                            .collect(),
                    }),
                    strict_terms: r.strict_terms,
                    cases: None,
                    caller: Some(caller_info),
                    min_cell_count: r.min_cell_count,
                })
            })
            .await?;
        // The same reading of the active count as CountCases gives this caller.
        let active = self.registry.store.index().active_count();
        info.cases = cases(active);
        Ok(Response::new(info))
    }
}
