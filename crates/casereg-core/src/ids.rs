//! Typed identifiers with checked constructors: past the boundary nothing is a raw string.

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::limits::{MAX_CENTER_ID_BYTES, MAX_ID_BYTES};

/// Why a string is not a valid identifier of some kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(pub String);

/// A registry case id: 16 lowercase hex digits (64 bits of SHA-256 of center and external id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaseId([u8; CaseId::LEN]);

impl CaseId {
    /// Length in characters.
    pub const LEN: usize = 16;

    /// Parses a case id as written by the registry.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let bytes = text.as_bytes();
        if bytes.len() != Self::LEN
            || !bytes
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        {
            return Err(IdError(format!(
                "a case id is {} lowercase hex digits, got {:?}",
                Self::LEN,
                truncate_for_message(text)
            )));
        }
        let mut out = [0u8; Self::LEN];
        out.copy_from_slice(bytes);
        Ok(Self(out))
    }

    /// The id a record gets from its center and its own (phenopacket) id. Deterministic, so
    /// re-importing a record anywhere yields the same case id and creation is idempotent.
    pub fn derive(center: &CenterId, external: &ExternalId) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(center.as_str().as_bytes());
        hasher.update([0u8]);
        hasher.update(external.as_str().as_bytes());
        let digest = hasher.finalize();
        let mut out = [0u8; Self::LEN];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, byte) in digest.iter().take(Self::LEN / 2).enumerate() {
            out[2 * i] = HEX[usize::from(byte >> 4)];
            out[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
        }
        Self(out)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Invariant: constructed only from ASCII hex digits.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The id as the bytes of its sled key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A center (hospital, registry node) id: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CenterId(String);

impl CenterId {
    /// Checks and wraps a center id.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let ok = !text.is_empty()
            && text.len() <= MAX_CENTER_ID_BYTES
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(IdError(format!(
                "a center id is 1 to {MAX_CENTER_ID_BYTES} ASCII letters, digits, '-', '_' or '.', got {:?}",
                truncate_for_message(text)
            )))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CenterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The record's own id (a phenopacket's `id`): non-empty, at most [`MAX_ID_BYTES`], no
/// control characters and no leading or trailing whitespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExternalId(String);

impl ExternalId {
    /// Checks and wraps an external id.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        if text.is_empty() {
            return Err(IdError("is required".to_owned()));
        }
        if text.len() > MAX_ID_BYTES {
            return Err(IdError(format!(
                "is {} bytes long; the limit is {MAX_ID_BYTES} bytes",
                text.len()
            )));
        }
        if text.chars().any(char::is_control) || text.trim() != text {
            return Err(IdError(
                "must not contain control characters or leading/trailing whitespace".to_owned(),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A compact ontology CURIE such as `HP:0001250` or `NCIT:C49488`: a prefix that starts with
/// a letter and continues with letters, digits, `_`, `-` or `.`, a colon, and a local part
/// without whitespace. At most [`MAX_ID_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Curie {
    text: String,
    colon: usize,
}

impl Curie {
    /// Checks the syntax of a CURIE. HPO ids are further required to be `HP:` + 7 digits.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let colon = Self::check(text)?;
        Ok(Self {
            text: text.to_owned(),
            colon,
        })
    }

    /// Checks a CURIE without keeping it (no allocation on success): the HPO term when it is
    /// an HPO id, `None` for other prefixes.
    pub fn check_term(text: &str) -> Result<Option<TermId>, IdError> {
        let colon = Self::check(text)?;
        if &text[..colon] == "HP" {
            Ok(text[colon + 1..].parse().ok().map(TermId))
        } else {
            Ok(None)
        }
    }

    /// The syntax check; returns the position of the colon.
    fn check(text: &str) -> Result<usize, IdError> {
        let bad = |why: &str| -> Result<usize, IdError> {
            Err(IdError(format!(
                "{:?} is not a CURIE ({why}); expected PREFIX:LOCAL such as HP:0001250",
                truncate_for_message(text)
            )))
        };
        if text.len() > MAX_ID_BYTES {
            return bad(&format!("longer than {MAX_ID_BYTES} bytes"));
        }
        let Some(colon) = text.find(':') else {
            return bad("no ':' between prefix and local id");
        };
        let (prefix, local) = (&text[..colon], &text[colon + 1..]);
        let prefix_ok = prefix
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !prefix_ok {
            return bad(
                "the prefix must start with a letter and hold only letters, digits, '_', '-', '.'",
            );
        }
        if local.is_empty() || local.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("the local id must be non-empty and without whitespace");
        }
        if prefix == "HP" && (local.len() != 7 || !local.bytes().all(|b| b.is_ascii_digit())) {
            return bad("an HPO id is HP: followed by exactly 7 digits");
        }
        Ok(colon)
    }

    /// The prefix, e.g. `HP`.
    pub fn prefix(&self) -> &str {
        &self.text[..self.colon]
    }

    /// The local part, e.g. `0001250`.
    pub fn local(&self) -> &str {
        &self.text[self.colon + 1..]
    }

    /// The whole CURIE.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The HPO term this CURIE names, if it is an HPO id.
    pub fn hpo_term(&self) -> Option<TermId> {
        if self.prefix() == "HP" {
            self.local().parse().ok().map(TermId)
        } else {
            None
        }
    }
}

impl fmt::Display for Curie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An HPO term, by its number (`HP:0001250` is `TermId(1250)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TermId(pub u32);

impl TermId {
    /// Parses `HP:` followed by 7 digits.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        match Curie::parse(text)?.hpo_term() {
            Some(term) => Ok(term),
            None => Err(IdError(format!(
                "{:?} is not an HPO id (HP:0000000)",
                truncate_for_message(text)
            ))),
        }
    }
}

impl fmt::Display for TermId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HP:{:07}", self.0)
    }
}

/// Keeps error messages readable (and bounded) when the offending input is huge.
pub(crate) fn truncate_for_message(text: &str) -> String {
    const SHOWN: usize = 80;
    if text.len() <= SHOWN {
        return text.to_owned();
    }
    let mut end = SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids_round_trip_and_reject_other_text() {
        let center = CenterId::parse("center-a").unwrap();
        let id = CaseId::derive(&center, &ExternalId::parse("PMID_1_patient_1").unwrap());
        assert_eq!(CaseId::parse(id.as_str()).unwrap(), id);
        for bad in [
            "",
            "0123",
            "0123456789ABCDEF",
            "0123456789abcdeg",
            "0123456789abcdef0",
        ] {
            assert!(CaseId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn case_id_depends_on_center_and_external_id() {
        let a = CenterId::parse("a").unwrap();
        let b = CenterId::parse("b").unwrap();
        let x = ExternalId::parse("x").unwrap();
        let y = ExternalId::parse("y").unwrap();
        assert_ne!(CaseId::derive(&a, &x), CaseId::derive(&b, &x));
        assert_ne!(CaseId::derive(&a, &x), CaseId::derive(&a, &y));
        assert_eq!(CaseId::derive(&a, &x), CaseId::derive(&a, &x));
    }

    #[test]
    fn curies_are_checked() {
        for good in [
            "HP:0001250",
            "NCIT:C49488",
            "LOINC:2157-6",
            "UCUM:mg/dL",
            "NCBITaxon:9606",
            "DOI:10.7326/aimcc.2023.1411",
        ] {
            assert!(Curie::parse(good).is_ok(), "{good} rejected");
        }
        for bad in [
            "HP0001250",
            "HP:12",
            "HP:000125a",
            ":x",
            "1HP:0001250",
            "HP:",
            "NCIT:C 1",
            "a b:c",
        ] {
            assert!(Curie::parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            Curie::parse("HP:0001250").unwrap().hpo_term(),
            Some(TermId(1250))
        );
        assert_eq!(TermId(1250).to_string(), "HP:0001250");
    }

    #[test]
    fn ids_at_and_past_the_length_limit() {
        let at = "x".repeat(MAX_ID_BYTES);
        assert!(ExternalId::parse(&at).is_ok());
        assert!(ExternalId::parse(&format!("{at}x")).is_err());
        let curie = format!("X:{}", "1".repeat(MAX_ID_BYTES - 2));
        assert!(Curie::parse(&curie).is_ok());
        assert!(Curie::parse(&format!("{curie}1")).is_err());
        assert!(CenterId::parse(&"c".repeat(MAX_CENTER_ID_BYTES)).is_ok());
        assert!(CenterId::parse(&"c".repeat(MAX_CENTER_ID_BYTES + 1)).is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Any text is either a CURIE that prints back as itself, or an error: never a
            /// panic, whatever the bytes.
            #[test]
            fn curie_parsing_is_total(text in "\\PC{0,300}") {
                if let Ok(curie) = Curie::parse(&text) {
                    prop_assert_eq!(curie.as_str(), text.as_str());
                    prop_assert_eq!(format!("{}:{}", curie.prefix(), curie.local()), text.as_str());
                }
                let _ = CaseId::parse(&text);
                let _ = CenterId::parse(&text);
                let _ = ExternalId::parse(&text);
            }

            /// Every derived case id parses back to itself.
            #[test]
            fn derived_case_ids_parse(center in "[a-z0-9-]{1,20}", external in "[^\\p{Cc}]{1,50}") {
                let external = external.trim();
                prop_assume!(!external.is_empty());
                let id = CaseId::derive(&CenterId::parse(&center).unwrap(), &ExternalId::parse(external).unwrap());
                prop_assert_eq!(CaseId::parse(id.as_str()).unwrap(), id);
            }
        }
    }
}
