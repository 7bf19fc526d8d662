//! casereg client library: connect to a registry and make typed calls, with one error type.
//!
//! The `casereg` command-line tool ([`cli`]) is built on this library only.
//!
//! `https://` addresses use TLS ([`TlsOptions`]: the CA to trust, a client certificate for
//! mutual TLS); a [`BearerToken`] in [`ConnectOptions`] goes with every call.

pub mod credentials;
pub mod error;
pub mod import;
pub mod json;
pub mod query;
pub mod tls;

use std::future::Future;
use std::time::Duration;

use casereg_proto::v1 as pb;
use casereg_proto::v1::audit_client::AuditClient;
use casereg_proto::v1::case_registry_client::CaseRegistryClient;
use casereg_proto::v1::network_client::NetworkClient;
use casereg_proto::v1::ontology_client::OntologyClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub use credentials::{BearerToken, Credentials};
pub use error::{ClientError, Violation};
pub use tls::{ClientIdentity, TlsOptions};

/// Address used when none is given (the server's default listen address).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// Largest message the client sends or accepts, in bytes: the server's limit.
pub use casereg_proto::limits::MAX_MESSAGE_BYTES;
use casereg_proto::limits::{HTTP2_CONNECTION_WINDOW_BYTES, HTTP2_STREAM_WINDOW_BYTES};

/// Connection settings. `Debug` shows neither the token nor the client key.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Give up connecting (TCP and the TLS handshake) after this long.
    pub connect_timeout: Duration,
    /// Deadline for each call.
    pub request_timeout: Duration,
    /// Sent as `authorization: Bearer <token>` with every call. Over plain `http://` only to
    /// a loopback address: elsewhere anyone on the path could read it.
    pub token: Option<BearerToken>,
    /// For `https://` addresses: the CA to trust (default: the system's store) and a client
    /// certificate for mutual TLS. An error with an `http://` address.
    pub tls: TlsOptions,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            token: None,
            tls: TlsOptions::default(),
        }
    }
}

/// The channel every generated client of a [`Client`] sends through: credentials added to
/// each request.
type Transport = InterceptedService<Channel, Credentials>;

/// A connection to one registry.
#[derive(Debug, Clone)]
pub struct Client {
    registry: CaseRegistryClient<Transport>,
    ontology: OntologyClient<Transport>,
    audit: AuditClient<Transport>,
    network: NetworkClient<Transport>,
    /// For calls whose answers are read into [`casereg_proto::zero_copy`] messages.
    grpc: tonic::client::Grpc<Transport>,
    health: HealthClient<Transport>,
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
    /// Connects to `url` (`http://127.0.0.1:50051`, or `https://` for TLS).
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self, ClientError> {
        let (endpoint, credentials) = Self::endpoint(url, options)?;
        let channel = endpoint.connect().await.map_err(|e| ClientError::Connect {
            url: url.to_owned(),
            message: error_chain(&e),
        })?;
        Ok(Self::from_channel(channel, credentials, options))
    }

    /// A client for `url` that connects on its first call (and reconnects after a failure):
    /// for a server that talks to peers which may be down when it starts. Only the address
    /// and settings are checked here.
    pub fn connect_lazy(url: &str, options: &ConnectOptions) -> Result<Self, ClientError> {
        let (endpoint, credentials) = Self::endpoint(url, options)?;
        Ok(Self::from_channel(
            endpoint.connect_lazy(),
            credentials,
            options,
        ))
    }

    fn from_channel(channel: Channel, credentials: Credentials, options: &ConnectOptions) -> Self {
        Self {
            registry: CaseRegistryClient::with_interceptor(channel.clone(), credentials.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            ontology: OntologyClient::with_interceptor(channel.clone(), credentials.clone()),
            audit: AuditClient::with_interceptor(channel.clone(), credentials.clone()),
            network: NetworkClient::with_interceptor(channel.clone(), credentials.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            grpc: tonic::client::Grpc::new(InterceptedService::new(
                channel.clone(),
                credentials.clone(),
            ))
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
            health: HealthClient::with_interceptor(channel, credentials),
            request_timeout: options.request_timeout,
        }
    }

    /// The endpoint for `url` with `options` checked, and the credentials to send.
    fn endpoint(
        url: &str,
        options: &ConnectOptions,
    ) -> Result<(Endpoint, Credentials), ClientError> {
        let connect_error = |message: String| ClientError::Connect {
            url: url.to_owned(),
            message,
        };
        // No channel-wide timeout: it would also cut long imports and exports. Unary calls
        // get `request_timeout` each (see `unary`).
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| connect_error(format!("not a valid address: {e}")))?
            .connect_timeout(options.connect_timeout)
            // The protocol's 64 KiB default window stalls bulk imports; match the server.
            .initial_stream_window_size(HTTP2_STREAM_WINDOW_BYTES)
            .initial_connection_window_size(HTTP2_CONNECTION_WINDOW_BYTES);
        let uri = endpoint.uri().clone();
        match uri.scheme_str() {
            Some("https") => {
                let tls = options
                    .tls
                    .client_config(options.connect_timeout)
                    .map_err(connect_error)?;
                endpoint = endpoint.tls_config(tls).map_err(|e| {
                    connect_error(format!(
                        "TLS settings: {}{}",
                        error_chain(&e),
                        if options.tls.ca_pem.is_none() {
                            " (no CA certificate given, so the system's store is used; give \
                             the server's CA)"
                        } else {
                            ""
                        }
                    ))
                })?;
            }
            _ if !options.tls.is_empty() => {
                return Err(connect_error(
                    "TLS settings (a CA or client certificate) were given for a plain http:// \
                     address; use https://"
                        .to_owned(),
                ));
            }
            _ if options.token.is_some() && !is_loopback(uri.host().unwrap_or_default()) => {
                return Err(connect_error(
                    "refusing to send the bearer token over plain http:// to a host that is \
                     not loopback; use https://"
                        .to_owned(),
                ));
            }
            _ => {}
        }
        let credentials = Credentials::new(options.token.as_ref()).map_err(connect_error)?;
        Ok((endpoint, credentials))
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

    /// A count across the network of registries this server has as peers, with each
    /// center's fate. `deadline` (default: the client's timeout) bounds the whole call.
    pub async fn network_count(
        &mut self,
        request: pb::NetworkCountRequest,
        deadline: Option<Duration>,
    ) -> Result<pb::NetworkCountResponse, ClientError> {
        let t = deadline.unwrap_or(self.request_timeout);
        unary(t, self.network.network_count(with_deadline(request, t))).await
    }

    /// An aggregate across the network, merged, with each center's fate.
    pub async fn network_aggregate(
        &mut self,
        request: pb::NetworkAggregateRequest,
        deadline: Option<Duration>,
    ) -> Result<pb::NetworkAggregateResponse, ClientError> {
        let t = deadline.unwrap_or(self.request_timeout);
        unary(t, self.network.network_aggregate(with_deadline(request, t))).await
    }

    /// [`Client::network_aggregate`], its answer read as a
    /// [`casereg_proto::zero_copy::NetworkAggregateResponse`]: ids and labels share the
    /// received buffer instead of each being copied (what a coordinator merging many
    /// centers' full distributions wants). Their bytes are not yet checked as UTF-8.
    pub async fn network_aggregate_zero_copy(
        &mut self,
        request: pb::NetworkAggregateRequest,
        deadline: Option<Duration>,
    ) -> Result<casereg_proto::zero_copy::NetworkAggregateResponse, ClientError> {
        let t = deadline.unwrap_or(self.request_timeout);
        let mut request = with_deadline(request, t);
        request.extensions_mut().insert(tonic::GrpcMethod::new(
            "casereg.v1.Network",
            "NetworkAggregate",
        ));
        let grpc = &mut self.grpc;
        unary(t, async move {
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unavailable(format!("not ready: {e}")))?;
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                "/casereg.v1.Network/NetworkAggregate",
            );
            grpc.unary(request, path, tonic_prost::ProstCodec::default())
                .await
        })
        .await
    }

    /// Co-occurrence and enrichment across the network, merged, with each center's fate.
    pub async fn network_co_occurrence(
        &mut self,
        request: pb::NetworkCoOccurrenceRequest,
        deadline: Option<Duration>,
    ) -> Result<pb::NetworkCoOccurrenceResponse, ClientError> {
        let t = deadline.unwrap_or(self.request_timeout);
        unary(
            t,
            self.network
                .network_co_occurrence(with_deadline(request, t)),
        )
        .await
    }

    /// Matching cases across the network: each center's count and, where allowed, the
    /// first case summaries of each.
    pub async fn network_search(
        &mut self,
        request: pb::NetworkSearchRequest,
        deadline: Option<Duration>,
    ) -> Result<pb::NetworkSearchResponse, ClientError> {
        let t = deadline.unwrap_or(self.request_timeout);
        unary(t, self.network.network_search(with_deadline(request, t))).await
    }

    /// One page of the audit log: up to `page_size` entries after sequence number `after`
    /// (administrators only).
    pub async fn audit_entries(
        &mut self,
        after: u64,
        page_size: u32,
    ) -> Result<pb::ListAuditEntriesResponse, ClientError> {
        let request = pb::ListAuditEntriesRequest { after, page_size };
        let t = self.request_timeout;
        unary(t, self.audit.list_audit_entries(with_deadline(request, t))).await
    }

    /// How many active cases match `filter` (`None`: all of them), as the caller's access
    /// level may see it: `count` exact at record level, small counts withheld at count level,
    /// only `exists` at boolean level.
    pub async fn count_cases(
        &mut self,
        filter: Option<pb::Filter>,
    ) -> Result<pb::CountCasesResponse, ClientError> {
        let request = pb::CountCasesRequest { filter };
        let t = self.request_timeout;
        unary(t, self.registry.count_cases(with_deadline(request, t))).await
    }

    /// The exact number of active cases matching `filter`; an error for a caller whose
    /// access level does not see exact counts.
    pub async fn exact_count(&mut self, filter: Option<pb::Filter>) -> Result<u64, ClientError> {
        let response = self.count_cases(filter).await?;
        match response.count {
            Some(count) if count.precision() == pb::Precision::Exact => Ok(count.value),
            _ => Err(ClientError::PermissionDenied(
                "the server withheld the exact count: this caller's access level is below record"
                    .to_owned(),
            )),
        }
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

/// Whether a URL's host is this machine (`localhost`, `127.0.0.0/8`, `[::1]`).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An error with its causes, on one line; a cause whose text its error already ends with
/// (some errors print their source) is not repeated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "[::1]"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "example.org",
            "10.0.0.1",
            "[2001:db8::1]",
            "localhost.example.org",
            "",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn error_chains_do_not_repeat_a_cause() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "handshake: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Outer(std::io::Error::other("UnknownIssuer"));
        assert_eq!(error_chain(&error), "handshake: UnknownIssuer");
        let plain = std::io::Error::other("reset");
        assert_eq!(error_chain(&plain), "reset");
    }

    async fn refusal(url: &str, options: ConnectOptions) -> String {
        match Client::connect(url, &options).await {
            Ok(_) => panic!("{url} connected"),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn settings_that_would_weaken_security_are_refused_before_connecting() {
        let token = || Some(BearerToken::new("do-not-print-me"));
        let e = refusal(
            "http://registry.example.org:50051",
            ConnectOptions {
                token: token(),
                ..ConnectOptions::default()
            },
        )
        .await;
        assert!(
            e.contains("refusing to send the bearer token over plain http://"),
            "{e}"
        );
        assert!(!e.contains("do-not-print-me"), "{e}");

        let e = refusal(
            "http://127.0.0.1:9",
            ConnectOptions {
                tls: TlsOptions {
                    ca_pem: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
                    identity: None,
                },
                ..ConnectOptions::default()
            },
        )
        .await;
        assert!(e.contains("plain http:// address; use https://"), "{e}");

        let e = refusal(
            "https://127.0.0.1:9",
            ConnectOptions {
                tls: TlsOptions {
                    ca_pem: Some(b"not a certificate".to_vec()),
                    identity: None,
                },
                ..ConnectOptions::default()
            },
        )
        .await;
        assert!(e.contains("CA certificate: not PEM"), "{e}");

        let e = refusal(
            "http://127.0.0.1:9",
            ConnectOptions {
                token: Some(BearerToken::new("has space")),
                ..ConnectOptions::default()
            },
        )
        .await;
        assert!(e.contains("cannot be sent in a header"), "{e}");
        assert!(!e.contains("has space"), "{e}");
    }
}
