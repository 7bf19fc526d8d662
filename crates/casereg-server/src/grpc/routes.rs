//! `CaseRegistry` as the server mounts it: every method through the generated service,
//! except `ImportCases`, whose stream is read as [`zero_copy::ImportCasesRequest`]s so that
//! records stay in the encoding they arrived in.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use casereg_core::limits::MAX_MESSAGE_BYTES;
use casereg_proto::v1 as pb;
use casereg_proto::v1::case_registry_server::CaseRegistryServer;
use casereg_proto::zero_copy;
use tonic::server::NamedService;
use tonic::{Request, Response, Status, Streaming};

use crate::access::Caller;
use crate::grpc::import::import_stream;
use crate::grpc::registry::CaseRegistryService;
use crate::registry::Registry;
/// The path of the `ImportCases` method.
const IMPORT_CASES: &str = "/casereg.v1.CaseRegistry/ImportCases";

/// The `CaseRegistry` service as the server mounts it: the generated service, except that
/// `ImportCases` decodes its stream as [`zero_copy::ImportCasesRequest`]s, its records
/// left encoded. (The generated code fixes each method's message types; this takes the one
/// path before it.)
#[derive(Clone)]
pub struct RegistryRoutes {
    generated: CaseRegistryServer<CaseRegistryService>,
    registry: Arc<Registry>,
}

impl RegistryRoutes {
    /// Serves `registry`, with the message size limits of every other service.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            generated: CaseRegistryServer::new(CaseRegistryService::new(Arc::clone(&registry)))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            registry,
        }
    }
}

impl NamedService for RegistryRoutes {
    const NAME: &'static str = <CaseRegistryServer<CaseRegistryService> as NamedService>::NAME;
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

impl tower::Service<http::Request<tonic::body::Body>> for RegistryRoutes {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() != IMPORT_CASES {
            return self.generated.call(request);
        }
        let method = ImportCases {
            registry: Arc::clone(&self.registry),
        };
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<
                pb::ImportCasesResponse,
                zero_copy::ImportCasesRequest,
            >::default();
            let mut grpc = tonic::server::Grpc::new(codec)
                .apply_max_message_size_config(Some(MAX_MESSAGE_BYTES), Some(MAX_MESSAGE_BYTES));
            Ok(grpc.client_streaming(method, request).await)
        })
    }
}

/// `ImportCases` on records left encoded.
struct ImportCases {
    registry: Arc<Registry>,
}

impl tonic::server::ClientStreamingService<zero_copy::ImportCasesRequest> for ImportCases {
    type Response = pb::ImportCasesResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Streaming<zero_copy::ImportCasesRequest>>) -> Self::Future {
        let registry = Arc::clone(&self.registry);
        Box::pin(tracing::Instrument::instrument(
            async move {
                let actor = Caller::of(&request)?.actor();
                let response = import_stream(registry, actor, request.into_inner()).await?;
                Ok(Response::new(response))
            },
            tracing::info_span!("import_cases"),
        ))
    }
}
