//! A reflective walk over an encoded phenopacket, guided by the contract's descriptors.
//!
//! It visits every field that is set, whatever the schema grows into, without building a
//! dynamic message: the protobuf wire format is read in place, and only the facts the checks
//! need are kept — each string's length and path, each `OntologyClass` id and label.
//! (Decoding into `prost_reflect::DynamicMessage` first cost a third of an import's CPU.)

use std::collections::HashMap;
use std::sync::LazyLock;

use casereg_core::FieldViolation;
use casereg_core::case::{OntologyRef, push_violation};
use casereg_core::limits::{MAX_ID_BYTES, MAX_TEXT_BYTES};
use prost_reflect::{Cardinality, DescriptorPool, Kind};

/// Full protobuf name of the ontology class message.
const ONTOLOGY_CLASS: &str = "casereg.v1.OntologyClass";

/// Fields whose ontology class says what a record element *is* (and what search keys on):
/// there a malformed id is an error. Elsewhere (modifiers, units, evidence codes…) it is kept
/// with a warning: published records carry a few such slips (one phenopacket-store record
/// has its modifier's id and label swapped), and refusing the whole record would lose it.
const KEY_CLASS_FIELDS: &[&str] = &["type", "term", "agent", "code", "assay", "disease"];

/// Deepest nesting the walk follows; the schema's own depth is below 10.
const MAX_DEPTH: usize = 32;

/// Highest field number the walk's tables hold (the schema's highest is 21).
const MAX_FIELD_NUMBER: usize = 1_000;

#[derive(Debug, Clone, Copy)]
enum FieldKind {
    /// A string: length-checked.
    Text,
    /// A nested message, by index into `Schema::messages`.
    Message(usize),
    /// Anything else (numbers, enums, bytes, packed scalars): skipped.
    Other,
}

#[derive(Debug)]
struct FieldInfo {
    json_name: String,
    kind: FieldKind,
    repeated: bool,
    /// `id` or `*_id`: bounded by `MAX_ID_BYTES` instead of `MAX_TEXT_BYTES`.
    is_id: bool,
    /// One of [`KEY_CLASS_FIELDS`].
    key_position: bool,
    /// For ontology classes: 1 = `id`, 2 = `label`.
    number: u32,
}

#[derive(Debug, Default)]
struct MessageInfo {
    /// Indexed by field number (the schema's numbers are small and dense).
    fields: Vec<Option<FieldInfo>>,
    ontology_class: bool,
}

#[derive(Debug)]
struct Schema {
    messages: Vec<MessageInfo>,
    phenopacket: usize,
}

/// The walk's view of the contract, built once from the compiled descriptor set.
static SCHEMA: LazyLock<Result<Schema, String>> = LazyLock::new(build_schema);

/// Builds the walk's tables now rather than on the first record (the server calls this
/// when it starts, so that the first write does not pay for reading the descriptors).
pub fn prepare() -> Result<(), String> {
    SCHEMA.as_ref().map(|_| ()).map_err(Clone::clone)
}

fn build_schema() -> Result<Schema, String> {
    let pool = DescriptorPool::decode(casereg_proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| format!("descriptor set: {e}"))?;
    let index: HashMap<String, usize> = pool
        .all_messages()
        .enumerate()
        .map(|(i, m)| (m.full_name().to_owned(), i))
        .collect();
    let mut messages = Vec::with_capacity(index.len());
    for message in pool.all_messages() {
        let mut info = MessageInfo {
            fields: Vec::new(),
            ontology_class: message.full_name() == ONTOLOGY_CLASS,
        };
        for field in message.fields() {
            let kind = match field.kind() {
                Kind::String => FieldKind::Text,
                Kind::Message(inner) => FieldKind::Message(
                    *index
                        .get(inner.full_name())
                        .ok_or_else(|| format!("unknown message {}", inner.full_name()))?,
                ),
                _ => FieldKind::Other,
            };
            let slot = usize::try_from(field.number()).map_err(|e| e.to_string())?;
            if slot > MAX_FIELD_NUMBER {
                return Err(format!(
                    "{}: field number {slot} above {MAX_FIELD_NUMBER}",
                    message.full_name()
                ));
            }
            if info.fields.len() <= slot {
                info.fields.resize_with(slot + 1, || None);
            }
            info.fields[slot] = Some(FieldInfo {
                json_name: field.json_name().to_owned(),
                kind,
                repeated: field.cardinality() == Cardinality::Repeated,
                is_id: field.name() == "id" || field.name().ends_with("_id"),
                key_position: KEY_CLASS_FIELDS.contains(&field.name()),
                number: field.number(),
            });
        }
        messages.push(info);
    }
    let phenopacket = *index
        .get("casereg.v1.Phenopacket")
        .ok_or("casereg.v1.Phenopacket missing from the descriptor set")?;
    Ok(Schema {
        messages,
        phenopacket,
    })
}

/// Walks an encoded `Phenopacket`: bounds every string and collects every ontology class
/// id with its path (`{root}.phenotypicFeatures[2].type.id`). The bytes must be a prost
/// encoding of the typed message (so well-formed); anything else is reported as an error.
pub fn walk_phenopacket<'r>(
    record: &'r [u8],
    root: &str,
    refs: &mut Vec<OntologyRef<'r>>,
    violations: &mut Vec<FieldViolation>,
) -> Result<(), String> {
    let schema = SCHEMA.as_ref().map_err(Clone::clone)?;
    let mut path = root.to_owned();
    let mut walker = Walker {
        schema,
        refs,
        violations,
    };
    walker.message(record, schema.phenopacket, false, &mut path, 0)
}

struct Walker<'a, 'r> {
    schema: &'a Schema,
    refs: &'a mut Vec<OntologyRef<'r>>,
    violations: &'a mut Vec<FieldViolation>,
}

impl<'r> Walker<'_, 'r> {
    fn message(
        &mut self,
        mut bytes: &'r [u8],
        message: usize,
        key_position: bool,
        path: &mut String,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("{path}: nested deeper than {MAX_DEPTH}"));
        }
        let info = &self.schema.messages[message];
        // Occurrences so far of each repeated field, for `[i]` in paths.
        let mut seen: Vec<(u32, usize)> = Vec::new();
        let (mut class_id, mut class_label) = (None, None);
        while !bytes.is_empty() {
            let key = varint(&mut bytes).ok_or_else(|| format!("{path}: truncated field key"))?;
            let number =
                u32::try_from(key >> 3).map_err(|_| format!("{path}: bad field number"))?;
            match key & 7 {
                0 => {
                    varint(&mut bytes).ok_or_else(|| format!("{path}: truncated varint"))?;
                }
                1 => {
                    bytes = bytes
                        .get(8..)
                        .ok_or_else(|| format!("{path}: truncated fixed64"))?
                }
                5 => {
                    bytes = bytes
                        .get(4..)
                        .ok_or_else(|| format!("{path}: truncated fixed32"))?
                }
                2 => {
                    let len = varint(&mut bytes)
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| format!("{path}: truncated length"))?;
                    let value = bytes
                        .get(..len)
                        .ok_or_else(|| format!("{path}: truncated value"))?;
                    bytes = &bytes[len..];
                    let Some(Some(field)) = info.fields.get(number as usize) else {
                        continue;
                    };
                    let mark = path.len();
                    path.push('.');
                    path.push_str(&field.json_name);
                    if field.repeated {
                        let count = match seen.iter_mut().find(|(n, _)| *n == number) {
                            Some((_, count)) => {
                                *count += 1;
                                *count
                            }
                            None => {
                                seen.push((number, 0));
                                0
                            }
                        };
                        push_index(path, count);
                    }
                    match field.kind {
                        FieldKind::Text => {
                            let limit = if field.is_id {
                                MAX_ID_BYTES
                            } else {
                                MAX_TEXT_BYTES
                            };
                            if value.len() > limit {
                                push_violation(
                                    self.violations,
                                    FieldViolation::new(
                                        path.clone(),
                                        format!(
                                            "is {} bytes long; the limit is {limit} bytes",
                                            value.len()
                                        ),
                                    ),
                                );
                            }
                            if info.ontology_class {
                                let text = std::str::from_utf8(value)
                                    .map_err(|_| format!("{path}: not UTF-8"))?;
                                match field.number {
                                    1 => class_id = Some(text),
                                    2 => class_label = Some(text),
                                    _ => {}
                                }
                            }
                        }
                        FieldKind::Message(inner) => {
                            self.message(value, inner, field.key_position, path, depth + 1)?;
                        }
                        FieldKind::Other => {}
                    }
                    path.truncate(mark);
                }
                other => return Err(format!("{path}: unsupported wire type {other}")),
            }
        }
        if info.ontology_class {
            match class_id {
                Some(id) if !id.is_empty() => self.refs.push(OntologyRef {
                    // Every class's path is kept (a note may name it later): concatenated,
                    // not formatted, as this runs for each of them.
                    field: [path.as_str(), ".id"].concat(),
                    id,
                    label: class_label.unwrap_or_default(),
                    must_be_curie: key_position,
                }),
                _ => push_violation(
                    self.violations,
                    FieldViolation::new(format!("{path}.id"), "is required"),
                ),
            }
        }
        Ok(())
    }
}

/// Appends `[i]` to a path without the formatting machinery (this runs for every element
/// of every repeated field).
fn push_index(path: &mut String, i: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = i;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    path.push('[');
    for &digit in &digits[start..] {
        path.push(char::from(digit));
    }
    path.push(']');
}

/// Reads a base-128 varint, advancing `bytes`; `None` when truncated or over 10 bytes.
fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use casereg_proto::v1 as pb;
    use prost::Message as _;

    use super::*;

    fn class(id: &str, label: &str) -> Option<pb::OntologyClass> {
        Some(pb::OntologyClass {
            id: id.to_owned(),
            label: label.to_owned(),
        })
    }

    #[test]
    fn finds_every_ontology_class_with_its_path() {
        let record = pb::Phenopacket {
            id: "p".to_owned(),
            phenotypic_features: vec![
                pb::PhenotypicFeature {
                    r#type: class("HP:0000001", "All"),
                    ..Default::default()
                },
                pb::PhenotypicFeature {
                    r#type: class("HP:0025520", "Calcinosis cutis"),
                    modifiers: vec![
                        class("HP:0012832", "Bilateral").unwrap_or_default(),
                        pb::OntologyClass::default(),
                    ],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let mut refs = Vec::new();
        let mut violations = Vec::new();
        let bytes = record.encode_to_vec();
        walk_phenopacket(&bytes, "phenopacket", &mut refs, &mut violations).unwrap();
        let found: Vec<(&str, &str, bool)> = refs
            .iter()
            .map(|r| (r.field.as_str(), r.id, r.must_be_curie))
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    "phenopacket.phenotypicFeatures[0].type.id",
                    "HP:0000001",
                    true
                ),
                (
                    "phenopacket.phenotypicFeatures[1].type.id",
                    "HP:0025520",
                    true
                ),
                (
                    "phenopacket.phenotypicFeatures[1].modifiers[0].id",
                    "HP:0012832",
                    false
                ),
            ]
        );
        assert_eq!(refs[1].label, "Calcinosis cutis");
        // The empty modifier is set (present) but has no id.
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].field,
            "phenopacket.phenotypicFeatures[1].modifiers[1].id"
        );
    }

    #[test]
    fn bounds_strings_by_kind() {
        let record = pb::Phenopacket {
            id: "i".repeat(MAX_ID_BYTES + 1),
            phenotypic_features: vec![pb::PhenotypicFeature {
                description: "d".repeat(MAX_TEXT_BYTES + 1),
                r#type: class("HP:0000001", &"l".repeat(MAX_TEXT_BYTES)),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut violations = Vec::new();
        walk_phenopacket(
            &record.encode_to_vec(),
            "p",
            &mut Vec::new(),
            &mut violations,
        )
        .unwrap();
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, vec!["p.id", "p.phenotypicFeatures[0].description"]);
    }

    #[test]
    fn indexes_are_written_in_decimal() {
        for i in [0, 7, 10, 99, 1_000, usize::MAX] {
            let mut path = "p.x".to_owned();
            push_index(&mut path, i);
            assert_eq!(path, format!("p.x[{i}]"));
        }
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        for bytes in [&[0x0a, 0x05, b'a'][..], &[0xff; 12][..], &[0x0b][..]] {
            assert!(walk_phenopacket(bytes, "p", &mut Vec::new(), &mut Vec::new()).is_err());
        }
    }
}
