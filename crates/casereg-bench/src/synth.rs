//! Synthetic cases calibrated on a real corpus.
//!
//! Case `i` is a copy of a template record drawn from the corpus, perturbed: a new record
//! id (`synthetic-{i}`) and subject id, the sex of another randomly drawn corpus record, each
//! phenotypic feature dropped with probability [`DROP_FEATURE_PROBABILITY`], and up to
//! [`MAX_ADDED_FEATURES`] features added from the pool of every feature the corpus records
//! (so common features are drawn more often, and excluded ones stay excluded). Ages
//! (`TimeElement`s) are left as the template has them: they already vary across templates.
//!
//! Templates are *compact* (for `search`, `aggregates` and `network`; [`Generator::full`] keeps
//! whole records, for `suite`): only `subject`, `phenotypicFeatures`, `diseases`,
//! `interpretations` and `metaData` are kept, so biosamples, files, measurements and medical
//! actions are gone. That keeps generation fast and the records small; it also means the
//! stored bytes per case are below those of the real corpus.
//!
//! Every case has its own random stream derived from the seed and its index, so case `i` is
//! the same whichever cases are generated before it and on whichever thread.

use std::io::{BufRead as _, BufReader};
use std::path::Path;

use casereg_proto::v1 as pb;
use flate2::read::GzDecoder;

use crate::error::{BenchError, Result};
use crate::rng::SplitMix64;

/// Probability that a template's phenotypic feature is left out of a synthetic case.
pub const DROP_FEATURE_PROBABILITY: f64 = 0.2;

/// Most features added to a synthetic case from the corpus pool (0 to this many, uniformly).
pub const MAX_ADDED_FEATURES: usize = 2;

/// Reads a gzipped JSON Lines file of phenopackets, one record per non-empty line.
pub fn read_corpus(path: &Path) -> Result<Vec<pb::Phenopacket>> {
    let file = std::fs::File::open(path)
        .map_err(|e| BenchError::io(format!("opening corpus {}", path.display()), e))?;
    let mut records = Vec::new();
    for (n, line) in BufReader::new(GzDecoder::new(file)).lines().enumerate() {
        let line = line
            .map_err(|e| BenchError::io(format!("reading {} line {}", path.display(), n + 1), e))?;
        if line.trim().is_empty() {
            continue;
        }
        let origin = format!("{} line {}", path.display(), n + 1);
        let record = casereg_client::json::parse_phenopacket(&line, &origin)
            .map_err(|e| BenchError::Input(e.to_string()))?;
        records.push(record);
    }
    Ok(records)
}

/// The compact form of a template: the parts search reads and the record checks require.
fn compact(record: pb::Phenopacket) -> pb::Phenopacket {
    pb::Phenopacket {
        id: record.id,
        subject: record.subject,
        phenotypic_features: record.phenotypic_features,
        interpretations: record.interpretations,
        diseases: record.diseases,
        meta_data: record.meta_data,
        ..pb::Phenopacket::default()
    }
}

/// Makes synthetic cases from a corpus of real ones.
#[derive(Debug, Clone)]
pub struct Generator {
    seed: u64,
    /// Compact templates, in corpus order.
    templates: Vec<pb::Phenopacket>,
    /// The subject sex of every corpus record (0, unknown, when it has no subject).
    sexes: Vec<i32>,
    /// Every phenotypic feature of the corpus, reduced to its type and excluded flag.
    pool: Vec<pb::PhenotypicFeature>,
}

impl Generator {
    /// A generator drawing from `records` with `seed`, from compact templates.
    pub fn new(records: Vec<pb::Phenopacket>, seed: u64) -> Result<Self> {
        Self::with_templates(records, seed, compact)
    }

    /// A generator drawing from `records` with `seed`, keeping whole records as templates
    /// (biosamples, measurements, medical actions and all): cases of the corpus's size.
    pub fn full(records: Vec<pb::Phenopacket>, seed: u64) -> Result<Self> {
        Self::with_templates(records, seed, |r| r)
    }

    fn with_templates(
        records: Vec<pb::Phenopacket>,
        seed: u64,
        template: fn(pb::Phenopacket) -> pb::Phenopacket,
    ) -> Result<Self> {
        let sexes: Vec<i32> = records
            .iter()
            .map(|r| r.subject.as_ref().map_or(0, |s| s.sex))
            .collect();
        let pool: Vec<pb::PhenotypicFeature> = records
            .iter()
            .flat_map(|r| &r.phenotypic_features)
            .filter(|f| f.r#type.is_some())
            .map(|f| pb::PhenotypicFeature {
                r#type: f.r#type.clone(),
                excluded: f.excluded,
                ..pb::PhenotypicFeature::default()
            })
            .collect();
        if records.is_empty() {
            return Err(BenchError::Input("the corpus holds no records".to_owned()));
        }
        if pool.is_empty() {
            return Err(BenchError::Input(
                "the corpus records no phenotypic features to draw from".to_owned(),
            ));
        }
        Ok(Self {
            seed,
            templates: records.into_iter().map(template).collect(),
            sexes,
            pool,
        })
    }

    /// Number of template records.
    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    /// Number of features in the pool added features are drawn from.
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    /// Mean encoded size of the compact templates, in bytes.
    pub fn mean_template_bytes(&self) -> f64 {
        use prost::Message as _;
        let total: usize = self.templates.iter().map(|t| t.encoded_len()).sum();
        total as f64 / self.templates.len() as f64
    }

    /// Synthetic case number `index`.
    pub fn case(&self, index: u64) -> pb::Phenopacket {
        let mut rng = SplitMix64::for_item(self.seed, index);
        let mut record = self.templates[rng.below(self.templates.len())].clone();
        let sex = self.sexes[rng.below(self.sexes.len())];
        record.id = format!("synthetic-{index}");
        let subject = record.subject.get_or_insert_with(pb::Individual::default);
        subject.id = format!("synthetic-{index}-subject");
        subject.sex = sex;
        record
            .phenotypic_features
            .retain(|_| !rng.chance(DROP_FEATURE_PROBABILITY));
        for _ in 0..rng.below(MAX_ADDED_FEATURES + 1) {
            let feature = self.pool[rng.below(self.pool.len())].clone();
            record.phenotypic_features.push(feature);
        }
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<pb::Phenopacket> {
        read_corpus(&crate::repo_root().join("tests/data/phenopacket-store-sample.jsonl.gz"))
            .expect("the committed sample reads")
    }

    #[test]
    fn same_seed_same_cases_in_any_order() {
        const CASES: u64 = 200;
        let records = sample();
        let first = Generator::new(records.clone(), 1).expect("generator");
        let again = Generator::new(records.clone(), 1).expect("generator");
        let forward: Vec<pb::Phenopacket> = (0..CASES).map(|i| first.case(i)).collect();
        let mut backward: Vec<pb::Phenopacket> = (0..CASES).rev().map(|i| again.case(i)).collect();
        backward.reverse();
        assert_eq!(forward, backward);

        let other = Generator::new(records, 2).expect("generator");
        let different = (0..CASES).filter(|&i| other.case(i) != forward[i as usize]);
        assert!(
            different.count() > (CASES / 2) as usize,
            "seed 2 gives other cases"
        );

        for (i, case) in forward.iter().enumerate() {
            assert_eq!(case.id, format!("synthetic-{i}"));
            let subject = case.subject.as_ref().expect("subject");
            assert_eq!(subject.id, format!("synthetic-{i}-subject"));
            assert!(case.biosamples.is_empty() && case.files.is_empty());
            assert!(case.measurements.is_empty() && case.medical_actions.is_empty());
            assert!(case.meta_data.is_some());
        }
    }
}
