//! The wire filter tree to the core's [`Query`]: every id checked, every label resolved to
//! exactly one id, depth and size bounded. Problems are field violations whose paths name
//! the filter node (`filter.all.filters[1].phenotype.id`).

use casereg_core::case::push_violation;
use casereg_core::ids::{CenterId, Curie};
use casereg_core::index::{AgeField, CodeKind, Index, Query};
use casereg_core::limits::{MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_ID_BYTES};
use casereg_core::ontology::{Ontology, Resolution};
use casereg_core::{CoreError, FieldViolation};
use casereg_proto::v1 as pb;

/// Reads `filter` (absent: every active case) at request field `field`.
pub fn to_query(
    filter: Option<&pb::Filter>,
    field: &str,
    index: &Index,
) -> Result<Query, CoreError> {
    let Some(filter) = filter else {
        return Ok(Query::All(Vec::new()));
    };
    let mut reader = Reader {
        hpo: index.ontology(),
        index,
        nodes: 0,
        violations: Vec::new(),
    };
    let query = reader.node(filter, field, 1);
    match query {
        Some(query) if reader.violations.is_empty() => Ok(query),
        _ => Err(CoreError::Invalid(reader.violations)),
    }
}

struct Reader<'a> {
    hpo: &'a Ontology,
    index: &'a Index,
    nodes: usize,
    violations: Vec<FieldViolation>,
}

impl Reader<'_> {
    fn fail(&mut self, field: String, description: impl Into<String>) -> Option<Query> {
        push_violation(
            &mut self.violations,
            FieldViolation::new(field, description),
        );
        None
    }

    fn node(&mut self, filter: &pb::Filter, field: &str, depth: usize) -> Option<Query> {
        use pb::filter::Node;
        self.nodes += 1;
        if self.nodes > MAX_FILTER_NODES {
            if self.nodes == MAX_FILTER_NODES + 1 {
                self.fail(
                    field.to_owned(),
                    format!("the filter has more than {MAX_FILTER_NODES} nodes, the limit"),
                );
            }
            return None;
        }
        if depth > MAX_FILTER_DEPTH {
            return self.fail(
                field.to_owned(),
                format!("the filter is nested deeper than {MAX_FILTER_DEPTH} levels, the limit"),
            );
        }
        let Some(node) = &filter.node else {
            return self.fail(
                field.to_owned(),
                "is empty: set one of all, any, not, phenotype, excluded, disease, gene, \
                 treatment, procedure, sex, onset, age, center, publication, variant_class",
            );
        };
        match node {
            Node::All(list) => self
                .list(list, &format!("{field}.all"), depth)
                .map(Query::All),
            Node::Any(list) => self
                .list(list, &format!("{field}.any"), depth)
                .map(Query::Any),
            Node::Not(inner) => self
                .node(inner, &format!("{field}.not"), depth + 1)
                .map(|q| Query::Not(Box::new(q))),
            Node::Phenotype(m) => self
                .phenotype(m, &format!("{field}.phenotype"))
                .map(|(term, exact)| Query::Phenotype { term, exact }),
            Node::Excluded(m) => self
                .phenotype(m, &format!("{field}.excluded"))
                .map(|(term, exact)| Query::Excluded { term, exact }),
            Node::Disease(m) => self.code(CodeKind::Disease, m, &format!("{field}.disease")),
            Node::Gene(m) => self.code(CodeKind::Gene, m, &format!("{field}.gene")),
            Node::Treatment(m) => self.code(CodeKind::Treatment, m, &format!("{field}.treatment")),
            Node::Procedure(m) => self.code(CodeKind::Procedure, m, &format!("{field}.procedure")),
            Node::Sex(sex) => match pb::Sex::try_from(*sex) {
                Ok(_) => Some(Query::Sex(*sex)),
                Err(_) => self.fail(
                    format!("{field}.sex"),
                    format!("{sex} is not a Sex value (0 unknown, 1 female, 2 male, 3 other)"),
                ),
            },
            Node::Onset(window) => self.age(AgeField::Onset, window, &format!("{field}.onset")),
            Node::Age(window) => self.age(AgeField::LastEncounter, window, &format!("{field}.age")),
            Node::Center(center) => match CenterId::parse(center) {
                Ok(center) => Some(Query::Code {
                    kind: CodeKind::Center,
                    id: center.to_string(),
                }),
                Err(e) => self.fail(format!("{field}.center"), e.0),
            },
            Node::Publication(id) => {
                let path = format!("{field}.publication");
                self.checked_id(id, &path).map(|()| Query::Code {
                    kind: CodeKind::Publication,
                    id: id.clone(),
                })
            }
            Node::VariantClass(name) => {
                match pb::AcmgPathogenicityClassification::from_str_name(&name.to_uppercase()) {
                    Some(_) => Some(Query::Code {
                        kind: CodeKind::VariantClass,
                        id: name.to_uppercase(),
                    }),
                    None => self.fail(
                        format!("{field}.variant_class"),
                        format!(
                            "{name:?} is not an ACMG class; use PATHOGENIC, LIKELY_PATHOGENIC, \
                             UNCERTAIN_SIGNIFICANCE, LIKELY_BENIGN or BENIGN"
                        ),
                    ),
                }
            }
        }
    }

    fn list(&mut self, list: &pb::FilterList, field: &str, depth: usize) -> Option<Vec<Query>> {
        let mut queries = Vec::with_capacity(list.filters.len());
        let mut ok = true;
        for (i, filter) in list.filters.iter().enumerate() {
            match self.node(filter, &format!("{field}.filters[{i}]"), depth + 1) {
                Some(query) => queries.push(query),
                None => ok = false,
            }
            if self.nodes > MAX_FILTER_NODES {
                return None;
            }
        }
        ok.then_some(queries)
    }

    fn phenotype(
        &mut self,
        m: &pb::PhenotypeMatch,
        field: &str,
    ) -> Option<(casereg_core::ids::TermId, bool)> {
        use pb::phenotype_match::Term;
        let term = match &m.term {
            None => {
                self.fail(field.to_owned(), "names no term: set id or label");
                return None;
            }
            Some(Term::Id(id)) => {
                let path = format!("{field}.id");
                let term = match Curie::check_term(id) {
                    Ok(Some(term)) => term,
                    Ok(None) => {
                        self.fail(path, format!("{id:?} is not an HPO id (HP:0000000)"));
                        return None;
                    }
                    Err(e) => {
                        self.fail(path, e.0);
                        return None;
                    }
                };
                match self.hpo.resolve(term) {
                    Resolution::Unknown(_) => {
                        self.fail(
                            path,
                            format!("{id} is not in HPO release {}", self.hpo.version()),
                        );
                        return None;
                    }
                    resolution => resolution.effective(),
                }
            }
            Some(Term::Label(label)) => {
                let path = format!("{field}.label");
                match self.hpo.find_by_label(label).as_slice() {
                    [term] => *term,
                    [] => {
                        let (hits, _) = self.hpo.search(label, 3, false);
                        let suggestions: Vec<String> = hits
                            .iter()
                            .map(|h| format!("{} {:?}", h.term.id, h.term.name))
                            .collect();
                        let hint = if suggestions.is_empty() {
                            String::new()
                        } else {
                            format!("; did you mean {}?", suggestions.join(", "))
                        };
                        self.fail(path, format!("no HPO term is named {label:?}{hint}"));
                        return None;
                    }
                    many => {
                        let ids: Vec<String> = many.iter().map(ToString::to_string).collect();
                        self.fail(
                            path,
                            format!(
                                "{label:?} names several HPO terms ({}); use an id",
                                ids.join(", ")
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        Some((term, m.exact))
    }

    fn code(&mut self, kind: CodeKind, m: &pb::CodeMatch, field: &str) -> Option<Query> {
        use pb::code_match::Code;
        let what = match kind {
            CodeKind::Disease => "disease",
            CodeKind::Gene => "gene",
            CodeKind::Treatment => "treatment agent",
            _ => "procedure",
        };
        match &m.code {
            None => self.fail(field.to_owned(), "names nothing: set id or label"),
            Some(Code::Id(id)) => {
                let path = format!("{field}.id");
                let symbol = kind == CodeKind::Gene && !id.contains(':');
                if symbol {
                    self.checked_id(id, &path)?;
                } else if let Err(e) = Curie::check_term(id) {
                    return self.fail(path, e.0);
                }
                Some(Query::Code {
                    kind,
                    id: id.clone(),
                })
            }
            Some(Code::Label(label)) if kind == CodeKind::Gene => {
                // A gene's label is its symbol.
                self.checked_id(label, &format!("{field}.label"))?;
                Some(Query::Code {
                    kind,
                    id: label.clone(),
                })
            }
            Some(Code::Label(label)) => {
                let path = format!("{field}.label");
                match self.index.ids_for_label(kind, label).as_slice() {
                    [id] => Some(Query::Code {
                        kind,
                        id: id.clone(),
                    }),
                    [] => self.fail(
                        path,
                        format!("no case records a {what} labelled {label:?}; try its id"),
                    ),
                    many => self.fail(
                        path,
                        format!(
                            "{label:?} is recorded for several {what} ids ({}); use an id",
                            many.join(", ")
                        ),
                    ),
                }
            }
        }
    }

    /// A plain id or symbol: non-empty, bounded, without whitespace.
    fn checked_id(&mut self, id: &str, field: &str) -> Option<()> {
        if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_whitespace) {
            self.fail(
                field.to_owned(),
                format!("must be 1 to {MAX_ID_BYTES} bytes without spaces, got {id:?}"),
            );
            return None;
        }
        Some(())
    }

    fn age(&mut self, field: AgeField, window: &pb::AgeWindow, path: &str) -> Option<Query> {
        let (from, until) = (window.from_days, window.until_days);
        match (from, until) {
            (None, None) => self.fail(
                path.to_owned(),
                "sets no bound: give from_days, until_days or both",
            ),
            (Some(f), Some(u)) if f >= u => self.fail(
                path.to_owned(),
                format!("is empty: from_days {f} is not below until_days {u}"),
            ),
            _ => Some(Query::Age { field, from, until }),
        }
    }
}
