//! Page sizes and page tokens: opaque to callers, a prefix naming the listing and a
//! position.

use base64::Engine as _;

use crate::error::{CoreError, FieldViolation, Result};
use crate::ids::CaseId;
use crate::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

pub(super) fn checked_page_size(page_size: u32) -> Result<usize> {
    match page_size {
        0 => Ok(DEFAULT_PAGE_SIZE as usize),
        n if n > MAX_PAGE_SIZE => Err(CoreError::Invalid(vec![FieldViolation::new(
            "page_size",
            format!(
                "is {n}; the limit is {MAX_PAGE_SIZE} (0 means the default, {DEFAULT_PAGE_SIZE})"
            ),
        )])),
        n => Ok(n as usize),
    }
}

pub(super) fn encode_page_token(last: &CaseId) -> String {
    encode_token(PAGE_TOKEN_PREFIX, last.as_str())
}

pub(super) fn decode_page_token(token: &str) -> Result<CaseId> {
    let text = decode_token(PAGE_TOKEN_PREFIX, token, "this listing")?;
    CaseId::parse(&text).map_err(|_| invalid_token("this listing"))
}

pub(super) fn decode_search_token(token: &str) -> Result<u32> {
    let text = decode_token(SEARCH_TOKEN_PREFIX, token, "a search")?;
    text.parse().map_err(|_| invalid_token("a search"))
}

/// Page tokens are opaque to callers: a prefix naming the kind of listing and a position.
pub(super) fn encode_token(prefix: &str, position: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{prefix}{position}"))
}

pub(super) fn decode_token(prefix: &str, token: &str, listing: &str) -> Result<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid_token(listing))?;
    let text = String::from_utf8(bytes).map_err(|_| invalid_token(listing))?;
    text.strip_prefix(prefix)
        .map(str::to_owned)
        .ok_or_else(|| invalid_token(listing))
}

pub(super) fn invalid_token(listing: &str) -> CoreError {
    CoreError::Invalid(vec![FieldViolation::new(
        "page_token",
        format!(
            "is not a token returned by {listing}; pass next_page_token unchanged or leave it empty"
        ),
    )])
}

/// Prefix of page tokens, so a token from another listing or version is recognised.
pub(super) const PAGE_TOKEN_PREFIX: &str = "c1:";

/// Prefix of search page tokens (followed by the last document number returned).
pub(super) const SEARCH_TOKEN_PREFIX: &str = "s1:";
