//! The stored form of a case version: a length-delimited protobuf envelope (`StoredCase`,
//! with the search facts) followed by the record's bytes, so listings and the index read
//! the envelope alone.

use prost::Message as _;

use crate::case::{AgeSpan, CaseDigest, CaseFacts, CaseRecord, CaseStatus, Coded, UnixMicros};
use crate::error::{CoreError, Result};
use crate::ids::{CaseId, CenterId, ExternalId, TermId};

/// The on-disk form of a case (a protobuf message, so fields can be added compatibly).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct StoredCase {
    #[prost(string, tag = "1")]
    pub(super) case_id: String,
    #[prost(string, tag = "2")]
    pub(super) center_id: String,
    #[prost(uint64, tag = "3")]
    pub(super) version: u64,
    #[prost(int64, tag = "4")]
    pub(super) created_micros: i64,
    #[prost(int64, tag = "5")]
    pub(super) updated_micros: i64,
    /// 1 active, 2 retracted.
    #[prost(uint32, tag = "6")]
    pub(super) status: u32,
    #[prost(string, tag = "7")]
    pub(super) retraction_reason: String,
    #[prost(string, tag = "8")]
    pub(super) external_id: String,
    /// The encoded phenopacket: empty in an envelope; set in the `casereg-store-3` layout's
    /// versions.
    #[prost(bytes = "vec", tag = "9")]
    pub(super) record: Vec<u8>,
    #[prost(int32, tag = "10")]
    pub(super) sex: i32,
    #[prost(string, repeated, tag = "11")]
    pub(super) diseases: Vec<String>,
    #[prost(uint32, tag = "12")]
    pub(super) present_features: u32,
    #[prost(uint32, tag = "13")]
    pub(super) excluded_features: u32,
    #[prost(uint32, tag = "14")]
    pub(super) doc: u32,
    #[prost(message, optional, tag = "15")]
    pub(super) facts: Option<StoredFacts>,
}

/// The on-disk form of [`CaseFacts`] (the sex is the envelope's).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct StoredFacts {
    #[prost(uint32, repeated, tag = "1")]
    pub(super) present: Vec<u32>,
    #[prost(uint32, repeated, tag = "2")]
    pub(super) excluded: Vec<u32>,
    #[prost(message, repeated, tag = "3")]
    pub(super) diseases: Vec<StoredCoded>,
    #[prost(message, repeated, tag = "4")]
    pub(super) genes: Vec<StoredCoded>,
    #[prost(string, repeated, tag = "5")]
    pub(super) variant_classes: Vec<String>,
    #[prost(message, repeated, tag = "6")]
    pub(super) treatments: Vec<StoredCoded>,
    #[prost(message, repeated, tag = "7")]
    pub(super) procedures: Vec<StoredCoded>,
    #[prost(string, repeated, tag = "8")]
    pub(super) publications: Vec<String>,
    #[prost(message, optional, tag = "9")]
    pub(super) onset: Option<StoredSpan>,
    #[prost(message, optional, tag = "10")]
    pub(super) last_encounter: Option<StoredSpan>,
    #[prost(message, repeated, tag = "11")]
    pub(super) responses: Vec<StoredCoded>,
    /// Treatment agent id and response id, as `StoredCoded { id, label }` pairs.
    #[prost(message, repeated, tag = "12")]
    pub(super) treatment_responses: Vec<StoredCoded>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct StoredCoded {
    #[prost(string, tag = "1")]
    pub(super) id: String,
    #[prost(string, tag = "2")]
    pub(super) label: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct StoredSpan {
    #[prost(sint32, tag = "1")]
    pub(super) from: i32,
    #[prost(sint32, tag = "2")]
    pub(super) to: i32,
}

impl StoredFacts {
    pub(super) fn from_facts(facts: &CaseFacts) -> Self {
        let coded = |values: &[Coded]| {
            values
                .iter()
                .map(|c| StoredCoded {
                    id: c.id.clone(),
                    label: c.label.clone(),
                })
                .collect()
        };
        let span = |s: Option<AgeSpan>| {
            s.map(|s| StoredSpan {
                from: s.from,
                to: s.to,
            })
        };
        Self {
            present: facts.present.iter().map(|t| t.0).collect(),
            excluded: facts.excluded.iter().map(|t| t.0).collect(),
            diseases: coded(&facts.diseases),
            genes: coded(&facts.genes),
            variant_classes: facts.variant_classes.clone(),
            treatments: coded(&facts.treatments),
            procedures: coded(&facts.procedures),
            publications: facts.publications.clone(),
            onset: span(facts.onset),
            last_encounter: span(facts.last_encounter),
            responses: coded(&facts.responses),
            treatment_responses: facts
                .treatment_responses
                .iter()
                .map(|(agent, response)| StoredCoded {
                    id: agent.clone(),
                    label: response.clone(),
                })
                .collect(),
        }
    }

    pub(super) fn into_facts(self, sex: i32) -> CaseFacts {
        let coded = |values: Vec<StoredCoded>| {
            values
                .into_iter()
                .map(|c| Coded {
                    id: c.id,
                    label: c.label,
                })
                .collect()
        };
        let span = |s: Option<StoredSpan>| {
            s.map(|s| AgeSpan {
                from: s.from,
                to: s.to,
            })
        };
        CaseFacts {
            present: self.present.into_iter().map(TermId).collect(),
            excluded: self.excluded.into_iter().map(TermId).collect(),
            diseases: coded(self.diseases),
            genes: coded(self.genes),
            variant_classes: self.variant_classes,
            treatments: coded(self.treatments),
            procedures: coded(self.procedures),
            publications: self.publications,
            sex,
            onset: span(self.onset),
            last_encounter: span(self.last_encounter),
            responses: coded(self.responses),
            treatment_responses: self
                .treatment_responses
                .into_iter()
                .map(|pair| (pair.id, pair.label))
                .collect(),
        }
    }
}

pub(super) const STATUS_ACTIVE: u32 = 1;
pub(super) const STATUS_RETRACTED: u32 = 2;

impl StoredCase {
    /// The stored form of `case`'s envelope (the record bytes are appended by [`encode`]).
    pub(super) fn from_record(case: &CaseRecord) -> Self {
        Self {
            case_id: case.id.as_str().to_owned(),
            center_id: case.center.as_str().to_owned(),
            version: case.version,
            created_micros: case.created.0,
            updated_micros: case.updated.0,
            status: match case.status {
                CaseStatus::Active => STATUS_ACTIVE,
                CaseStatus::Retracted => STATUS_RETRACTED,
            },
            retraction_reason: case.retraction_reason.clone(),
            external_id: case.external_id.as_str().to_owned(),
            record: Vec::new(),
            sex: case.digest.sex,
            diseases: case.digest.diseases.clone(),
            present_features: case.digest.present_features,
            excluded_features: case.digest.excluded_features,
            doc: case.doc,
            facts: Some(StoredFacts::from_facts(&case.facts)),
        }
    }

    pub(super) fn into_record(self) -> Result<CaseRecord> {
        let corrupt = |what: &str, e: String| CoreError::Corrupt(format!("{what}: {e}"));
        Ok(CaseRecord {
            id: CaseId::parse(&self.case_id).map_err(|e| corrupt("case id", e.0))?,
            center: CenterId::parse(&self.center_id).map_err(|e| corrupt("center id", e.0))?,
            version: self.version,
            created: UnixMicros(self.created_micros),
            updated: UnixMicros(self.updated_micros),
            status: match self.status {
                STATUS_ACTIVE => CaseStatus::Active,
                STATUS_RETRACTED => CaseStatus::Retracted,
                other => return Err(corrupt("status", other.to_string())),
            },
            retraction_reason: self.retraction_reason,
            external_id: ExternalId::parse(&self.external_id)
                .map_err(|e| corrupt("external id", e.0))?,
            record: self.record,
            facts: self.facts.unwrap_or_default().into_facts(self.sex),
            doc: self.doc,
            digest: CaseDigest {
                sex: self.sex,
                diseases: self.diseases,
                present_features: self.present_features,
                excluded_features: self.excluded_features,
            },
        })
    }
}

/// A stored version read back: its envelope, and its record when `with_record`.
pub(super) fn decode(bytes: &[u8], with_record: bool) -> Result<CaseRecord> {
    let mut record = bytes;
    let envelope = StoredCase::decode_length_delimited(&mut record)
        .map_err(|e| CoreError::Corrupt(format!("case envelope: {e}")))?;
    let mut case = envelope.into_record()?;
    if with_record {
        case.record = record.to_vec();
    }
    Ok(case)
}

/// A version's stored form: the envelope as a length-delimited message, then the record.
pub(super) fn encode(case: &CaseRecord) -> Vec<u8> {
    let mut bytes = StoredCase::from_record(case).encode_length_delimited_to_vec();
    bytes.extend_from_slice(&case.record);
    bytes
}

pub(super) fn version_key(id: &CaseId, version: u64) -> [u8; CaseId::LEN + 8] {
    let mut key = [0u8; CaseId::LEN + 8];
    key[..CaseId::LEN].copy_from_slice(id.as_bytes());
    key[CaseId::LEN..].copy_from_slice(&version.to_be_bytes());
    key
}
