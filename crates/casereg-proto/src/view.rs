//! Partial views of a `Phenopacket`: the fields the server's record checks and search read,
//! and nothing else.
//!
//! A stored record is kept as the bytes it arrived in; what the server needs of it to
//! check required elements, fill a listing's digest and index it for search is a small part
//! of it (no resources, files, evidence, variant expressions, free text…). These messages
//! have the field numbers and wire types of their [`crate::v1`] namesakes for the fields they
//! keep; decoding skips every other field without allocating for it. [`Present`] stands for
//! a message whose presence is all that is read.
//!
//! A test checks each kept field against the contract's descriptors.

use crate::v1;

/// A message field read for its presence only: decoding skips its contents.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Present {}

/// `casereg.v1.Phenopacket`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Phenopacket {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub subject: Option<Individual>,
    #[prost(message, repeated, tag = "3")]
    pub phenotypic_features: Vec<PhenotypicFeature>,
    #[prost(message, repeated, tag = "4")]
    pub measurements: Vec<Measurement>,
    #[prost(message, repeated, tag = "5")]
    pub biosamples: Vec<Identified>,
    #[prost(message, repeated, tag = "6")]
    pub interpretations: Vec<Interpretation>,
    #[prost(message, repeated, tag = "7")]
    pub diseases: Vec<Disease>,
    #[prost(message, repeated, tag = "9")]
    pub medical_actions: Vec<MedicalAction>,
    #[prost(message, optional, tag = "11")]
    pub meta_data: Option<MetaData>,
}

/// `casereg.v1.Individual`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Individual {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "3")]
    pub date_of_birth: Option<pbjson_types::Timestamp>,
    #[prost(message, optional, tag = "4")]
    pub time_at_last_encounter: Option<v1::TimeElement>,
    #[prost(enumeration = "v1::Sex", tag = "6")]
    pub sex: i32,
}

/// `casereg.v1.PhenotypicFeature`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PhenotypicFeature {
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<v1::OntologyClass>,
    #[prost(bool, tag = "3")]
    pub excluded: bool,
    #[prost(message, optional, tag = "6")]
    pub onset: Option<v1::TimeElement>,
}

/// `casereg.v1.Measurement`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Measurement {
    #[prost(message, optional, tag = "2")]
    pub assay: Option<Present>,
    #[prost(oneof = "MeasurementValue", tags = "3, 4")]
    pub measurement_value: Option<MeasurementValue>,
}

/// `casereg.v1.Measurement.measurement_value`.
#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum MeasurementValue {
    #[prost(message, tag = "3")]
    Value(Present),
    #[prost(message, tag = "4")]
    ComplexValue(Present),
}

/// A message read for its `id` (field 1) only: `casereg.v1.Biosample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Identified {
    #[prost(string, tag = "1")]
    pub id: String,
}

/// `casereg.v1.Interpretation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Interpretation {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "3")]
    pub diagnosis: Option<Diagnosis>,
}

/// `casereg.v1.Diagnosis`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Diagnosis {
    #[prost(message, optional, tag = "1")]
    pub disease: Option<v1::OntologyClass>,
    #[prost(message, repeated, tag = "2")]
    pub genomic_interpretations: Vec<GenomicInterpretation>,
}

/// `casereg.v1.GenomicInterpretation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GenomicInterpretation {
    #[prost(oneof = "Call", tags = "3, 4")]
    pub call: Option<Call>,
}

/// `casereg.v1.GenomicInterpretation.call`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Call {
    #[prost(message, tag = "3")]
    Gene(GeneDescriptor),
    #[prost(message, tag = "4")]
    VariantInterpretation(VariantInterpretation),
}

/// `casereg.v1.VariantInterpretation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VariantInterpretation {
    #[prost(enumeration = "v1::AcmgPathogenicityClassification", tag = "1")]
    pub acmg_pathogenicity_classification: i32,
    #[prost(message, optional, tag = "3")]
    pub variation_descriptor: Option<VariationDescriptor>,
}

/// `casereg.v1.VariationDescriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VariationDescriptor {
    #[prost(message, optional, tag = "5")]
    pub gene_context: Option<GeneDescriptor>,
}

/// `casereg.v1.GeneDescriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GeneDescriptor {
    #[prost(string, tag = "1")]
    pub value_id: String,
    #[prost(string, tag = "2")]
    pub symbol: String,
}

/// `casereg.v1.Disease`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Disease {
    #[prost(message, optional, tag = "1")]
    pub term: Option<v1::OntologyClass>,
    #[prost(bool, tag = "2")]
    pub excluded: bool,
    #[prost(message, optional, tag = "3")]
    pub onset: Option<v1::TimeElement>,
}

/// `casereg.v1.MedicalAction`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MedicalAction {
    #[prost(oneof = "Action", tags = "1, 2, 3, 4")]
    pub action: Option<Action>,
    #[prost(message, optional, tag = "7")]
    pub response_to_treatment: Option<v1::OntologyClass>,
}

/// `casereg.v1.MedicalAction.action`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Action {
    #[prost(message, tag = "1")]
    Procedure(Procedure),
    #[prost(message, tag = "2")]
    Treatment(Treatment),
    #[prost(message, tag = "3")]
    RadiationTherapy(RadiationTherapy),
    #[prost(message, tag = "4")]
    TherapeuticRegimen(TherapeuticRegimen),
}

/// `casereg.v1.Procedure`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Procedure {
    #[prost(message, optional, tag = "1")]
    pub code: Option<v1::OntologyClass>,
}

/// `casereg.v1.Treatment`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Treatment {
    #[prost(message, optional, tag = "1")]
    pub agent: Option<v1::OntologyClass>,
}

/// `casereg.v1.RadiationTherapy`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct RadiationTherapy {
    #[prost(message, optional, tag = "1")]
    pub modality: Option<Present>,
    #[prost(message, optional, tag = "2")]
    pub body_site: Option<Present>,
}

/// `casereg.v1.TherapeuticRegimen`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct TherapeuticRegimen {
    #[prost(oneof = "RegimenIdentifier", tags = "1, 2")]
    pub identifier: Option<RegimenIdentifier>,
}

/// `casereg.v1.TherapeuticRegimen.identifier`.
#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum RegimenIdentifier {
    #[prost(message, tag = "1")]
    ExternalReference(Present),
    #[prost(message, tag = "2")]
    OntologyClass(Present),
}

/// `casereg.v1.MetaData`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaData {
    #[prost(message, repeated, tag = "7")]
    pub external_references: Vec<Identified>,
}

#[cfg(test)]
mod tests {
    use super::*;

    use prost::Message as _;
    use prost_types::field_descriptor_proto::{Label, Type};

    /// A field of the contract: (name, type, repeated, message or enum type name).
    fn contract_field(message: &str, number: i32) -> (String, Type, bool, String) {
        let descriptor = crate::contract::message(message);
        let field = descriptor
            .field
            .iter()
            .find(|f| f.number() == number)
            .unwrap_or_else(|| panic!("{message} has field {number}"));
        (
            field.name().to_owned(),
            field.r#type(),
            field.label() == Label::Repeated,
            field
                .type_name()
                .rsplit('.')
                .next()
                .unwrap_or("")
                .to_owned(),
        )
    }

    #[test]
    fn every_kept_field_is_the_contracts() {
        use Type::{Bool, Enum, Message, String};
        // (message, number, name, type, repeated, message or enum type)
        let kept: &[(&str, i32, &str, Type, bool, &str)] = &[
            ("Phenopacket", 1, "id", String, false, ""),
            ("Phenopacket", 2, "subject", Message, false, "Individual"),
            (
                "Phenopacket",
                3,
                "phenotypic_features",
                Message,
                true,
                "PhenotypicFeature",
            ),
            (
                "Phenopacket",
                4,
                "measurements",
                Message,
                true,
                "Measurement",
            ),
            ("Phenopacket", 5, "biosamples", Message, true, "Biosample"),
            (
                "Phenopacket",
                6,
                "interpretations",
                Message,
                true,
                "Interpretation",
            ),
            ("Phenopacket", 7, "diseases", Message, true, "Disease"),
            (
                "Phenopacket",
                9,
                "medical_actions",
                Message,
                true,
                "MedicalAction",
            ),
            ("Phenopacket", 11, "meta_data", Message, false, "MetaData"),
            ("Individual", 1, "id", String, false, ""),
            (
                "Individual",
                3,
                "date_of_birth",
                Message,
                false,
                "Timestamp",
            ),
            (
                "Individual",
                4,
                "time_at_last_encounter",
                Message,
                false,
                "TimeElement",
            ),
            ("Individual", 6, "sex", Enum, false, "Sex"),
            (
                "PhenotypicFeature",
                2,
                "type",
                Message,
                false,
                "OntologyClass",
            ),
            ("PhenotypicFeature", 3, "excluded", Bool, false, ""),
            (
                "PhenotypicFeature",
                6,
                "onset",
                Message,
                false,
                "TimeElement",
            ),
            ("Measurement", 2, "assay", Message, false, "OntologyClass"),
            ("Measurement", 3, "value", Message, false, "Value"),
            (
                "Measurement",
                4,
                "complex_value",
                Message,
                false,
                "ComplexValue",
            ),
            ("Biosample", 1, "id", String, false, ""),
            ("Interpretation", 1, "id", String, false, ""),
            (
                "Interpretation",
                3,
                "diagnosis",
                Message,
                false,
                "Diagnosis",
            ),
            ("Diagnosis", 1, "disease", Message, false, "OntologyClass"),
            (
                "Diagnosis",
                2,
                "genomic_interpretations",
                Message,
                true,
                "GenomicInterpretation",
            ),
            (
                "GenomicInterpretation",
                3,
                "gene",
                Message,
                false,
                "GeneDescriptor",
            ),
            (
                "GenomicInterpretation",
                4,
                "variant_interpretation",
                Message,
                false,
                "VariantInterpretation",
            ),
            (
                "VariantInterpretation",
                1,
                "acmg_pathogenicity_classification",
                Enum,
                false,
                "AcmgPathogenicityClassification",
            ),
            (
                "VariantInterpretation",
                3,
                "variation_descriptor",
                Message,
                false,
                "VariationDescriptor",
            ),
            (
                "VariationDescriptor",
                5,
                "gene_context",
                Message,
                false,
                "GeneDescriptor",
            ),
            ("GeneDescriptor", 1, "value_id", String, false, ""),
            ("GeneDescriptor", 2, "symbol", String, false, ""),
            ("Disease", 1, "term", Message, false, "OntologyClass"),
            ("Disease", 2, "excluded", Bool, false, ""),
            ("Disease", 3, "onset", Message, false, "TimeElement"),
            ("MedicalAction", 1, "procedure", Message, false, "Procedure"),
            ("MedicalAction", 2, "treatment", Message, false, "Treatment"),
            (
                "MedicalAction",
                3,
                "radiation_therapy",
                Message,
                false,
                "RadiationTherapy",
            ),
            (
                "MedicalAction",
                4,
                "therapeutic_regimen",
                Message,
                false,
                "TherapeuticRegimen",
            ),
            (
                "MedicalAction",
                7,
                "response_to_treatment",
                Message,
                false,
                "OntologyClass",
            ),
            ("Procedure", 1, "code", Message, false, "OntologyClass"),
            ("Treatment", 1, "agent", Message, false, "OntologyClass"),
            (
                "RadiationTherapy",
                1,
                "modality",
                Message,
                false,
                "OntologyClass",
            ),
            (
                "RadiationTherapy",
                2,
                "body_site",
                Message,
                false,
                "OntologyClass",
            ),
            (
                "TherapeuticRegimen",
                1,
                "external_reference",
                Message,
                false,
                "ExternalReference",
            ),
            (
                "TherapeuticRegimen",
                2,
                "ontology_class",
                Message,
                false,
                "OntologyClass",
            ),
            (
                "MetaData",
                7,
                "external_references",
                Message,
                true,
                "ExternalReference",
            ),
            ("ExternalReference", 1, "id", String, false, ""),
        ];
        for &(message, number, name, kind, repeated, type_name) in kept {
            assert_eq!(
                contract_field(message, number),
                (name.to_owned(), kind, repeated, type_name.to_owned()),
                "{message}.{number}"
            );
        }
    }

    #[test]
    fn reads_the_kept_fields_of_a_full_record() {
        let class = |id: &str, label: &str| v1::OntologyClass {
            id: id.to_owned(),
            label: label.to_owned(),
        };
        let record = v1::Phenopacket {
            id: "case-1".to_owned(),
            subject: Some(v1::Individual {
                id: "patient".to_owned(),
                alternate_ids: vec!["other".to_owned()],
                sex: v1::Sex::Female.into(),
                ..Default::default()
            }),
            phenotypic_features: vec![v1::PhenotypicFeature {
                description: "skipped".to_owned(),
                r#type: Some(class("HP:0025520", "Calcinosis cutis")),
                excluded: true,
                modifiers: vec![class("HP:0012832", "Bilateral")],
                ..Default::default()
            }],
            medical_actions: vec![v1::MedicalAction {
                action: Some(v1::medical_action::Action::RadiationTherapy(
                    v1::RadiationTherapy {
                        modality: Some(class("NCIT:C28038", "Electron beam")),
                        dosage: 3,
                        ..Default::default()
                    },
                )),
                response_to_treatment: Some(class("NCIT:C38757", "Improved")),
                ..Default::default()
            }],
            meta_data: Some(v1::MetaData {
                created_by: "skipped".to_owned(),
                external_references: vec![v1::ExternalReference {
                    id: "PMID:1".to_owned(),
                    description: "skipped".to_owned(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let view = Phenopacket::decode(record.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(view.id, "case-1");
        assert_eq!(
            view.subject.as_ref().map(|s| s.sex),
            Some(v1::Sex::Female as i32)
        );
        let feature = &view.phenotypic_features[0];
        assert_eq!(
            feature.r#type,
            Some(class("HP:0025520", "Calcinosis cutis"))
        );
        assert!(feature.excluded);
        assert_eq!(
            view.medical_actions[0].action,
            Some(Action::RadiationTherapy(RadiationTherapy {
                modality: Some(Present {}),
                body_site: None,
            }))
        );
        assert_eq!(
            view.meta_data.map(|m| m.external_references),
            Some(vec![Identified {
                id: "PMID:1".to_owned()
            }])
        );
    }
}
