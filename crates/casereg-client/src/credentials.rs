//! Who the caller is: a bearer token sent as `authorization` metadata on every call.
//!
//! A token is a password: it is never printed by `Debug`, never put in an error message, and
//! its header is marked sensitive (kept out of HTTP/2 header compression tables).

use std::fmt;
use std::str::FromStr;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;

/// The metadata key that carries the token (the HTTP `Authorization` header).
pub const AUTHORIZATION: &str = "authorization";

/// A bearer token, as issued by the registry's operators.
///
/// Checked when a client connects (non-empty, visible ASCII without spaces), so that any
/// string can be held here without the check's error repeating it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// Wraps a token; spaces and line ends around it (from a file or `$(cat …)`) are dropped.
    pub fn new(token: impl Into<String>) -> Self {
        let token = token.into();
        Self(token.trim().to_owned())
    }

    /// The token itself, for code that must send it some other way. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `authorization` metadata value, or why the token cannot be one (without the
    /// token in the message).
    pub(crate) fn metadata_value(&self) -> Result<MetadataValue<Ascii>, String> {
        if self.0.is_empty() {
            return Err("the bearer token is empty".to_owned());
        }
        // RFC 6750's token68 is a subset of this; anything outside it cannot be a header.
        if !self.0.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the bearer token has a character that cannot be sent in a header \
                 (only visible ASCII, no spaces)"
                    .to_owned(),
            );
        }
        let mut value = MetadataValue::try_from(format!("Bearer {}", self.0))
            .map_err(|_| "the bearer token cannot be sent in a header".to_owned())?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Parsing never fails, so that a command-line parser's error cannot echo the token; the
/// check happens at connect time.
impl FromStr for BearerToken {
    type Err = std::convert::Infallible;

    fn from_str(token: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(token))
    }
}

/// Adds the caller's credentials to every request of a generated client, unary and
/// streaming alike: `CaseRegistryClient::with_interceptor(channel, credentials)`.
#[derive(Clone, Default)]
pub struct Credentials {
    authorization: Option<MetadataValue<Ascii>>,
}

impl Credentials {
    /// Credentials sending `token`, or none at all; fails (naming no secret) when the token
    /// cannot be sent.
    pub fn new(token: Option<&BearerToken>) -> Result<Self, String> {
        Ok(Self {
            authorization: token.map(BearerToken::metadata_value).transpose()?,
        })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "Bearer <redacted>"),
            )
            .finish()
    }
}

impl Interceptor for Credentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.authorization {
            request.metadata_mut().insert(AUTHORIZATION, value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-T0KEN_value.~+/=";

    #[test]
    fn debug_never_shows_the_token() {
        let token = BearerToken::new(SECRET);
        let credentials = Credentials::new(Some(&token)).expect("valid token");
        for text in [format!("{token:?}"), format!("{credentials:?}")] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(text.contains("redacted"), "{text}");
        }
    }

    #[test]
    fn every_request_gets_the_header() {
        let token: BearerToken = format!("  {SECRET}\n").parse().expect("infallible");
        assert_eq!(token.expose(), SECRET);
        let mut credentials = Credentials::new(Some(&token)).expect("valid token");
        let request = credentials
            .call(tonic::Request::new(()))
            .expect("interceptor passes requests on");
        let value = request
            .metadata()
            .get(AUTHORIZATION)
            .expect("authorization set");
        assert_eq!(value.to_str().expect("ASCII"), format!("Bearer {SECRET}"));
        assert!(!format!("{value:?}").contains(SECRET));

        let mut anonymous = Credentials::new(None).expect("no token");
        let request = anonymous
            .call(tonic::Request::new(()))
            .expect("interceptor passes requests on");
        assert!(request.metadata().get(AUTHORIZATION).is_none());
    }

    #[test]
    fn unsendable_tokens_are_refused_without_repeating_them() {
        for bad in ["", "   ", "two words", "tab\there", "naïve"] {
            let e = Credentials::new(Some(&BearerToken::new(bad))).expect_err(bad);
            assert!(e.contains("bearer token"), "{e}");
            if !bad.trim().is_empty() {
                assert!(!e.contains(bad.trim()), "{e}");
            }
        }
    }
}
