//! Reading Phenopacket JSON (proto3 JSON rules: camelCase or snake_case keys, enum names or
//! numbers, 64-bit integers as numbers or strings; unknown fields are errors).

use std::path::Path;

use casereg_proto::v1 as pb;

use crate::ClientError;

/// Parses one phenopacket from JSON text; `origin` names it in errors.
pub fn parse_phenopacket(text: &str, origin: &str) -> Result<pb::Phenopacket, ClientError> {
    serde_json::from_str(text).map_err(|e| ClientError::Input {
        path: origin.to_owned(),
        message: format!("not a valid Phenopacket JSON document: {e}"),
    })
}

/// Reads one phenopacket from a JSON file, or from standard input when `path` is `-`.
pub fn read_phenopacket(path: &Path) -> Result<pb::Phenopacket, ClientError> {
    let origin = path.display().to_string();
    let text = if origin == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| ClientError::Input {
        path: origin.clone(),
        message: e.to_string(),
    })?;
    parse_phenopacket(&text, &origin)
}

/// Pretty proto3 JSON of any generated message; an error when the message holds something
/// the JSON mapping cannot express (an enum number the contract does not define).
pub fn to_pretty_json<T: serde::Serialize>(value: &T) -> std::io::Result<String> {
    serde_json::to_string_pretty(value)
        .map_err(|e| std::io::Error::other(format!("cannot be written as JSON: {e}")))
}
