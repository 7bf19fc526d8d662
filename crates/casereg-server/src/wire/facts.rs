//! What search reads of a phenopacket: the [`CaseFacts`] extracted once when it is stored.
//!
//! Ages become spans of days since birth from every `TimeElement` form: ISO 8601 ages, age
//! ranges, gestational ages (before birth, counting 40 weeks to term), HPO onset classes
//! (by the ranges their definitions give), and timestamps or intervals when the subject's
//! date of birth is recorded. A form that says nothing about age (a menopausal onset class,
//! a timestamp without a birth date) gives no span rather than a guess.

use casereg_core::age::{AgeUnit, days, iso_duration_days};
use casereg_core::case::{AgeSpan, CaseFacts, Coded};
use casereg_core::ids::{Curie, TermId};
use casereg_core::ontology::Ontology;
use casereg_proto::v1 as pb;
use casereg_proto::view;
use prost::{DecodeError, Message as _};

/// Days from conception to a term birth (40 weeks), for gestational ages.
const TERM_BIRTH_GESTATION_DAYS: i32 = 280;

/// Extracts the facts search indexes. Ids the record gives are checked before this runs;
/// HPO ids are read as search reads them (alternative and obsolete ids replaced).
pub fn extract(p: &view::Phenopacket, hpo: &Ontology) -> CaseFacts {
    let birth = p
        .subject
        .as_ref()
        .and_then(|s| s.date_of_birth.as_ref())
        .map(|t| t.seconds);
    let mut facts = CaseFacts {
        sex: p.subject.as_ref().map_or(0, |s| s.sex),
        last_encounter: p
            .subject
            .as_ref()
            .and_then(|s| s.time_at_last_encounter.as_ref())
            .and_then(|t| span(t, birth)),
        ..CaseFacts::default()
    };
    let mut onsets = Vec::new();
    for feature in &p.phenotypic_features {
        let Some(term) = feature.r#type.as_ref().and_then(|t| hpo_term(&t.id, hpo)) else {
            continue;
        };
        if feature.excluded {
            facts.excluded.push(term);
        } else {
            facts.present.push(term);
            onsets.extend(feature.onset.as_ref().and_then(|t| span(t, birth)));
        }
    }
    for disease in p.diseases.iter().filter(|d| !d.excluded) {
        if let Some(term) = &disease.term {
            facts.diseases.push(coded(term));
        }
        onsets.extend(disease.onset.as_ref().and_then(|t| span(t, birth)));
    }
    for interpretation in &p.interpretations {
        let Some(diagnosis) = &interpretation.diagnosis else {
            continue;
        };
        if let Some(disease) = &diagnosis.disease {
            facts.diseases.push(coded(disease));
        }
        for genomic in &diagnosis.genomic_interpretations {
            use view::Call;
            match &genomic.call {
                Some(Call::Gene(gene)) => facts.genes.push(gene_code(gene)),
                Some(Call::VariantInterpretation(variant)) => {
                    if let Some(gene) = variant
                        .variation_descriptor
                        .as_ref()
                        .and_then(|d| d.gene_context.as_ref())
                    {
                        facts.genes.push(gene_code(gene));
                    }
                    let class = pb::AcmgPathogenicityClassification::try_from(
                        variant.acmg_pathogenicity_classification,
                    )
                    .unwrap_or(pb::AcmgPathogenicityClassification::NotProvided);
                    if class != pb::AcmgPathogenicityClassification::NotProvided {
                        facts.variant_classes.push(class.as_str_name().to_owned());
                    }
                }
                None => {}
            }
        }
    }
    for action in &p.medical_actions {
        use view::Action;
        match &action.action {
            Some(Action::Treatment(treatment)) => {
                facts.treatments.extend(treatment.agent.as_ref().map(coded));
            }
            Some(Action::Procedure(procedure)) => {
                facts.procedures.extend(procedure.code.as_ref().map(coded));
            }
            _ => {}
        }
        if let Some(response) = &action.response_to_treatment {
            facts.responses.push(coded(response));
            if let Some(Action::Treatment(view::Treatment { agent: Some(agent) })) = &action.action
            {
                facts
                    .treatment_responses
                    .push((agent.id.clone(), response.id.clone()));
            }
        }
    }
    if let Some(meta) = &p.meta_data {
        facts.publications.extend(
            meta.external_references
                .iter()
                .filter(|r| !r.id.is_empty())
                .map(|r| r.id.clone()),
        );
    }
    facts.onset = earliest(&onsets);
    dedup_in_order(&mut facts.present);
    dedup_in_order(&mut facts.excluded);
    dedup_by_id(&mut facts.diseases);
    dedup_by_id(&mut facts.genes);
    dedup_by_id(&mut facts.treatments);
    dedup_by_id(&mut facts.procedures);
    dedup_by_id(&mut facts.responses);
    dedup(&mut facts.treatment_responses);
    dedup(&mut facts.variant_classes);
    dedup(&mut facts.publications);
    facts
}

/// [`extract`] for a record in its typed form (as the benchmarks generate them): encoded and
/// read back as its view, as the server reads a stored record.
pub fn extract_typed(p: &pb::Phenopacket, hpo: &Ontology) -> Result<CaseFacts, DecodeError> {
    Ok(extract(
        &view::Phenopacket::decode(p.encode_to_vec().as_slice())?,
        hpo,
    ))
}

fn hpo_term(id: &str, hpo: &Ontology) -> Option<TermId> {
    let term = Curie::check_term(id).ok().flatten()?;
    Some(hpo.resolve(term).effective())
}

fn coded(class: &pb::OntologyClass) -> Coded {
    Coded {
        id: class.id.clone(),
        label: class.label.clone(),
    }
}

fn gene_code(gene: &view::GeneDescriptor) -> Coded {
    Coded {
        id: gene.value_id.clone(),
        label: gene.symbol.clone(),
    }
}

/// Keeps the first of repeated terms, so that listings show phenotypes in record order.
fn dedup_in_order(terms: &mut Vec<TermId>) {
    let mut seen = std::collections::HashSet::new();
    terms.retain(|t| seen.insert(*t));
}

fn dedup<T: Ord>(values: &mut Vec<T>) {
    values.sort_unstable();
    values.dedup();
}

fn dedup_by_id(values: &mut Vec<Coded>) {
    values.sort_by(|a, b| a.id.cmp(&b.id));
    values.dedup_by(|a, b| a.id == b.id);
}

/// The earliest of several uncertain ages: it is at least the smallest lower bound and at
/// most the smallest upper bound.
fn earliest(spans: &[AgeSpan]) -> Option<AgeSpan> {
    let from = spans.iter().map(|s| s.from).min()?;
    let to = spans.iter().map(|s| s.to).min()?;
    Some(AgeSpan { from, to })
}

fn clamp(days: i64) -> i32 {
    i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX })
}

/// A time element as a span of days since birth, when it says that much.
pub fn span(time: &pb::TimeElement, birth_seconds: Option<i64>) -> Option<AgeSpan> {
    use pb::time_element::Element;
    let point = |days: i32| AgeSpan {
        from: days,
        to: days,
    };
    let age_days = |age: &pb::Age| iso_duration_days(&age.iso8601duration).map(clamp);
    let since_birth = |seconds: i64| {
        birth_seconds.map(|birth| clamp(seconds.saturating_sub(birth).div_euclid(86_400)))
    };
    match time.element.as_ref()? {
        Element::Age(age) => age_days(age).map(point),
        Element::AgeRange(range) => {
            let from = range.start.as_ref().and_then(age_days);
            let to = range.end.as_ref().and_then(age_days);
            match (from, to) {
                (None, None) => None,
                (from, to) => Some(AgeSpan {
                    from: from.unwrap_or(0),
                    to: to.unwrap_or(i32::MAX),
                }),
            }
        }
        Element::GestationalAge(gestation) => {
            let gestation_days = gestation
                .weeks
                .saturating_mul(7)
                .saturating_add(gestation.days);
            Some(point(
                gestation_days.saturating_sub(TERM_BIRTH_GESTATION_DAYS),
            ))
        }
        Element::OntologyClass(class) => onset_class(&class.id),
        Element::Timestamp(at) => since_birth(at.seconds).map(point),
        Element::Interval(interval) => {
            let from = since_birth(interval.start.as_ref()?.seconds)?;
            let to = since_birth(interval.end.as_ref()?.seconds)?;
            Some(AgeSpan { from, to })
        }
    }
}

/// The ages an HPO onset class covers, from the definitions in HPO (2025-01-16).
fn onset_class(id: &str) -> Option<AgeSpan> {
    let years = |n: u64| clamp(days(n, AgeUnit::Years));
    let weeks_of_gestation = |w: i32| w * 7 - TERM_BIRTH_GESTATION_DAYS;
    let (from, to) = match id {
        // Antenatal, embryonal (to 10 weeks of gestation), fetal (10 weeks to birth).
        "HP:0030674" => (-TERM_BIRTH_GESTATION_DAYS, -1),
        "HP:0011460" => (-TERM_BIRTH_GESTATION_DAYS, weeks_of_gestation(10) - 1),
        "HP:0011461" => (weeks_of_gestation(10), -1),
        // Late first, second and third trimester.
        "HP:0034199" => (weeks_of_gestation(11), weeks_of_gestation(14) - 1),
        "HP:0034198" => (weeks_of_gestation(14), weeks_of_gestation(28) - 1),
        "HP:0034197" => (weeks_of_gestation(28), -1),
        // Congenital (present at birth), neonatal (first 28 days), infantile (to 1 year).
        "HP:0003577" => (0, 0),
        "HP:0003623" => (0, 27),
        "HP:0003593" => (28, years(1) - 1),
        // Pediatric (before 16 years, excluding neonatal), childhood (1–5), juvenile (5–15).
        "HP:0410280" => (28, years(16) - 1),
        "HP:0011463" => (years(1), years(5) - 1),
        "HP:0003621" => (years(5), years(16) - 1),
        // Adult (16 and later) and its subclasses.
        "HP:0003581" => (years(16), i32::MAX),
        "HP:0011462" => (years(16), years(40) - 1),
        "HP:0025708" => (years(16), years(19) - 1),
        "HP:0025709" => (years(19), years(25) - 1),
        "HP:0025710" => (years(25), years(40) - 1),
        "HP:0003596" => (years(40), years(60) - 1),
        "HP:0003584" => (years(60), i32::MAX),
        _ => return None,
    };
    Some(AgeSpan { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(e: pb::time_element::Element) -> pb::TimeElement {
        pb::TimeElement { element: Some(e) }
    }

    fn age(iso: &str) -> pb::Age {
        pb::Age {
            iso8601duration: iso.to_owned(),
        }
    }

    #[test]
    fn every_time_element_form_becomes_days() {
        use pb::time_element::Element;
        let span_of = |e, birth| span(&element(e), birth);
        assert_eq!(
            span_of(Element::Age(age("P40Y")), None),
            Some(AgeSpan {
                from: 14_610,
                to: 14_610
            })
        );
        assert_eq!(
            span_of(
                Element::AgeRange(pb::AgeRange {
                    start: Some(age("P1Y")),
                    end: Some(age("P2Y")),
                }),
                None
            ),
            Some(AgeSpan { from: 365, to: 730 })
        );
        assert_eq!(
            span_of(
                Element::GestationalAge(pb::GestationalAge { weeks: 20, days: 3 }),
                None
            ),
            Some(AgeSpan {
                from: -137,
                to: -137
            })
        );
        let class = |id: &str| {
            Element::OntologyClass(pb::OntologyClass {
                id: id.to_owned(),
                label: String::new(),
            })
        };
        assert_eq!(
            span_of(class("HP:0003593"), None),
            Some(AgeSpan { from: 28, to: 364 })
        );
        assert_eq!(
            span_of(class("HP:0003581"), None),
            Some(AgeSpan {
                from: 5844,
                to: i32::MAX
            })
        );
        assert_eq!(span_of(class("HP:6000314"), None), None);
        let at = |seconds| pbjson_types::Timestamp { seconds, nanos: 0 };
        assert_eq!(span_of(Element::Timestamp(at(86_400 * 10)), None), None);
        assert_eq!(
            span_of(Element::Timestamp(at(86_400 * 10)), Some(0)),
            Some(AgeSpan { from: 10, to: 10 })
        );
        assert_eq!(span_of(Element::Age(age("ten years")), None), None);
    }

    #[test]
    fn the_earliest_onset_is_bounded_by_the_smallest_bounds() {
        let spans = [AgeSpan { from: 10, to: 100 }, AgeSpan { from: 50, to: 60 }];
        assert_eq!(earliest(&spans), Some(AgeSpan { from: 10, to: 60 }));
        assert_eq!(earliest(&[]), None);
    }
}
