//! The search benchmark's fixed queries, each as a core [`Query`] (for the in-process index)
//! and as query text (for the gRPC path, parsed by the client like the CLI does).

use casereg_core::age::{AgeUnit, days};
use casereg_core::ids::TermId;
use casereg_core::index::{AgeField, CodeKind, Query};
use casereg_core::ontology::Ontology;

use crate::error::{BenchError, Result};

/// One benchmark query.
#[derive(Debug, Clone)]
pub struct BenchQuery {
    /// What it exercises, for the report.
    pub what: &'static str,
    /// The same query in the client's query syntax.
    pub text: &'static str,
    /// The query the index evaluates.
    pub query: Query,
}

fn term(id: &str) -> Result<TermId> {
    TermId::parse(id).map_err(|e| BenchError::Input(format!("query term {id}: {}", e.0)))
}

fn phenotype(id: &str) -> Result<Query> {
    Ok(Query::Phenotype {
        term: term(id)?,
        exact: false,
    })
}

/// The queries of `casereg-bench search`. HPO names (release 2025-01-16): HP:0000707
/// Abnormality of the nervous system, HP:0001250 Seizure, HP:0007359 Focal-onset seizure,
/// HP:0001263 Global developmental delay; OMIM:612164 is Developmental and epileptic
/// encephalopathy 4.
pub fn search_queries() -> Result<Vec<BenchQuery>> {
    let one_year = i32::try_from(days(1, AgeUnit::Years))
        .map_err(|_| BenchError::Input("one year in days does not fit an i32".to_owned()))?;
    Ok(vec![
        BenchQuery {
            what: "phenotype, high in the hierarchy",
            text: "phenotype:HP:0000707",
            query: phenotype("HP:0000707")?,
        },
        BenchQuery {
            what: "phenotype, mid",
            text: "phenotype:HP:0001250",
            query: phenotype("HP:0001250")?,
        },
        BenchQuery {
            what: "phenotype, low",
            text: "phenotype:HP:0007359",
            query: phenotype("HP:0007359")?,
        },
        BenchQuery {
            what: "phenotype, exact term only",
            text: "phenotype:=HP:0001250",
            query: Query::Phenotype {
                term: term("HP:0001250")?,
                exact: true,
            },
        },
        BenchQuery {
            what: "with descendants and two filters",
            text: "phenotype:HP:0000707 and sex:female and onset<1y",
            query: Query::All(vec![
                phenotype("HP:0000707")?,
                Query::Sex(1),
                Query::Age {
                    field: AgeField::Onset,
                    from: None,
                    until: Some(one_year),
                },
            ]),
        },
        BenchQuery {
            what: "phenotype and not another",
            text: "phenotype:HP:0001250 and not phenotype:HP:0001263",
            query: Query::All(vec![
                phenotype("HP:0001250")?,
                Query::Not(Box::new(phenotype("HP:0001263")?)),
            ]),
        },
        BenchQuery {
            what: "excluded phenotype",
            text: "excluded:HP:0001250",
            query: Query::Excluded {
                term: term("HP:0001250")?,
                exact: false,
            },
        },
        BenchQuery {
            what: "either phenotype, and a disease",
            text: "(phenotype:HP:0001250 or phenotype:HP:0001263) and disease:OMIM:612164",
            query: Query::All(vec![
                Query::Any(vec![phenotype("HP:0001250")?, phenotype("HP:0001263")?]),
                Query::Code {
                    kind: CodeKind::Disease,
                    id: "OMIM:612164".to_owned(),
                },
            ]),
        },
    ])
}

/// How many term bitmaps [`casereg_core::index::Expansion::DescendantUnion`] reads for the
/// phenotype leaves of `query`: a non-exact term and all its descendants, or an exact term
/// alone. The ancestor closure reads one bitmap per leaf. `None` when the query has no
/// phenotype leaf (both strategies then read the same bitmaps).
pub fn union_terms(query: &Query, hpo: &Ontology) -> Option<usize> {
    match query {
        Query::All(operands) | Query::Any(operands) => operands
            .iter()
            .filter_map(|q| union_terms(q, hpo))
            .reduce(|a, b| a + b),
        Query::Not(operand) => union_terms(operand, hpo),
        Query::Phenotype { exact: true, .. } => Some(1),
        Query::Phenotype { term, exact: false } => Some(hpo.descendants(*term).len() + 1),
        _ => None,
    }
}
