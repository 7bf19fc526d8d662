//! casereg client library: connect to a registry and make typed calls, with one error type.
//!
//! The `casereg` command-line tool ([`cli`]) is built on this library only.

pub mod cli;
pub mod error;
pub mod import;
mod import_cli;
pub mod json;
pub mod query;
pub mod stats;

use std::future::Future;
use std::time::Duration;

use casereg_proto::v1 as pb;
use casereg_proto::v1::case_registry_client::CaseRegistryClient;
use casereg_proto::v1::ontology_client::OntologyClient;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub use error::{ClientError, Violation};

/// Address used when none is given (the server's default listen address).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// Largest message the client sends or accepts, in bytes (matches the server's limit).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// HTTP/2 flow-control windows, in bytes (the server uses the same).
const HTTP2_STREAM_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
const HTTP2_CONNECTION_WINDOW_BYTES: u32 = 8 * 1024 * 1024;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Deadline for each call.
    pub request_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A connection to one registry.
#[derive(Debug, Clone)]
pub struct Client {
    registry: CaseRegistryClient<Channel>,
    ontology: OntologyClient<Channel>,
    health: HealthClient<Channel>,
    request_timeout: Duration,
}

/// Runs a unary call with a deadline: sent to the server as `grpc-timeout` and enforced here.
async fn unary<T>(
    timeout: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => Ok(result?.into_inner()),
        Err(_) => Err(ClientError::DeadlineExceeded(format!(
            "no answer within {} s",
            timeout.as_secs_f64()
        ))),
    }
}

/// A request carrying the call's deadline for the server.
fn with_deadline<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

impl Client {
    /// Connects to `url` (e.g. `http://127.0.0.1:50051`).
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self, ClientError> {
        let connect_error = |message: String| ClientError::Connect {
            url: url.to_owned(),
            message,
        };
        // No channel-wide timeout: it would also cut long imports and exports. Unary calls
        // get `request_timeout` each (see `unary`).
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| connect_error(format!("not a valid address: {e}")))?
            .connect_timeout(options.connect_timeout)
            // The protocol's 64 KiB default window stalls bulk imports; match the server.
            .initial_stream_window_size(HTTP2_STREAM_WINDOW_BYTES)
            .initial_connection_window_size(HTTP2_CONNECTION_WINDOW_BYTES);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| connect_error(error_chain(&e)))?;
        Ok(Self {
            registry: CaseRegistryClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            ontology: OntologyClient::new(channel.clone()),
            health: HealthClient::new(channel),
            request_timeout: options.request_timeout,
        })
    }

    /// Stores a record (idempotent on its id).
    pub async fn create_case(
        &mut self,
        phenopacket: pb::Phenopacket,
    ) -> Result<pb::CreateCaseResponse, ClientError> {
        let request = pb::CreateCaseRequest {
            phenopacket: Some(phenopacket),
        };
        let t = self.request_timeout;
        unary(t, self.registry.create_case(with_deadline(request, t))).await
    }

    /// Reads a case; `version` 0 means the current one.
    pub async fn get_case(
        &mut self,
        case_id: &str,
        version: u64,
        include_retracted: bool,
    ) -> Result<pb::Case, ClientError> {
        let request = pb::GetCaseRequest {
            case_id: case_id.to_owned(),
            version,
            include_retracted,
        };
        let t = self.request_timeout;
        unary(t, self.registry.get_case(with_deadline(request, t)))
            .await?
            .case
            .ok_or_else(|| missing("GetCaseResponse.case"))
    }

    /// Replaces a case's record, if `expected_version` is still current.
    pub async fn update_case(
        &mut self,
        case_id: &str,
        expected_version: u64,
        phenopacket: pb::Phenopacket,
    ) -> Result<pb::UpdateCaseResponse, ClientError> {
        let request = pb::UpdateCaseRequest {
            case_id: case_id.to_owned(),
            expected_version,
            phenopacket: Some(phenopacket),
        };
        let t = self.request_timeout;
        unary(t, self.registry.update_case(with_deadline(request, t))).await
    }

    /// Retracts a case; `expected_version` 0 skips the version check.
    pub async fn delete_case(
        &mut self,
        case_id: &str,
        expected_version: u64,
        reason: &str,
    ) -> Result<pb::Case, ClientError> {
        let request = pb::DeleteCaseRequest {
            case_id: case_id.to_owned(),
            expected_version,
            reason: reason.to_owned(),
        };
        let t = self.request_timeout;
        unary(t, self.registry.delete_case(with_deadline(request, t)))
            .await?
            .case
            .ok_or_else(|| missing("DeleteCaseResponse.case"))
    }

    /// One page of the case listing.
    pub async fn list_cases(
        &mut self,
        page_size: u32,
        page_token: &str,
        include_retracted: bool,
    ) -> Result<pb::ListCasesResponse, ClientError> {
        let request = pb::ListCasesRequest {
            page_size,
            page_token: page_token.to_owned(),
            include_retracted,
        };
        let t = self.request_timeout;
        unary(t, self.registry.list_cases(with_deadline(request, t))).await
    }

    /// One page of the active cases matching `filter` (`None`: all of them).
    pub async fn search_cases(
        &mut self,
        filter: Option<pb::Filter>,
        page_size: u32,
        page_token: &str,
        full: bool,
    ) -> Result<pb::SearchCasesResponse, ClientError> {
        let view = if full {
            pb::SearchView::Full
        } else {
            pb::SearchView::Summary
        };
        let request = pb::SearchCasesRequest {
            filter,
            page_size,
            page_token: page_token.to_owned(),
            view: view.into(),
        };
        let t = self.request_timeout;
        unary(t, self.registry.search_cases(with_deadline(request, t))).await
    }

    /// How many active cases match `filter` (`None`: all of them).
    pub async fn count_cases(&mut self, filter: Option<pb::Filter>) -> Result<u64, ClientError> {
        let request = pb::CountCasesRequest { filter };
        let t = self.request_timeout;
        Ok(
            unary(t, self.registry.count_cases(with_deadline(request, t)))
                .await?
                .count,
        )
    }

    /// Matching cases counted by one or two dimensions.
    pub async fn aggregate(
        &mut self,
        request: pb::AggregateRequest,
    ) -> Result<pb::AggregateResponse, ClientError> {
        let t = self.request_timeout;
        unary(t, self.registry.aggregate(with_deadline(request, t))).await
    }

    /// Values co-occurring in the cases matching a filter, against the registry.
    pub async fn cooccurrence(
        &mut self,
        request: pb::CoOccurrenceRequest,
    ) -> Result<pb::CoOccurrenceResponse, ClientError> {
        let t = self.request_timeout;
        unary(t, self.registry.co_occurrence(with_deadline(request, t))).await
    }

    /// Versions, ontology releases and counts of the registry.
    pub async fn registry_info(&mut self) -> Result<pb::RegistryInfo, ClientError> {
        let request = pb::GetRegistryInfoRequest {};
        let t = self.request_timeout;
        unary(
            t,
            self.registry.get_registry_info(with_deadline(request, t)),
        )
        .await
    }

    /// Streams records to the registry and returns its answer once the stream ends. No
    /// deadline: an import lasts as long as its input.
    pub async fn import_cases(
        &mut self,
        requests: impl tokio_stream::Stream<Item = pb::ImportCasesRequest> + Send + 'static,
    ) -> Result<pb::ImportCasesResponse, ClientError> {
        Ok(self.registry.import_cases(requests).await?.into_inner())
    }

    /// Starts an export; read the returned stream to its end. No deadline.
    pub async fn export_cases(
        &mut self,
        request: pb::ExportCasesRequest,
    ) -> Result<tonic::Streaming<pb::ExportCasesResponse>, ClientError> {
        Ok(self.registry.export_cases(request).await?.into_inner())
    }

    /// One HPO term by id (alternative ids answer with their primary term).
    pub async fn get_term(&mut self, id: &str) -> Result<pb::GetTermResponse, ClientError> {
        let request = pb::GetTermRequest { id: id.to_owned() };
        let t = self.request_timeout;
        unary(t, self.ontology.get_term(with_deadline(request, t))).await
    }

    /// HPO terms matching `query` by name or synonym, best first.
    pub async fn search_terms(
        &mut self,
        query: &str,
        limit: u32,
        include_obsolete: bool,
    ) -> Result<pb::SearchTermsResponse, ClientError> {
        let request = pb::SearchTermsRequest {
            query: query.to_owned(),
            limit,
            include_obsolete,
        };
        let t = self.request_timeout;
        unary(t, self.ontology.search_terms(with_deadline(request, t))).await
    }

    /// Ancestors (`up`) or descendants of an HPO term.
    pub async fn term_relatives(
        &mut self,
        id: &str,
        up: bool,
    ) -> Result<pb::GetRelativesResponse, ClientError> {
        let request = with_deadline(
            pb::GetRelativesRequest { id: id.to_owned() },
            self.request_timeout,
        );
        let t = self.request_timeout;
        if up {
            unary(t, self.ontology.get_ancestors(request)).await
        } else {
            unary(t, self.ontology.get_descendants(request)).await
        }
    }

    /// The standard gRPC health check of the whole server.
    pub async fn health(&mut self) -> Result<ServingStatus, ClientError> {
        let request = tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        };
        let t = self.request_timeout;
        let response = unary(t, self.health.check(with_deadline(request, t))).await?;
        Ok(ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown))
    }
}

fn missing(field: &str) -> ClientError {
    ClientError::Other {
        code: tonic::Code::Internal,
        message: format!("server response lacks {field}"),
    }
}

/// An error with its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
