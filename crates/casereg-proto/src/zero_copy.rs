//! Wire-compatible views of the network's aggregate answers whose strings share the
//! received buffer.
//!
//! A coordinator reads the full distribution of every center: hundreds of cells, each with
//! an id and a label. Decoded as [`crate::v1`] messages, every one of those strings is a
//! fresh allocation and copy, and most are dropped again once the merge cuts to the top N.
//! These messages have the same field numbers and wire types as their `v1` namesakes, with
//! each `string` read as [`Bytes`] (a `string` and a `bytes` field are encoded alike), so
//! decoding one only takes reference-counted slices of the message buffer. The bytes are
//! not checked as UTF-8 here: whoever reads them as text must (`casereg_core::text::Text`).
//!
//! Only what a coordinator decodes is mirrored. A test checks every field against the
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

#[cfg(test)]
mod tests {
    use super::*;

    use prost::Message as _;
    use prost_types::field_descriptor_proto::Type;

    /// Every field of a message of the contract: (number, type, repeated).
    fn contract_fields(message: &str) -> Vec<(i32, Type, bool)> {
        let set = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET)
            .expect("the contract's descriptors decode");
        let descriptor = set
            .file
            .iter()
            .filter(|f| f.package() == "casereg.v1")
            .flat_map(|f| &f.message_type)
            .find(|m| m.name() == message)
            .unwrap_or_else(|| panic!("{message} is in the contract"));
        descriptor
            .field
            .iter()
            .map(|f| {
                let repeated = f.label() == prost_types::field_descriptor_proto::Label::Repeated;
                (f.number(), f.r#type(), repeated)
            })
            .collect()
    }

    #[test]
    fn mirrors_every_field_of_the_contract() {
        use Type::{Bool, Message, String, Uint64};
        let mirrored: [(&str, Vec<(i32, Type, bool)>); 4] = [
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
}
