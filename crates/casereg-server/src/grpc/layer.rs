//! The tower layer in front of every service: it finds who is calling (a bearer token, or
//! the local administrator when the server runs without principals on loopback), applies
//! the access table ([`crate::access::need`]) and puts the [`Caller`] on the request for the
//! handlers. Every refusal is written to the audit log.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use casereg_core::audit::{AuditEntry, Outcome};
use casereg_core::case::UnixMicros;
use tonic::Status;

use crate::access::principals::Principal;
use crate::access::{Access, Caller, Need, need, refusal};
use crate::registry::Registry;

/// The bearer token of a request's `authorization` header.
fn bearer<B>(request: &http::Request<B>) -> Result<&str, &'static str> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .ok_or("no credentials: send the metadata `authorization: Bearer <token>` (casereg --token or CASEREG_TOKEN)")?;
    let value = value
        .to_str()
        .map_err(|_| "the authorization metadata is not text")?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err("the authorization metadata must be `Bearer <token>`"),
    }
}

/// The tower layer that applies [`need`] to every request.
#[derive(Debug, Clone)]
pub struct AccessLayer {
    registry: Arc<Registry>,
}

impl AccessLayer {
    /// Checks requests against `registry`'s access settings and audits refusals in its store.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            registry: Arc::clone(&self.registry),
        }
    }
}

/// The service [`AccessLayer`] wraps around the server's services.
#[derive(Debug, Clone)]
pub struct AccessService<S> {
    inner: S,
    registry: Arc<Registry>,
}

impl<S> AccessService<S> {
    /// The caller of `request`, or the status refusing it (already audited). `None` for an
    /// open method.
    fn check<B>(&self, request: &http::Request<B>) -> Result<Option<Caller>, Status> {
        let method = request.uri().path().trim_start_matches('/');
        let need = need(method);
        if need == Some(Need::Open) {
            return Ok(None);
        }
        let principal = match &self.registry.access {
            Access::Local(principal) => Arc::clone(principal),
            Access::Tokens(principals) => {
                let found = bearer(request).map_err(str::to_owned).and_then(|token| {
                    principals
                        .authenticate(token)
                        .cloned()
                        .ok_or_else(|| "the token is not known to this server".to_owned())
                });
                match found {
                    Ok(principal) => principal,
                    Err(message) => {
                        self.audit_refusal(None, method, &message);
                        return Err(Status::unauthenticated(message));
                    }
                }
            }
        };
        if let Some(reason) = refusal(&principal, need) {
            let message = format!("{method} {reason}");
            self.audit_refusal(Some(&principal), method, &message);
            return Err(Status::permission_denied(message));
        }
        Ok(Some(Caller(principal)))
    }

    fn audit_refusal(&self, principal: Option<&Principal>, method: &str, message: &str) {
        tracing::warn!(
            principal = principal.map_or("", |p| p.name.as_str()),
            method,
            reason = message,
            "request refused"
        );
        let entry = AuditEntry::new(
            UnixMicros::now(),
            principal.map_or("", |p| p.name.as_str()),
            principal.map(|p| &p.center),
            method,
            Outcome::Denied,
            message,
        );
        if let Err(e) = self.registry.store.append_audit(entry) {
            tracing::error!(error = %e, "cannot record a refused request in the audit log");
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for AccessService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        match self.check(&request) {
            Ok(caller) => {
                if let Some(caller) = caller {
                    request.extensions_mut().insert(caller);
                }
                // The clone waits for readiness next time; this one was made ready.
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                Box::pin(ready.call(request))
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}
