//! casereg's gRPC server: the only crate that knows tonic.
//!
//! [`open_registry`] loads the ontology and opens the store; [`serve`] runs the
//! `CaseRegistry`, health and reflection services on a listener until a shutdown signal, then
//! drains within a deadline and flushes the store.

//!
//! The layout, one room per concept, imports pointing one way (down this list):
//! - [`registry`]: the shared state every handler reads;
//! - `grpc`: the services (thin handlers), the access layer in front of them, the import and
//!   export streams, and the one error table;
//! - `peers`: the other centers this server asks;
//! - [`wire`]: wire ⇄ domain — record checks and the record walk, search facts, filters,
//!   aggregate requests, search hits;
//! - `access`: principals, the access table, small-count protection at the boundary;
//! - [`config`] and `tls`.

mod access;
pub mod config;
mod grpc;
mod peers;
pub mod registry;
mod tls;
pub mod wire;

/// The principals file: principals, roles, access levels, and adding one
/// (`casereg-server principal add`).
pub use access::principals;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use casereg_core::ids::CenterId;
use casereg_core::limits::{
    HTTP2_CONNECTION_WINDOW_BYTES, HTTP2_STREAM_WINDOW_BYTES, MAX_MESSAGE_BYTES,
};
use casereg_core::ontology::Ontology;
use casereg_core::store::Store;
use casereg_proto::v1::audit_server::AuditServer;
use casereg_proto::v1::case_registry_server::CaseRegistryServer;
use casereg_proto::v1::network_server::NetworkServer;
use casereg_proto::v1::ontology_server::OntologyServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

pub use config::Config;
pub use registry::Registry;

use grpc::ontology::OntologyService;
use grpc::registry::CaseRegistryService;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// The ontology could not be loaded.
    #[error(transparent)]
    Ontology(#[from] casereg_core::ontology::OntologyError),
    /// The data directory could not be opened.
    #[error(
        "cannot open data directory {path}: {error} (is another casereg-server using it? is it writable?)"
    )]
    DataDir {
        /// The directory.
        path: String,
        /// What sled said.
        error: casereg_core::CoreError,
    },
    /// The store failed while serving or flushing.
    #[error(transparent)]
    Store(#[from] casereg_core::CoreError),
    /// Listening or serving failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Binding the listen address failed.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    /// The contract's compiled descriptors could not be read.
    #[error("record schema: {0}")]
    Schema(String),
    /// The reflection service could not be built.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Loads the ontology and opens the store named by `config`.
pub fn open_registry(config: &Config) -> Result<Registry, ServerError> {
    let center = CenterId::parse(&config.center)
        .map_err(|e| ServerError::Config(format!("--center: {}", e.0)))?;
    wire::record_walk::prepare().map_err(ServerError::Schema)?;
    let hpo = std::sync::Arc::new(match &config.hpo {
        Some(path) => Ontology::from_path(path)?,
        None => Ontology::embedded()?,
    });
    let store =
        Store::open(&config.data_dir, hpo.clone()).map_err(|error| ServerError::DataDir {
            path: config.data_dir.display().to_string(),
            error,
        })?;
    let access = match &config.principals {
        Some(path) => access::Access::Tokens(Arc::new(
            principals::Principals::load(path).map_err(|e| ServerError::Config(e.to_string()))?,
        )),
        None => access::Access::local(center.clone()),
    };
    Ok(Registry {
        store,
        hpo,
        center,
        access,
        peers: peers::Peers::from_config(config)?,
        strict_terms: config.strict_terms,
        min_cell_count: config.min_cell_count,
    })
}

/// Secure by default: without principals the server serves everyone as an administrator,
/// so only on a loopback address; off loopback it also wants TLS, or `--insecure` when
/// something else protects the traffic.
pub fn check_listen_address(config: &Config) -> Result<(), ServerError> {
    if config.listen.ip().is_loopback() {
        return Ok(());
    }
    if config.principals.is_none() {
        return Err(ServerError::Config(format!(
            "refusing to listen on {} without principals: every caller would be an administrator. \
             Create a principals file with `casereg-server principal add --principals FILE ...` and \
             pass --principals FILE, or listen on a loopback address",
            config.listen
        )));
    }
    if !config.tls_enabled() && !config.insecure {
        return Err(ServerError::Config(format!(
            "refusing to listen on {} without TLS: tokens and records would cross the network in \
             clear. Pass --tls-cert and --tls-key, or --insecure if something else (a \
             TLS-terminating proxy, a private network) protects this port",
            config.listen
        )));
    }
    Ok(())
}

/// Runs an administration command (`casereg-server principal add ...`), printing its result.
pub fn run_command(command: config::Command) -> Result<(), ServerError> {
    match command {
        config::Command::Principal(config::PrincipalCommand::Add {
            principals,
            name,
            center,
            role,
            level,
        }) => {
            let role = principals::Role::parse(&role)
                .map_err(|e| ServerError::Config(format!("--role: {e}")))?;
            let level = level
                .as_deref()
                .map(principals::Level::parse)
                .transpose()
                .map_err(|e| ServerError::Config(format!("--level: {e}")))?;
            let new = principals::NewPrincipal {
                name: &name,
                center: &center,
                role,
                level,
            };
            let token = principals::add_principal(&principals, &new)
                .map_err(|e| ServerError::Config(e.to_string()))?;
            eprintln!(
                "added {} {name:?} of center {center:?} to {}; restart the server to load it.\n\
                 Its token is below. It is shown only this once: give it to its holder now.",
                role.as_str(),
                principals.display()
            );
            println!("{token}");
            Ok(())
        }
    }
}

/// How [`serve`] serves, beyond what it serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// After a shutdown signal, how long in-flight calls may take before connections close.
    pub grace: Duration,
    /// TLS (and, with a client CA, mutual TLS); `None` serves plain HTTP/2.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
}

impl Default for ServeOptions {
    /// Ten seconds' grace (the `--shutdown-grace-secs` default), no TLS.
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(10),
            tls: None,
        }
    }
}

impl ServeOptions {
    /// The options `config` names; reads and checks the TLS files.
    pub fn from_config(config: &Config) -> Result<Self, ServerError> {
        Ok(Self {
            grace: config.shutdown_grace(),
            tls: tls::server_tls_config(config)?,
        })
    }
}

/// Serves until `shutdown` completes, then stops accepting calls, gives in-flight calls up to
/// `options.grace` to finish, and flushes the store.
pub async fn serve(
    registry: Arc<Registry>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> Result<(), ServerError> {
    let ServeOptions { grace, tls } = options;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<CaseRegistryServer<CaseRegistryService>>()
        .await;
    health
        .set_serving::<OntologyServer<OntologyService>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(casereg_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // grpcurl 1.8 and other older tools speak only the v1alpha reflection protocol.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(casereg_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let registry_service = grpc::routes::RegistryRoutes::new(Arc::clone(&registry));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let router = builder
        .initial_stream_window_size(HTTP2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW_BYTES)
        .trace_fn(|request| tracing::info_span!("grpc", path = %request.uri().path()))
        // Before every service: who is calling, and may it make this call.
        .layer(grpc::layer::AccessLayer::new(Arc::clone(&registry)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(registry_service)
        .add_service(OntologyServer::new(OntologyService::new(Arc::clone(
            &registry,
        ))))
        .add_service(AuditServer::new(grpc::audit::AuditService::new(
            Arc::clone(&registry),
        )))
        .add_service(
            NetworkServer::new(grpc::network::NetworkService::new(Arc::clone(&registry)))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        );
    // Nagle's algorithm would hold a response of a few packets back until the client's
    // delayed ACK (about 40 ms on Linux): measured on aggregate answers before this.
    let incoming = tokio_stream::StreamExt::map(TcpListenerStream::new(listener), |stream| {
        if let Ok(stream) = &stream
            && let Err(e) = stream.set_nodelay(true)
        {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
        stream
    });
    let mut server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
        let _ = stop_rx.await;
    }));

    tokio::select! {
        result = &mut server => {
            // The server ended on its own (an accept error): report it.
            result.map_err(|e| ServerError::Config(format!("server task: {e}")))??;
        }
        () = shutdown => {
            tracing::info!(grace_secs = grace.as_secs_f64(), "shutdown requested; draining");
            health
                .set_not_serving::<CaseRegistryServer<CaseRegistryService>>()
                .await;
            health.set_not_serving::<OntologyServer<OntologyService>>().await;
            let _ = stop_tx.send(());
            // Open streams (a health Watch, say) would hold the drain open forever: bound it.
            match tokio::time::timeout(grace, &mut server).await {
                Ok(result) => result.map_err(|e| ServerError::Config(format!("server task: {e}")))??,
                Err(_) => {
                    tracing::warn!("drain deadline passed; closing remaining connections");
                    server.abort();
                }
            }
        }
    }
    let store = registry.store.clone();
    tokio::task::spawn_blocking(move || store.flush())
        .await
        .map_err(|e| ServerError::Config(format!("flush task: {e}")))??;
    tracing::info!("store flushed");
    // The snapshot only spares the next start a rebuild; failing to write one loses nothing.
    let store = registry.store.clone();
    let started = std::time::Instant::now();
    match tokio::task::spawn_blocking(move || store.save_index_snapshot()).await {
        Ok(Ok(())) => tracing::info!(
            millis = started.elapsed().as_millis() as u64,
            "index snapshot saved; stopped"
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "index snapshot not saved; the next start rebuilds")
        }
        Err(e) => tracing::warn!(error = %e, "index snapshot task failed; the next start rebuilds"),
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot wait for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot wait for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Sets up logging (`RUST_LOG` filters; default `info`).
pub fn init_logging(format: config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        config::LogFormat::Text => builder.try_init(),
        config::LogFormat::Json => builder.json().try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging already set up: {e}");
    }
}

/// Runs the server as the binary does: checks, loads, binds, serves until a signal.
pub async fn run(config: Config) -> Result<(), ServerError> {
    // The TLS files first: a wrong one is the likelier mistake, and the listen check may
    // count on TLS being on.
    let options = ServeOptions::from_config(&config)?;
    check_listen_address(&config)?;
    let started = std::time::Instant::now();
    let registry = Arc::new(open_registry(&config)?);
    let listener = TcpListener::bind(config.listen).await?;
    let counts = registry.store.counts()?;
    tracing::info!(
        listen = %listener.local_addr()?,
        data_dir = %config.data_dir.display(),
        center = %registry.center,
        hpo_version = registry.hpo.version(),
        hpo_source = registry.hpo.source(),
        active_cases = counts.active,
        startup_ms = started.elapsed().as_millis() as u64,
        tls = if config.mtls_enabled() {
            "mutual (client certificates required)"
        } else if config.tls_enabled() {
            "on"
        } else {
            "off (plain HTTP/2)"
        },
        "casereg serving"
    );
    match &registry.access {
        access::Access::Local(_) => tracing::warn!(
            "no --principals: every caller is an administrator; serving on loopback only"
        ),
        access::Access::Tokens(principals) => tracing::info!(
            principals = principals.len(),
            min_cell_count = registry.min_cell_count,
            "bearer tokens required; access levels applied"
        ),
    }
    if !config.listen.ip().is_loopback() && !config.tls_enabled() {
        tracing::warn!("--insecure: serving without TLS off loopback");
    }
    tracing::info!("{}", registry.hpo.attribution());
    serve(registry, listener, shutdown_signal(), options).await
}
