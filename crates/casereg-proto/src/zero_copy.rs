//! Wire-compatible messages whose strings or nested records share the received buffer.
//!
//! - A coordinator reads the full distribution of every center: hundreds of cells, each with
//!   an id and a label. Decoded as [`crate::v1`] messages, every one of those strings is a
//!   fresh allocation and copy, and most are dropped again once the merge cuts to the top N.
//! - A bulk import carries thousands of phenopackets that the server checks and stores in
//!   their encoding; decoding each into a `v1::Phenopacket` only to encode it again was
//!   the largest single cost of an import.
//!
//! These messages have the same field numbers and wire types as their `v1` namesakes, with
//! each `string` or nested record read as [`Bytes`] (a `string`, a message and a `bytes`
//! field are all encoded alike), so decoding one only takes reference-counted slices of the
//! message buffer. The bytes are not checked here: whoever reads them must (as text,
//! `casereg_core::text::Text`; as a record, the server's record checks).
//!
//! Only what is decoded this way is mirrored. A test checks every field against the
//! contract's descriptors, so a field added to the `.proto` files fails the build's tests
//! until it is added here too.

use bytes::Bytes;

use crate::v1;

/// `casereg.v1.NetworkAggregateResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NetworkAggregateResponse {
    #[prost(message, optional, tag = "1")]
    pub merged: Option<AggregateResponse>,
    #[prost(bool, tag = "2")]
    pub partial: bool,
    #[prost(message, repeated, tag = "3")]
    pub centers: Vec<v1::CenterOutcome>,
}

/// `casereg.v1.AggregateResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AggregateResponse {
    #[prost(message, repeated, tag = "1")]
    pub cells: Vec<AggregateCell>,
    #[prost(message, optional, tag = "2")]
    pub total: Option<v1::Count>,
    #[prost(message, optional, tag = "3")]
    pub other: Option<v1::Count>,
    #[prost(message, optional, tag = "4")]
    pub none: Option<v1::Count>,
    #[prost(uint64, tag = "5")]
    pub min_cell_count: u64,
}

/// `casereg.v1.AggregateCell`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AggregateCell {
    #[prost(message, repeated, tag = "1")]
    pub keys: Vec<GroupKey>,
    #[prost(message, optional, tag = "2")]
    pub count: Option<v1::Count>,
}

/// `casereg.v1.GroupKey`, its strings as bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupKey {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub label: Bytes,
}

/// `casereg.v1.ImportCasesRequest`, its records' phenopackets left encoded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImportCasesRequest {
    #[prost(message, optional, tag = "1")]
    pub options: Option<v1::ImportOptions>,
    #[prost(message, repeated, tag = "2")]
    pub records: Vec<ImportRecord>,
}

/// `casereg.v1.ImportRecord`, its phenopacket as the bytes of its encoding (`None` when the
/// field is not set). Should the field come twice in one record, the last is kept, where a
/// typed decoder would merge the two; encoders write a message field once.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImportRecord {
    #[prost(string, tag = "1")]
    pub source: String,
    #[prost(bytes = "bytes", optional, tag = "2")]
    pub phenopacket: Option<Bytes>,
}

impl From<v1::ImportCasesRequest> for ImportCasesRequest {
    /// The typed request in this form: each phenopacket encoded.
    fn from(request: v1::ImportCasesRequest) -> Self {
        use prost::Message as _;
        Self {
            options: request.options,
            records: request
                .records
                .into_iter()
                .map(|record| ImportRecord {
                    source: record.source,
                    phenopacket: record.phenopacket.map(|p| Bytes::from(p.encode_to_vec())),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use prost::Message as _;
    use prost_types::field_descriptor_proto::Type;

    /// Every field of a message of the contract: (number, type, repeated).
    fn contract_fields(message: &str) -> Vec<(i32, Type, bool)> {
        crate::contract::message(message)
            .field
            .iter()
            .map(|f| {
                let repeated = f.label() == prost_types::field_descriptor_proto::Label::Repeated;
                (f.number(), f.r#type(), repeated)
            })
            .collect()
    }

    /// A field as the test compares it: number, type, repeated.
    type Field = (i32, Type, bool);

    #[test]
    fn mirrors_every_field_of_the_contract() {
        use Type::{Bool, Message, String, Uint64};
        let mirrored: [(&str, Vec<Field>); 6] = [
            (
                "NetworkAggregateResponse",
                vec![(1, Message, false), (2, Bool, false), (3, Message, true)],
            ),
            (
                "AggregateResponse",
                vec![
                    (1, Message, true),
                    (2, Message, false),
                    (3, Message, false),
                    (4, Message, false),
                    (5, Uint64, false),
                ],
            ),
            (
                "AggregateCell",
                vec![(1, Message, true), (2, Message, false)],
            ),
            // Read here as bytes: the same wire type.
            ("GroupKey", vec![(1, String, false), (2, String, false)]),
            (
                "ImportCasesRequest",
                vec![(1, Message, false), (2, Message, true)],
            ),
            // The phenopacket read here as bytes: the same wire type.
            (
                "ImportRecord",
                vec![(1, String, false), (2, Message, false)],
            ),
        ];
        for (message, fields) in mirrored {
            assert_eq!(contract_fields(message), fields, "{message}");
        }
    }

    #[test]
    fn reads_what_the_contract_writes_and_back() {
        let count = |value| {
            Some(v1::Count {
                value,
                precision: v1::Precision::AtLeast.into(),
            })
        };
        let answer = v1::NetworkAggregateResponse {
            merged: Some(v1::AggregateResponse {
                cells: vec![v1::AggregateCell {
                    keys: vec![
                        v1::GroupKey {
                            id: "OMIM:154700".to_owned(),
                            label: "Marfan syndrome".to_owned(),
                        },
                        v1::GroupKey {
                            id: "FEMALE".to_owned(),
                            label: "female — ♀".to_owned(),
                        },
                    ],
                    count: count(7),
                }],
                total: count(11),
                other: count(2),
                none: count(3),
                min_cell_count: 5,
            }),
            partial: true,
            centers: vec![v1::CenterOutcome {
                center: "c1".to_owned(),
                message: "answered".to_owned(),
                ..Default::default()
            }],
        };
        let wire = answer.encode_to_vec();
        let view = NetworkAggregateResponse::decode(Bytes::from(wire.clone())).expect("decodes");
        let merged = view.merged.as_ref().expect("merged");
        assert_eq!(merged.cells[0].keys[1].label, "female — ♀".as_bytes());
        assert_eq!(merged.min_cell_count, 5);
        assert_eq!(view.encode_to_vec(), wire);
    }

    #[test]
    fn an_import_request_keeps_each_record_encoded() {
        let record = v1::Phenopacket {
            id: "case-1".to_owned(),
            ..Default::default()
        };
        let request = v1::ImportCasesRequest {
            options: Some(v1::ImportOptions {
                report_all: true,
                ..Default::default()
            }),
            records: vec![
                v1::ImportRecord {
                    source: "cases.jsonl:1".to_owned(),
                    phenopacket: Some(record.clone()),
                },
                // Set but empty, and not set: told apart.
                v1::ImportRecord {
                    source: String::new(),
                    phenopacket: Some(v1::Phenopacket::default()),
                },
                v1::ImportRecord::default(),
            ],
        };
        let wire = request.encode_to_vec();
        let read = ImportCasesRequest::decode(Bytes::from(wire.clone())).expect("decodes");
        assert_eq!(read.records[0].source, "cases.jsonl:1");
        assert_eq!(
            read.records[0].phenopacket.as_deref(),
            Some(record.encode_to_vec().as_slice())
        );
        assert_eq!(read.records[1].phenopacket.as_deref(), Some(&[][..]));
        assert_eq!(read.records[2].phenopacket, None);
        assert_eq!(read.encode_to_vec(), wire);
        assert_eq!(ImportCasesRequest::from(request), read);
    }
}
