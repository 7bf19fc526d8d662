//! Wire ↔ domain conversion: the only place that reads phenopacket structure.
//!
//! Inbound, a phenopacket's encoding becomes a [`CaseDraft`] after every check the record
//! must pass, with all problems collected (not just the first) as field violations whose
//! paths use the record's JSON spelling (`phenopacket.phenotypicFeatures[2].type.id`). Two
//! passes:
//! - a reflective walk over every field of the encoding ([`record_walk`], so no field can be
//!   forgotten when the schema grows): string lengths, the id of every `OntologyClass`, and
//!   whether the bytes are canonical (if not, they are decoded and re-encoded first);
//! - typed checks of what the Phenopacket schema requires, the listing digest and the search
//!   facts, on the record's partial view (`casereg_proto::view`).

use casereg_core::case::{
    CaseDigest, CaseDraft, CaseRecord, CaseStatus, CaseSummary, NoteKind, TermNote, UnixMicros,
};
use casereg_core::case::{OntologyRef, check_ontology_refs, push_violation};
use casereg_core::ids::ExternalId;
use casereg_core::limits::MAX_RECORD_BYTES;
use casereg_core::ontology::{Ontology, Resolution};
use casereg_core::{CoreError, FieldViolation};
use casereg_proto::v1 as pb;
use casereg_proto::view;

use crate::wire::{facts, record_walk};
use prost::Message;

/// Checks a submitted phenopacket and turns it into a draft, or explains every problem.
/// `field` is the request field that holds the record (`phenopacket`).
pub fn phenopacket_to_draft(
    phenopacket: Option<&pb::Phenopacket>,
    field: &str,
    hpo: &Ontology,
    strict_terms: bool,
) -> Result<(CaseDraft, Vec<TermNote>), CoreError> {
    let record = phenopacket.map(Message::encode_to_vec);
    record_to_draft(record.as_deref(), field, hpo, strict_terms)
}

/// [`phenopacket_to_draft`] for a record still in its wire encoding (`None`: the field was
/// not set). Canonical bytes (see [`record_walk`]) are stored as they are; others are
/// decoded and re-encoded first, and bytes that do not decode are the record's error.
pub fn record_to_draft(
    record: Option<&[u8]>,
    field: &str,
    hpo: &Ontology,
    strict_terms: bool,
) -> Result<(CaseDraft, Vec<TermNote>), CoreError> {
    let Some(record) = record else {
        return Err(CoreError::Invalid(vec![FieldViolation::new(
            field,
            "is required",
        )]));
    };
    let mut violations = Vec::new();
    let mut refs = Vec::new();
    let walked = record_walk::walk_phenopacket(record, field, &mut refs, &mut violations);
    if walked != Ok(record_walk::Form::Canonical) {
        let phenopacket = pb::Phenopacket::decode(record).map_err(|e| {
            CoreError::Invalid(vec![FieldViolation::new(
                field,
                format!("is not a readable casereg.v1.Phenopacket encoding: {e}"),
            )])
        })?;
        return canonical_to_draft(&phenopacket.encode_to_vec(), field, hpo, strict_terms);
    }
    checked_to_draft(record, refs, violations, field, hpo, strict_terms)
}

/// [`record_to_draft`] for bytes prost has just written.
fn canonical_to_draft(
    record: &[u8],
    field: &str,
    hpo: &Ontology,
    strict_terms: bool,
) -> Result<(CaseDraft, Vec<TermNote>), CoreError> {
    let mut violations = Vec::new();
    let mut refs = Vec::new();
    record_walk::walk_phenopacket(record, field, &mut refs, &mut violations)
        .map_err(|e| CoreError::Corrupt(format!("walking the encoded record: {e}")))?;
    checked_to_draft(record, refs, violations, field, hpo, strict_terms)
}

/// The checks after the walk, on canonical bytes and what the walk found in them.
fn checked_to_draft(
    record: &[u8],
    refs: Vec<OntologyRef<'_>>,
    mut violations: Vec<FieldViolation>,
    field: &str,
    hpo: &Ontology,
    strict_terms: bool,
) -> Result<(CaseDraft, Vec<TermNote>), CoreError> {
    if record.len() > MAX_RECORD_BYTES {
        return Err(CoreError::Invalid(vec![FieldViolation::new(
            field,
            format!(
                "encodes to {} bytes; the limit is {MAX_RECORD_BYTES} bytes",
                record.len()
            ),
        )]));
    }
    let phenopacket = view::Phenopacket::decode(record)
        .map_err(|e| CoreError::Corrupt(format!("reading the encoded record: {e}")))?;
    check_required(&phenopacket, field, &mut violations);
    let external_id = match ExternalId::parse(&phenopacket.id) {
        Ok(id) => Some(id),
        Err(e) => {
            // The walk has already reported an over-long id; say it once.
            let path = format!("{field}.id");
            if !violations.iter().any(|v| v.field == path) {
                push_violation(&mut violations, FieldViolation::new(path, e.0));
            }
            None
        }
    };
    let notes = check_ontology_refs(hpo, &refs, strict_terms, &mut violations);
    match external_id {
        Some(external_id) if violations.is_empty() => Ok((
            CaseDraft {
                external_id,
                record: record.to_vec(),
                digest: digest(&phenopacket),
                facts: facts::extract(&phenopacket, hpo),
            },
            notes,
        )),
        _ => Err(CoreError::Invalid(violations)),
    }
}

/// What the Phenopacket schema marks as required, element by element.
/// Paths are formatted only for what is missing.
fn check_required(p: &view::Phenopacket, field: &str, violations: &mut Vec<FieldViolation>) {
    let mut require = |present: bool, path: std::fmt::Arguments<'_>, what: &str| {
        if !present {
            push_violation(
                violations,
                FieldViolation::new(path.to_string(), format!("is required: {what}")),
            );
        }
    };
    require(
        p.meta_data.is_some(),
        format_args!("{field}.metaData"),
        "who created the record, when, and with which ontology versions",
    );
    if let Some(subject) = &p.subject {
        require(
            !subject.id.is_empty(),
            format_args!("{field}.subject.id"),
            "the subject's id",
        );
    }
    for (i, feature) in p.phenotypic_features.iter().enumerate() {
        require(
            feature.r#type.is_some(),
            format_args!("{field}.phenotypicFeatures[{i}].type"),
            "the phenotype (an HPO term)",
        );
    }
    for (i, disease) in p.diseases.iter().enumerate() {
        require(
            disease.term.is_some(),
            format_args!("{field}.diseases[{i}].term"),
            "the disease",
        );
    }
    for (i, measurement) in p.measurements.iter().enumerate() {
        require(
            measurement.assay.is_some(),
            format_args!("{field}.measurements[{i}].assay"),
            "what was measured (e.g. a LOINC code)",
        );
        require(
            measurement.measurement_value.is_some(),
            format_args!("{field}.measurements[{i}].value"),
            "the result (value or complexValue)",
        );
    }
    for (i, biosample) in p.biosamples.iter().enumerate() {
        require(
            !biosample.id.is_empty(),
            format_args!("{field}.biosamples[{i}].id"),
            "the sample's id",
        );
    }
    for (i, interpretation) in p.interpretations.iter().enumerate() {
        require(
            !interpretation.id.is_empty(),
            format_args!("{field}.interpretations[{i}].id"),
            "the interpretation's id",
        );
    }
    for (i, action) in p.medical_actions.iter().enumerate() {
        match &action.action {
            None => require(
                false,
                format_args!("{field}.medicalActions[{i}]"),
                "one of procedure, treatment, radiationTherapy, therapeuticRegimen",
            ),
            Some(view::Action::Treatment(t)) => {
                require(
                    t.agent.is_some(),
                    format_args!("{field}.medicalActions[{i}].treatment.agent"),
                    "the agent given",
                );
            }
            Some(view::Action::Procedure(procedure)) => {
                require(
                    procedure.code.is_some(),
                    format_args!("{field}.medicalActions[{i}].procedure.code"),
                    "the procedure",
                );
            }
            Some(view::Action::RadiationTherapy(r)) => {
                require(
                    r.modality.is_some(),
                    format_args!("{field}.medicalActions[{i}].radiationTherapy.modality"),
                    "the modality",
                );
                require(
                    r.body_site.is_some(),
                    format_args!("{field}.medicalActions[{i}].radiationTherapy.bodySite"),
                    "the body site",
                );
            }
            Some(view::Action::TherapeuticRegimen(r)) => {
                require(
                    r.identifier.is_some(),
                    format_args!("{field}.medicalActions[{i}].therapeuticRegimen.identifier"),
                    "an ontologyClass or externalReference naming the regimen",
                );
            }
        }
    }
}

/// The short description a listing shows.
fn digest(p: &view::Phenopacket) -> CaseDigest {
    let excluded = p.phenotypic_features.iter().filter(|f| f.excluded).count();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    CaseDigest {
        sex: p.subject.as_ref().map_or(0, |s| s.sex),
        diseases: p
            .diseases
            .iter()
            .filter_map(|d| d.term.as_ref())
            .map(|t| {
                if t.label.is_empty() {
                    t.id.clone()
                } else {
                    t.label.clone()
                }
            })
            .collect(),
        present_features: count(p.phenotypic_features.len() - excluded),
        excluded_features: count(excluded),
    }
}

/// Server time to the wire's timestamp.
pub fn timestamp(at: UnixMicros) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: at.0.div_euclid(1_000_000),
        nanos: i32::try_from(at.0.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    }
}

fn status(status: CaseStatus) -> pb::CaseStatus {
    match status {
        CaseStatus::Active => pb::CaseStatus::Active,
        CaseStatus::Retracted => pb::CaseStatus::Retracted,
    }
}

/// A stored case to the wire.
pub fn case_to_wire(case: CaseRecord) -> Result<pb::Case, CoreError> {
    let CaseRecord {
        id,
        center,
        version,
        created,
        updated,
        status: case_status,
        retraction_reason,
        external_id: _,
        record,
        digest: _,
        facts: _,
        doc: _,
    } = case;
    let phenopacket = pb::Phenopacket::decode(record.as_slice())
        .map_err(|e| CoreError::Corrupt(format!("record of case {id}: {e}")))?;
    Ok(pb::Case {
        case_id: id.to_string(),
        center_id: center.to_string(),
        version,
        created_at: Some(timestamp(created)),
        updated_at: Some(timestamp(updated)),
        status: status(case_status).into(),
        phenopacket: Some(phenopacket),
        retraction_reason,
    })
}

/// A listing line to the wire.
pub fn case_to_summary(case: CaseSummary) -> pb::CaseSummary {
    let CaseSummary {
        id,
        center,
        version,
        updated,
        status: case_status,
        external_id,
        digest:
            CaseDigest {
                sex,
                diseases,
                present_features,
                excluded_features,
            },
    } = case;
    pb::CaseSummary {
        case_id: id.to_string(),
        center_id: center.to_string(),
        version,
        status: status(case_status).into(),
        updated_at: Some(timestamp(updated)),
        phenopacket_id: external_id.as_str().to_owned(),
        sex,
        diseases,
        present_features,
        excluded_features,
    }
}

/// A term note to the wire warning that explains it.
pub fn note_to_warning(note: TermNote, hpo: &Ontology) -> pb::TermWarning {
    use pb::term_warning::Kind;
    let release = hpo.version();
    let TermNote {
        field,
        submitted,
        kind: note_kind,
    } = note;
    let (kind, replacement, message) = match note_kind {
        NoteKind::Malformed(reason) => (
            Kind::MalformedId,
            String::new(),
            format!("{reason}; kept as given, not searchable"),
        ),
        NoteKind::Resolved(Resolution::Current(_)) => {
            (Kind::Unspecified, String::new(), String::new())
        }
        NoteKind::Resolved(Resolution::AltId(primary)) => (
            Kind::AltId,
            primary.to_string(),
            format!(
                "{submitted} is an alternative id of {primary} in HPO {release}; search uses {primary}"
            ),
        ),
        NoteKind::Resolved(Resolution::ObsoleteReplaced(replacement)) => (
            Kind::ObsoleteReplaced,
            replacement.to_string(),
            format!(
                "{submitted} is obsolete in HPO {release}, replaced by {replacement}; search uses {replacement}"
            ),
        ),
        NoteKind::Resolved(Resolution::Obsolete(_)) => (
            Kind::Obsolete,
            String::new(),
            format!(
                "{submitted} is obsolete in HPO {release} and names no replacement; kept as given"
            ),
        ),
        NoteKind::Resolved(Resolution::Unknown(_)) => (
            Kind::UnknownTerm,
            String::new(),
            format!("{submitted} is not in HPO {release} (perhaps a newer term); kept as given"),
        ),
    };
    pb::TermWarning {
        field,
        term_id: submitted,
        kind: kind.into(),
        replacement_id: replacement,
        message,
    }
}
