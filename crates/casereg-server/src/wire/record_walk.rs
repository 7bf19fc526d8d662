//! A reflective walk over an encoded phenopacket, guided by the contract's descriptors.
//!
//! It visits every field that is set, whatever the schema grows into, without building a
//! dynamic message: the protobuf wire format is read in place, and only the facts the checks
//! need are kept — each string's length and path, each `OntologyClass` id and label.
//! (Decoding into `prost_reflect::DynamicMessage` first cost a third of an import's CPU.)
//!
//! On the way it tells whether the bytes are exactly what prost writes for the message they
//! decode to ([`Form::Canonical`]): fields in prost's order (by number, a `oneof` at its
//! lowest number), each at most once unless repeated, with the wire type prost uses,
//! shortest varints, no proto3 default written out, valid UTF-8, no field the contract does
//! not know, no map. Such bytes are stored as they came, without a decode and re-encode:
//! two equal records then always have equal bytes, which is what the store compares. Bytes
//! that are anything else are decoded and re-encoded first ([`Form::Other`]).
//!
//! It also refuses what the proto3 JSON mapping cannot express, so that a record sent as
//! binary protobuf is held to the same rules as one sent as JSON: an enum field's number
//! must be one the contract defines (prost keeps unknown numbers, and a record holding one
//! could not be exported as Phenopacket JSON).

use std::collections::HashMap;
use std::sync::LazyLock;

use casereg_core::FieldViolation;
use casereg_core::case::{OntologyRef, push_violation};
use casereg_core::limits::{MAX_ID_BYTES, MAX_RECORD_DEPTH, MAX_TEXT_BYTES};
use prost_reflect::{Cardinality, DescriptorPool, EnumDescriptor, FieldDescriptor, Kind};

/// Full protobuf name of the ontology class message.
const ONTOLOGY_CLASS: &str = "casereg.v1.OntologyClass";

/// Fields whose ontology class says what a record element *is* (and what search keys on):
/// there a malformed id is an error. Elsewhere (modifiers, units, evidence codes…) it is kept
/// with a warning: published records carry a few such slips (one phenopacket-store record
/// has its modifier's id and label swapped), and refusing the whole record would lose it.
const KEY_CLASS_FIELDS: &[&str] = &["type", "term", "agent", "code", "assay", "disease"];

/// Highest field number the walk's tables hold (the schema's highest is 21).
const MAX_FIELD_NUMBER: usize = 1_000;

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const FIXED32: u8 = 5;

/// Whether walked bytes are the canonical encoding of their message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Byte for byte what prost writes for the decoded message.
    Canonical,
    /// Decodable perhaps, but not canonical: decode and re-encode before storing.
    Other,
}

#[derive(Debug, Clone, Copy)]
enum FieldKind {
    /// A string: length-checked and UTF-8 checked.
    Text,
    /// A nested message, by index into `Schema::messages`.
    Message(usize),
    /// A number, enum or bytes field.
    Scalar(Scalar),
    /// Packed repeated numbers.
    Packed(Scalar),
}

/// How a scalar is written, and which of its values prost writes back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    /// A varint any value of which is canonical (64-bit integers).
    Varint64,
    /// `int32` and enums: sign-extended to 64 bits.
    Int32,
    /// `uint32` and `sint32`: at most 32 bits.
    Uint32,
    /// 0 or 1.
    Bool,
    Fixed32,
    Fixed64,
    Float,
    Double,
    Bytes,
}

impl Scalar {
    fn of(kind: &Kind) -> Option<Self> {
        Some(match kind {
            Kind::Int64 | Kind::Uint64 | Kind::Sint64 => Self::Varint64,
            Kind::Int32 | Kind::Enum(_) => Self::Int32,
            Kind::Uint32 | Kind::Sint32 => Self::Uint32,
            Kind::Bool => Self::Bool,
            Kind::Fixed32 | Kind::Sfixed32 => Self::Fixed32,
            Kind::Fixed64 | Kind::Sfixed64 => Self::Fixed64,
            Kind::Float => Self::Float,
            Kind::Double => Self::Double,
            Kind::Bytes => Self::Bytes,
            Kind::String | Kind::Message(_) => return None,
        })
    }

    fn wire(self) -> u8 {
        match self {
            Self::Varint64 | Self::Int32 | Self::Uint32 | Self::Bool => VARINT,
            Self::Fixed32 | Self::Float => FIXED32,
            Self::Fixed64 | Self::Double => FIXED64,
            Self::Bytes => LENGTH_DELIMITED,
        }
    }

    /// Whether prost writes `value` (a varint as read) back as the same varint.
    fn keeps_varint(self, value: u64) -> bool {
        match self {
            Self::Int32 => value <= i32::MAX as u64 || value >= i32::MIN as i64 as u64,
            Self::Uint32 => value <= u64::from(u32::MAX),
            Self::Bool => value <= 1,
            _ => true,
        }
    }

    /// Whether prost writes `value` of a field of this type back as it is: `implicit` for a
    /// field without presence, whose default prost leaves out.
    fn keeps(self, value: Value<'_>, implicit: bool) -> bool {
        match value {
            Value::Varint(v) => self.keeps_varint(v) && !(implicit && v == 0),
            Value::Fixed(bits) => !(implicit && self.is_default_fixed(bits)),
            Value::Delimited(bytes) => !(implicit && bytes.is_empty()),
        }
    }

    /// Whether a fixed-width value (little-endian bits) is this type's default, which prost
    /// leaves out (for floats: either zero, as prost compares with `!= 0.0`).
    fn is_default_fixed(self, bits: u64) -> bool {
        match self {
            Self::Float => u32::try_from(bits).is_ok_and(|b| f32::from_bits(b) == 0.0),
            Self::Double => f64::from_bits(bits) == 0.0,
            _ => bits == 0,
        }
    }
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
    /// Where prost writes the field: its number, or the lowest number of its `oneof`.
    order: u32,
    /// The wire type prost writes it with.
    wire: u8,
    /// A proto3 scalar without presence: prost leaves out its default value.
    implicit: bool,
    /// A map, whose entries this walk does not check for order: never canonical.
    map: bool,
    /// For enum fields: the enum, by index into `Schema::enums`.
    enumeration: Option<usize>,
}

impl FieldInfo {
    fn new(field: &FieldDescriptor, kind: FieldKind, enumeration: Option<usize>) -> Self {
        let order = field
            .containing_oneof()
            .filter(|oneof| !oneof.is_synthetic())
            .and_then(|oneof| oneof.fields().map(|f| f.number()).min())
            .unwrap_or_else(|| field.number());
        let repeated = field.cardinality() == Cardinality::Repeated;
        let wire = match kind {
            FieldKind::Scalar(scalar) => scalar.wire(),
            FieldKind::Text | FieldKind::Message(_) | FieldKind::Packed(_) => LENGTH_DELIMITED,
        };
        Self {
            json_name: field.json_name().to_owned(),
            kind,
            repeated,
            is_id: field.name() == "id" || field.name().ends_with("_id"),
            key_position: KEY_CLASS_FIELDS.contains(&field.name()),
            number: field.number(),
            order,
            wire,
            implicit: !repeated && !field.supports_presence(),
            map: field.is_map(),
            enumeration,
        }
    }
}

/// An enum of the contract: its short name and the numbers it defines, with their names.
#[derive(Debug)]
struct EnumInfo {
    name: String,
    values: Vec<(i32, String)>,
}

impl EnumInfo {
    fn new(descriptor: &EnumDescriptor) -> Self {
        Self {
            name: descriptor.name().to_owned(),
            values: descriptor
                .values()
                .map(|v| (v.number(), v.name().to_owned()))
                .collect(),
        }
    }

    /// Whether `value`, an enum varint as read (an `int32`, sign-extended), is defined.
    fn defines(&self, value: u64) -> bool {
        i32::try_from(value as i64).is_ok_and(|n| self.values.iter().any(|(v, _)| *v == n))
    }

    /// What is wrong with the undefined `value`.
    fn refusal(&self, value: u64) -> String {
        let known: Vec<String> = self
            .values
            .iter()
            .map(|(number, name)| format!("{name} ({number})"))
            .collect();
        format!(
            "is {}, which is not a {} value; the values are {}",
            value as i64,
            self.name,
            known.join(", ")
        )
    }
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
    enums: Vec<EnumInfo>,
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
    let enum_index: HashMap<String, usize> = pool
        .all_enums()
        .enumerate()
        .map(|(i, e)| (e.full_name().to_owned(), i))
        .collect();
    let enums = pool.all_enums().map(|e| EnumInfo::new(&e)).collect();
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
                other => {
                    let scalar = Scalar::of(&other)
                        .ok_or_else(|| format!("{}: unexpected kind", field.full_name()))?;
                    if field.is_packed() {
                        FieldKind::Packed(scalar)
                    } else {
                        FieldKind::Scalar(scalar)
                    }
                }
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
            let enumeration = match field.kind() {
                Kind::Enum(e) => Some(
                    *enum_index
                        .get(e.full_name())
                        .ok_or_else(|| format!("unknown enum {}", e.full_name()))?,
                ),
                _ => None,
            };
            info.fields[slot] = Some(FieldInfo::new(&field, kind, enumeration));
        }
        messages.push(info);
    }
    let phenopacket = *index
        .get("casereg.v1.Phenopacket")
        .ok_or("casereg.v1.Phenopacket missing from the descriptor set")?;
    Ok(Schema {
        messages,
        enums,
        phenopacket,
    })
}

/// Walks an encoded `Phenopacket`: bounds every string, collects every ontology class id
/// with its path (`{root}.phenotypicFeatures[2].type.id`), and tells whether the bytes are
/// canonical. Bytes it cannot read as protobuf at all are an error; the findings of a walk
/// that is not [`Form::Canonical`] are incomplete.
pub fn walk_phenopacket<'r>(
    record: &'r [u8],
    root: &str,
    refs: &mut Vec<OntologyRef<'r>>,
    violations: &mut Vec<FieldViolation>,
) -> Result<Form, String> {
    let schema = SCHEMA.as_ref().map_err(Clone::clone)?;
    let mut path = root.to_owned();
    let mut walker = Walker {
        schema,
        refs,
        violations,
        canonical: true,
    };
    walker.message(record, schema.phenopacket, false, &mut path, 0)?;
    Ok(if walker.canonical {
        Form::Canonical
    } else {
        Form::Other
    })
}

struct Walker<'a, 'r> {
    schema: &'a Schema,
    refs: &'a mut Vec<OntologyRef<'r>>,
    violations: &'a mut Vec<FieldViolation>,
    /// Nothing seen so far that prost would write differently.
    canonical: bool,
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
        if depth > MAX_RECORD_DEPTH {
            return Err(format!("{path}: nested deeper than {MAX_RECORD_DEPTH}"));
        }
        let info = &self.schema.messages[message];
        // Occurrences so far of each repeated field, for `[i]` in paths.
        let mut seen: Vec<(u32, usize)> = Vec::new();
        let (mut class_id, mut class_label) = (None, None);
        // The previous field's place in prost's order, and its number.
        let (mut last_order, mut last_number) = (0u32, 0u32);
        while !bytes.is_empty() {
            let key = self
                .varint(&mut bytes)
                .ok_or_else(|| format!("{path}: truncated field key"))?;
            let number =
                u32::try_from(key >> 3).map_err(|_| format!("{path}: bad field number"))?;
            let wire = (key & 7) as u8;
            let value = match wire {
                VARINT => Value::Varint(
                    self.varint(&mut bytes)
                        .ok_or_else(|| format!("{path}: truncated varint"))?,
                ),
                FIXED64 => Value::Fixed(
                    fixed(&mut bytes, 8).ok_or_else(|| format!("{path}: truncated fixed64"))?,
                ),
                FIXED32 => Value::Fixed(
                    fixed(&mut bytes, 4).ok_or_else(|| format!("{path}: truncated fixed32"))?,
                ),
                LENGTH_DELIMITED => {
                    let len = self
                        .varint(&mut bytes)
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| format!("{path}: truncated length"))?;
                    let value = bytes
                        .get(..len)
                        .ok_or_else(|| format!("{path}: truncated value"))?;
                    bytes = &bytes[len..];
                    Value::Delimited(value)
                }
                other => return Err(format!("{path}: unsupported wire type {other}")),
            };
            let Some(Some(field)) = info.fields.get(number as usize) else {
                // A field this contract does not have: prost drops it.
                self.canonical = false;
                continue;
            };
            let in_order = field.order > last_order
                || (field.order == last_order
                    && number == last_number
                    && field.repeated
                    && !matches!(field.kind, FieldKind::Packed(_)));
            (last_order, last_number) = (field.order, number);
            let kept = match (field.kind, value) {
                (FieldKind::Scalar(scalar), value) => scalar.keeps(value, field.implicit),
                _ => true,
            };
            if !in_order || wire != field.wire || field.map || !kept {
                self.canonical = false;
            }
            match (field.kind, value) {
                (FieldKind::Packed(scalar), Value::Delimited(value)) => {
                    if let Some(enumeration) = field.enumeration {
                        self.packed_enums(enumeration, value, field, number, &mut seen, path);
                    }
                    self.packed(scalar, value);
                }
                (FieldKind::Scalar(_), Value::Varint(value)) => {
                    if let Some(enumeration) = field.enumeration
                        && !self.schema.enums[enumeration].defines(value)
                    {
                        let mark = path.len();
                        push_field(path, field, number, &mut seen);
                        let refusal = self.schema.enums[enumeration].refusal(value);
                        push_violation(self.violations, FieldViolation::new(path.clone(), refusal));
                        path.truncate(mark);
                    }
                }
                (FieldKind::Text | FieldKind::Message(_), Value::Delimited(value)) => {
                    let mark = path.len();
                    push_field(path, field, number, &mut seen);
                    if let FieldKind::Message(inner) = field.kind {
                        self.message(value, inner, field.key_position, path, depth + 1)?;
                    } else if let Some(text) = self.text(field, value, path)
                        && info.ontology_class
                    {
                        match field.number {
                            1 => class_id = Some(text),
                            2 => class_label = Some(text),
                            _ => {}
                        }
                    }
                    path.truncate(mark);
                }
                // A wire type this field is never written with (already marked).
                _ => {}
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

    /// A string field's value: its length bounded, and the text when it is UTF-8.
    fn text(&mut self, field: &FieldInfo, value: &'r [u8], path: &str) -> Option<&'r str> {
        let limit = if field.is_id {
            MAX_ID_BYTES
        } else {
            MAX_TEXT_BYTES
        };
        if value.len() > limit {
            push_violation(
                self.violations,
                FieldViolation::new(
                    path.to_owned(),
                    format!("is {} bytes long; the limit is {limit} bytes", value.len()),
                ),
            );
        }
        if field.implicit && value.is_empty() {
            self.canonical = false;
        }
        let text = std::str::from_utf8(value).ok();
        if text.is_none() {
            // Not a string prost would read: the decode reports it.
            self.canonical = false;
        }
        text
    }

    /// Refuses each number of a packed repeated enum field that the enum does not define.
    fn packed_enums(
        &mut self,
        enumeration: usize,
        mut value: &[u8],
        field: &FieldInfo,
        number: u32,
        seen: &mut Vec<(u32, usize)>,
        path: &mut String,
    ) {
        while let Some(v) = varint(&mut value) {
            let mark = path.len();
            push_field(path, field, number, seen);
            let info = &self.schema.enums[enumeration];
            if !info.defines(v) {
                push_violation(
                    self.violations,
                    FieldViolation::new(path.clone(), info.refusal(v)),
                );
            }
            path.truncate(mark);
        }
    }

    /// Packed repeated numbers: prost writes none as no field at all.
    fn packed(&mut self, scalar: Scalar, mut value: &[u8]) {
        if value.is_empty() {
            self.canonical = false;
        }
        let width = match scalar.wire() {
            FIXED32 => 4,
            FIXED64 => 8,
            VARINT => {
                while !value.is_empty() {
                    match self.varint(&mut value) {
                        Some(v) if scalar.keeps_varint(v) => {}
                        _ => {
                            self.canonical = false;
                            return;
                        }
                    }
                }
                return;
            }
            _ => {
                self.canonical = false;
                return;
            }
        };
        if !value.len().is_multiple_of(width) {
            self.canonical = false;
        }
    }

    /// Reads a varint, noting one written longer than it needs to be.
    fn varint(&mut self, bytes: &mut &[u8]) -> Option<u64> {
        let before = bytes.len();
        let value = varint(bytes)?;
        let used = before - bytes.len();
        if used != varint_len(value) {
            self.canonical = false;
        }
        Some(value)
    }
}

/// A field's value as read from the wire.
#[derive(Clone, Copy)]
enum Value<'r> {
    Varint(u64),
    Fixed(u64),
    Delimited(&'r [u8]),
}

/// Reads `width` (4 or 8) little-endian bytes, advancing `bytes`.
fn fixed(bytes: &mut &[u8], width: usize) -> Option<u64> {
    let value = bytes.get(..width)?;
    *bytes = &bytes[width..];
    Some(
        value
            .iter()
            .rev()
            .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte)),
    )
}

/// Bytes in the shortest varint for `value`.
fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `.jsonName` of `field` (number `number`) to `path`, and for a repeated field the
/// index of this occurrence, counted in `seen`.
fn push_field(path: &mut String, field: &FieldInfo, number: u32, seen: &mut Vec<(u32, usize)>) {
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

/// Reads a base-128 varint, advancing `bytes`; `None` when truncated, over 10 bytes, or
/// over 64 bits (as prost refuses them).
fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return None;
        }
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
    fn enum_numbers_the_contract_does_not_define_are_refused_with_their_path() {
        let record = pb::Phenopacket {
            id: "p".to_owned(),
            subject: Some(pb::Individual {
                id: "s".to_owned(),
                sex: 99,
                karyotypic_sex: -1,
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut violations = Vec::new();
        let bytes = record.encode_to_vec();
        walk_phenopacket(&bytes, "p", &mut Vec::new(), &mut violations).unwrap();
        let found: Vec<(&str, &str)> = violations
            .iter()
            .map(|v| (v.field.as_str(), v.description.as_str()))
            .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, "p.subject.sex");
        assert!(
            found[0].1.starts_with(
                "is 99, which is not a Sex value; the values are UNKNOWN_SEX (0), FEMALE (1)"
            ),
            "{found:?}"
        );
        assert_eq!(found[1].0, "p.subject.karyotypicSex");
        assert!(
            found[1]
                .1
                .starts_with("is -1, which is not a KaryotypicSex value")
        );

        let mut defined = record;
        defined.subject.as_mut().unwrap().sex = pb::Sex::Female.into();
        defined.subject.as_mut().unwrap().karyotypic_sex = pb::KaryotypicSex::Xx.into();
        let mut violations = Vec::new();
        walk_phenopacket(
            &defined.encode_to_vec(),
            "p",
            &mut Vec::new(),
            &mut violations,
        )
        .unwrap();
        assert!(violations.is_empty(), "{violations:?}");
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

    /// The committed sample of real records, each as prost encodes it.
    fn sample() -> Vec<Vec<u8>> {
        use std::io::BufRead as _;
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/phenopacket-store-sample.jsonl.gz"
        );
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        std::io::BufReader::new(flate2::read::GzDecoder::new(file))
            .lines()
            .map(|line| {
                let line = line.expect("the sample reads");
                serde_json::from_str::<pb::Phenopacket>(&line)
                    .expect("the sample parses")
                    .encode_to_vec()
            })
            .collect()
    }

    fn form(bytes: &[u8]) -> Result<Form, String> {
        walk_phenopacket(bytes, "p", &mut Vec::new(), &mut Vec::new())
    }

    /// Bytes found canonical are exactly what prost writes for what they decode to.
    fn assert_sound(bytes: &[u8], what: &str) {
        if form(bytes) == Ok(Form::Canonical) {
            let decoded = pb::Phenopacket::decode(bytes)
                .unwrap_or_else(|e| panic!("{what}: called canonical, but does not decode: {e}"));
            assert!(
                decoded.encode_to_vec() == bytes,
                "{what}: called canonical, but prost writes it differently"
            );
        }
    }

    /// The (start, end) of each top-level field of an encoded message.
    fn spans(mut bytes: &[u8]) -> Vec<(usize, usize)> {
        let total = bytes.len();
        let mut spans = Vec::new();
        while !bytes.is_empty() {
            let start = total - bytes.len();
            let key = varint(&mut bytes).expect("key");
            match key & 7 {
                0 => {
                    varint(&mut bytes).expect("varint");
                }
                1 => bytes = &bytes[8..],
                5 => bytes = &bytes[4..],
                2 => {
                    let len = usize::try_from(varint(&mut bytes).expect("len")).expect("len");
                    bytes = &bytes[len..];
                }
                other => panic!("wire type {other}"),
            }
            spans.push((start, total - bytes.len()));
        }
        spans
    }

    #[test]
    fn prost_encodings_of_real_records_are_canonical() {
        let sample = sample();
        assert!(sample.len() > 100);
        for (i, bytes) in sample.iter().enumerate() {
            assert_eq!(form(bytes), Ok(Form::Canonical), "sample record {i}");
        }
    }

    #[test]
    fn other_encodings_of_the_same_record_are_not_canonical() {
        let record = pb::Phenopacket {
            id: "p".to_owned(),
            subject: Some(pb::Individual {
                id: "s".to_owned(),
                sex: pb::Sex::Female.into(),
                ..Default::default()
            }),
            phenotypic_features: vec![pb::PhenotypicFeature {
                r#type: class("HP:0025520", "Calcinosis cutis"),
                ..Default::default()
            }],
            meta_data: Some(pb::MetaData {
                created_by: "c".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = record.encode_to_vec();
        assert_eq!(form(&bytes), Ok(Form::Canonical));
        let spans = spans(&bytes);
        let field = |i: usize| &bytes[spans[i].0..spans[i].1];
        let other_forms: Vec<(&str, Vec<u8>)> = vec![
            (
                "fields swapped",
                [field(1), field(0), field(2), field(3)].concat(),
            ),
            (
                "a field twice",
                [field(0), field(0), field(1), field(2), field(3)].concat(),
            ),
            // An unknown field 99 (varint 1), which prost drops.
            ("unknown field", [&bytes[..], &[0x98, 0x06, 0x01]].concat()),
            // `excluded: false` written out in the feature (field 3 of the feature).
            ("explicit default", {
                let feature = &field(2)[2..];
                let longer = [feature, &[0x18, 0x00]].concat();
                let len = u8::try_from(longer.len()).expect("short");
                [field(0), field(1), &[0x1a, len], &longer, field(3)].concat()
            }),
            // The id's length as a two-byte varint.
            (
                "long varint",
                [&[0x0a, 0x81, 0x00, b'p'][..], field(1), field(2), field(3)].concat(),
            ),
            // The id as bytes that are not UTF-8.
            (
                "not UTF-8",
                [&[0x0a, 0x01, 0xff][..], field(1), field(2), field(3)].concat(),
            ),
            // `sex` (an enum, field 6 of the subject) as a 5-byte varint of 2^32 - 1.
            ("truncated enum", {
                let subject = [
                    &[0x0a, 0x01, b's', 0x30][..],
                    &[0xff, 0xff, 0xff, 0xff, 0x0f],
                ]
                .concat();
                let len = u8::try_from(subject.len()).expect("short");
                [field(0), &[0x12, len], &subject, field(2), field(3)].concat()
            }),
        ];
        for (what, other) in &other_forms {
            assert_ne!(form(other), Ok(Form::Canonical), "{what}");
            assert_sound(other, what);
        }
    }

    /// Damaged copies of real records: whatever the walk calls canonical, prost writes back
    /// byte for byte.
    #[test]
    fn damaged_records_called_canonical_are_canonical() {
        // xorshift64*: a fixed, repeatable sequence.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let mut canonical = 0;
        for (i, bytes) in sample().iter().enumerate().take(200) {
            for _ in 0..20 {
                let mut damaged = bytes.clone();
                let at = usize::try_from(next() % bytes.len() as u64).expect("small");
                let byte = u8::try_from(next() & 0xff).expect("a byte");
                match next() % 3 {
                    0 => damaged[at] = byte,
                    1 => damaged.insert(at, byte),
                    _ => {
                        damaged.remove(at);
                    }
                }
                assert_sound(&damaged, &format!("sample record {i}, damaged at {at}"));
                canonical += usize::from(form(&damaged) == Ok(Form::Canonical));
            }
        }
        // Many damages leave a valid record (a changed letter of a label): the check is
        // exercised on both sides.
        assert!(
            canonical > 100,
            "{canonical} damaged records called canonical"
        );
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        for bytes in [&[0x0a, 0x05, b'a'][..], &[0xff; 12][..], &[0x0b][..]] {
            assert!(walk_phenopacket(bytes, "p", &mut Vec::new(), &mut Vec::new()).is_err());
        }
    }
}
