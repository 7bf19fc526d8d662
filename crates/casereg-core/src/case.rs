//! Domain types of a stored case and of a record on its way in.
//!
//! The core never parses the phenopacket itself: the server's conversion layer hands it the
//! encoded record (stored as submitted) together with the facts the core needs about it —
//! its id, every ontology-class id with its path, and a short digest for listings.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::FieldViolation;
use crate::ids::{CaseId, CenterId, Curie, ExternalId, TermId};
use crate::limits::MAX_REPORTED_VIOLATIONS;
use crate::ontology::{Ontology, Resolution};

/// Microseconds since the Unix epoch (UTC), as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixMicros(pub i64);

impl UnixMicros {
    /// The server clock now.
    pub fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        Self(micros)
    }
}

/// Lifecycle state of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStatus {
    /// Visible to reads and listings.
    Active,
    /// Withdrawn by its center, kept for audit.
    Retracted,
}

/// What a listing shows of a case without decoding the record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseDigest {
    /// Subject sex as the Phenopacket enum number (0 unknown, 1 female, 2 male, 3 other).
    pub sex: i32,
    /// Disease labels (or ids where unlabelled).
    pub diseases: Vec<String>,
    /// Phenotypic features observed present.
    pub present_features: u32,
    /// Phenotypic features looked for and found absent (`excluded: true`).
    pub excluded_features: u32,
}

/// A coded value of a record (disease, treatment agent, procedure, gene) with the label the
/// record gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coded {
    /// The id (a CURIE; for genes also the symbol).
    pub id: String,
    /// The label as recorded (may be empty).
    pub label: String,
}

/// An age known to lie in `[from, to]`, in days since birth (negative before birth); `to`
/// is `i32::MAX` when open-ended ("adult onset").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeSpan {
    /// Earliest possible age, in days.
    pub from: i32,
    /// Latest possible age, in days.
    pub to: i32,
}

/// What search reads of a record, extracted once when it is stored. Ids are as search reads
/// them (HPO alt and obsolete ids replaced) and each list holds distinct values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFacts {
    /// Phenotypes observed present.
    pub present: Vec<TermId>,
    /// Phenotypes looked for and found absent.
    pub excluded: Vec<TermId>,
    /// Diseases (not excluded ones), from `diseases` and interpretations.
    pub diseases: Vec<Coded>,
    /// Genes of genomic interpretations: HGNC id, symbol as label.
    pub genes: Vec<Coded>,
    /// ACMG classes of interpreted variants, by enum name.
    pub variant_classes: Vec<String>,
    /// Treatment agents.
    pub treatments: Vec<Coded>,
    /// Procedures.
    pub procedures: Vec<Coded>,
    /// Responses to medical actions (`medicalActions[].responseToTreatment`).
    pub responses: Vec<Coded>,
    /// (treatment agent id, response id) of each treatment with a recorded response: what a
    /// treatment × response table counts, pairing a response with its own treatment.
    pub treatment_responses: Vec<(String, String)>,
    /// Publication ids (`metaData.externalReferences`).
    pub publications: Vec<String>,
    /// Subject sex as the Phenopacket enum number.
    pub sex: i32,
    /// Age at onset: the earliest of the onsets recorded for present phenotypes and diseases.
    pub onset: Option<AgeSpan>,
    /// Age at last encounter.
    pub last_encounter: Option<AgeSpan>,
}

/// An ontology-class id found in a record, with its path (`phenotypicFeatures[0].type.id`).
/// Borrows the id and label from the encoded record it was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OntologyRef<'a> {
    /// Path of the id in the request.
    pub field: String,
    /// The id as submitted.
    pub id: &'a str,
    /// The class's label as submitted (used to explain a malformed id).
    pub label: &'a str,
    /// Whether a malformed id is an error here (the class says what a record element is)
    /// rather than a warning (a qualifier such as a modifier or unit).
    pub must_be_curie: bool,
}

/// What is worth telling the submitter about one ontology-class id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteKind {
    /// An HPO id that is not a current term of the loaded release.
    Resolved(Resolution),
    /// Not a CURIE, in a position where that is tolerated; the reason in words.
    Malformed(String),
}

/// A noteworthy reading of a submitted ontology-class id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermNote {
    /// Path of the id in the request.
    pub field: String,
    /// The id as submitted.
    pub submitted: String,
    /// What was noticed.
    pub kind: NoteKind,
}

/// A record checked and ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseDraft {
    /// The record's own id (`Phenopacket.id`).
    pub external_id: ExternalId,
    /// The encoded phenopacket, exactly as submitted.
    pub record: Vec<u8>,
    /// Digest for listings.
    pub digest: CaseDigest,
    /// What search indexes about the record.
    pub facts: CaseFacts,
}

/// A case as stored: envelope plus record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRecord {
    /// Registry id.
    pub id: CaseId,
    /// Owning center.
    pub center: CenterId,
    /// 1 for the first version, +1 per update or retraction.
    pub version: u64,
    /// When version 1 was stored.
    pub created: UnixMicros,
    /// When this version was stored.
    pub updated: UnixMicros,
    /// Active or retracted.
    pub status: CaseStatus,
    /// Why it was retracted (empty while active).
    pub retraction_reason: String,
    /// The record's own id.
    pub external_id: ExternalId,
    /// The encoded phenopacket, exactly as submitted.
    pub record: Vec<u8>,
    /// Digest for listings.
    pub digest: CaseDigest,
    /// What search indexes about the record.
    pub facts: CaseFacts,
    /// Dense document number of the case in the search indexes, fixed when it is created.
    pub doc: u32,
}

/// A case without its record: what a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseSummary {
    /// Registry id.
    pub id: CaseId,
    /// Owning center.
    pub center: CenterId,
    /// Current version.
    pub version: u64,
    /// When the current version was stored.
    pub updated: UnixMicros,
    /// Active or retracted.
    pub status: CaseStatus,
    /// The record's own id.
    pub external_id: ExternalId,
    /// Digest of the record.
    pub digest: CaseDigest,
}

impl From<CaseRecord> for CaseSummary {
    fn from(case: CaseRecord) -> Self {
        let CaseRecord {
            id,
            center,
            version,
            created: _,
            updated,
            status,
            retraction_reason: _,
            external_id,
            record: _,
            digest,
            facts: _,
            doc: _,
        } = case;
        Self {
            id,
            center,
            version,
            updated,
            status,
            external_id,
            digest,
        }
    }
}

/// Checks every ontology-class id of a record: CURIE syntax for all, and for HPO ids how the
/// loaded release reads them. Returns the notes worth a warning; problems are appended to
/// `violations` (unknown HPO ids only when `strict`).
pub fn check_ontology_refs(
    hpo: &Ontology,
    refs: &[OntologyRef<'_>],
    strict: bool,
    violations: &mut Vec<FieldViolation>,
) -> Vec<TermNote> {
    let mut notes = Vec::new();
    for reference in refs {
        let term = match Curie::check_term(reference.id) {
            Ok(term) => term,
            Err(e) if reference.must_be_curie => {
                push_violation(violations, FieldViolation::new(&reference.field, e.0));
                continue;
            }
            Err(e) => {
                let mut reason = e.0;
                if Curie::parse(reference.label).is_ok() {
                    reason.push_str(&format!(
                        "; the label {:?} looks like the id (swapped?)",
                        reference.label
                    ));
                }
                notes.push(TermNote {
                    field: reference.field.clone(),
                    submitted: reference.id.to_owned(),
                    kind: NoteKind::Malformed(reason),
                });
                continue;
            }
        };
        let Some(term) = term else {
            continue;
        };
        let resolution = hpo.resolve(term);
        if strict && matches!(resolution, Resolution::Unknown(_)) {
            push_violation(
                violations,
                FieldViolation::new(
                    &reference.field,
                    format!(
                        "{} is not in HPO release {} and unknown terms are rejected (strict terms mode)",
                        reference.id,
                        hpo.version()
                    ),
                ),
            );
            continue;
        }
        if !matches!(resolution, Resolution::Current(_)) {
            notes.push(TermNote {
                field: reference.field.clone(),
                submitted: reference.id.to_owned(),
                kind: NoteKind::Resolved(resolution),
            });
        }
    }
    notes
}

/// Adds a violation unless [`MAX_REPORTED_VIOLATIONS`] are already listed, so that a huge
/// bad record yields a bounded error.
pub fn push_violation(violations: &mut Vec<FieldViolation>, violation: FieldViolation) {
    if violations.len() < MAX_REPORTED_VIOLATIONS {
        violations.push(violation);
    } else if violations.len() == MAX_REPORTED_VIOLATIONS {
        violations.push(FieldViolation::new(
            "(more)",
            format!("further violations omitted after the first {MAX_REPORTED_VIOLATIONS}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference<'a>(field: &str, id: &'a str) -> OntologyRef<'a> {
        OntologyRef {
            field: field.to_owned(),
            id,
            label: "",
            must_be_curie: true,
        }
    }

    #[test]
    fn ontology_refs_are_checked_and_resolved() {
        let hpo = Ontology::embedded().unwrap();
        // In the 2025-01-16 release HP:0004715 is an alt id of HP:0000003 and HP:0000057 is
        // obsolete, replaced by HP:0008665.
        let refs = [
            reference("a", "HP:0025520"),
            reference("b", "HP:0004715"),
            reference("b2", "HP:0000057"),
            reference("c", "HP:9999999"),
            reference("d", "NCIT:C3262"),
            reference("e", "HP:12"),
        ];
        let mut violations = Vec::new();
        let notes = check_ontology_refs(&hpo, &refs, false, &mut violations);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "e");
        assert_eq!(notes.len(), 3);
        assert_eq!(
            notes[0].kind,
            NoteKind::Resolved(Resolution::AltId(TermId(3)))
        );
        assert_eq!(
            notes[1].kind,
            NoteKind::Resolved(Resolution::ObsoleteReplaced(TermId(8665)))
        );
        assert_eq!(
            notes[2].kind,
            NoteKind::Resolved(Resolution::Unknown(TermId(9_999_999)))
        );

        let mut strict = Vec::new();
        check_ontology_refs(&hpo, &refs, true, &mut strict);
        assert_eq!(
            strict.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(),
            ["c", "e"]
        );
    }

    #[test]
    fn malformed_ids_outside_key_positions_are_warnings() {
        let hpo = Ontology::embedded().unwrap();
        let swapped = OntologyRef {
            field: "m".to_owned(),
            id: "Triggered by cold",
            label: "HP:0025206",
            must_be_curie: false,
        };
        let mut violations = Vec::new();
        let notes = check_ontology_refs(&hpo, &[swapped], false, &mut violations);
        assert!(violations.is_empty());
        assert!(matches!(&notes[0].kind, NoteKind::Malformed(why) if why.contains("swapped")));
    }

    #[test]
    fn violation_lists_are_bounded() {
        let mut violations = Vec::new();
        for i in 0..(MAX_REPORTED_VIOLATIONS + 50) {
            push_violation(&mut violations, FieldViolation::new(format!("f{i}"), "bad"));
        }
        assert_eq!(violations.len(), MAX_REPORTED_VIOLATIONS + 1);
    }
}
