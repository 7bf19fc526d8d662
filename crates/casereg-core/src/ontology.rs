//! The Human Phenotype Ontology: loading an OBO release and resolving ids.
//!
//! The registry ships HPO 2025-01-16 (`data/hp.obo.gz`, unaltered) embedded in the binary;
//! another release can be loaded from a file. Only what the registry uses is kept: names,
//! synonyms, `is_a` parents, alt ids, obsolescence and replacements.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use crate::ids::TermId;
use crate::limits::MAX_OBO_LINE_BYTES;

/// The HPO release compiled into the binary (`data/hp.obo.gz`, byte-for-byte as published).
pub const EMBEDDED_HPO_OBO_GZ: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/hp.obo.gz"));

/// Where the loaded release came from, as shown to users.
pub const EMBEDDED_SOURCE: &str = "embedded";

/// Why an ontology file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum OntologyError {
    /// The file could not be read or decompressed.
    #[error("cannot read ontology {source_name}: {error}")]
    Io {
        /// File name or `embedded`.
        source_name: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The content is not an HPO release in OBO format.
    #[error("{source_name} line {line}: {message}")]
    Format {
        /// File name or `embedded`.
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One HPO term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Its primary id.
    pub id: TermId,
    /// Its preferred name.
    pub name: String,
    /// Synonyms of any scope, as written.
    pub synonyms: Vec<String>,
    /// Direct `is_a` parents.
    pub parents: Vec<TermId>,
    /// Marked `is_obsolete: true`.
    pub obsolete: bool,
    /// `replaced_by`, for obsolete terms that name one.
    pub replaced_by: Option<TermId>,
}

/// How an id submitted in a record reads in the loaded release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// A current term, used as is.
    Current(TermId),
    /// An alternative id of the given primary term.
    AltId(TermId),
    /// An obsolete id whose named replacement is the given term.
    ObsoleteReplaced(TermId),
    /// An obsolete id without a single replacement: used as given.
    Obsolete(TermId),
    /// Not in this release at all (perhaps newer): kept as given.
    Unknown(TermId),
}

impl Resolution {
    /// The id search should use for this term.
    pub fn effective(self) -> TermId {
        match self {
            Self::Current(t)
            | Self::AltId(t)
            | Self::ObsoleteReplaced(t)
            | Self::Obsolete(t)
            | Self::Unknown(t) => t,
        }
    }
}

/// A loaded HPO release.
#[derive(Debug)]
pub struct Ontology {
    version: String,
    source: String,
    terms: Vec<Term>,
    by_id: HashMap<TermId, usize>,
    alt_ids: HashMap<TermId, TermId>,
    children: HashMap<TermId, Vec<TermId>>,
    /// Lower-cased names and synonyms for search: (term index, text, is synonym).
    search_texts: Vec<(usize, String, bool)>,
}

/// One hit of [`Ontology::search`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermHit<'a> {
    /// The term.
    pub term: &'a Term,
    /// The name or synonym that matched, as the release writes it.
    pub matched: &'a str,
    /// Whether `matched` is a synonym.
    pub synonym: bool,
}

impl Ontology {
    /// Loads the release compiled into the binary.
    pub fn embedded() -> Result<Self, OntologyError> {
        Self::from_reader(GzDecoder::new(EMBEDDED_HPO_OBO_GZ), EMBEDDED_SOURCE)
    }

    /// Loads `hp.obo` or `hp.obo.gz` from a file.
    pub fn from_path(path: &Path) -> Result<Self, OntologyError> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|error| OntologyError::Io {
            source_name: name.clone(),
            error,
        })?;
        if path.extension().is_some_and(|e| e == "gz") {
            Self::from_reader(GzDecoder::new(file), &name)
        } else {
            Self::from_reader(file, &name)
        }
    }

    /// Parses OBO 1.2 text. Only `[Term]` stanzas are read; other stanzas are skipped.
    pub fn from_reader(reader: impl Read, source_name: &str) -> Result<Self, OntologyError> {
        let mut parser = OboParser {
            source_name,
            line_number: 0,
            version: None,
            terms: Vec::new(),
            alt_ids: Vec::new(),
            current: None,
            in_term: false,
        };
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        loop {
            line.clear();
            let read = (&mut reader)
                .take(MAX_OBO_LINE_BYTES as u64 + 1)
                .read_line(&mut line)
                .map_err(|error| OntologyError::Io {
                    source_name: source_name.to_owned(),
                    error,
                })?;
            if read == 0 {
                break;
            }
            parser.line_number += 1;
            if read > MAX_OBO_LINE_BYTES {
                return Err(parser.error(format!("line longer than {MAX_OBO_LINE_BYTES} bytes")));
            }
            parser.line(line.trim_end_matches(['\n', '\r']))?;
        }
        parser.finish()
    }

    /// The release, from the `data-version` header (e.g. `2025-01-16`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Where it was loaded from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Number of terms, obsolete ones included.
    pub fn term_count(&self) -> usize {
        self.terms.len()
    }

    /// The term with this primary id.
    pub fn term(&self, id: TermId) -> Option<&Term> {
        self.by_id.get(&id).map(|&i| &self.terms[i])
    }

    /// Reads an id as search will: alt ids and obsolete ids map to their primary term.
    pub fn resolve(&self, id: TermId) -> Resolution {
        // An obsolete stanza's own `replaced_by` wins; some obsolete ids are also listed as
        // an alt id of their successor, which then serves when no replacement is named.
        let alt = self.alt_ids.get(&id).copied();
        match (self.term(id), alt) {
            (Some(term), _) if !term.obsolete => Resolution::Current(id),
            (Some(term), alt) => match (term.replaced_by, alt) {
                (Some(replacement), _) => Resolution::ObsoleteReplaced(replacement),
                (None, Some(primary)) => Resolution::AltId(primary),
                (None, None) => Resolution::Obsolete(id),
            },
            (None, Some(primary)) => Resolution::AltId(primary),
            (None, None) => Resolution::Unknown(id),
        }
    }

    /// Direct children of a term (terms whose `is_a` names it).
    pub fn children(&self, id: TermId) -> &[TermId] {
        self.children.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Every term above `id` (not `id` itself), ordered by id.
    pub fn ancestors(&self, id: TermId) -> Vec<TermId> {
        self.closure(id, |t| {
            self.term(t).map_or(&[][..], |term| term.parents.as_slice())
        })
    }

    /// Every term below `id` (not `id` itself), ordered by id.
    pub fn descendants(&self, id: TermId) -> Vec<TermId> {
        self.closure(id, |t| self.children(t))
    }

    fn closure<'a>(&'a self, start: TermId, next: impl Fn(TermId) -> &'a [TermId]) -> Vec<TermId> {
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![start];
        while let Some(t) = stack.pop() {
            for &n in next(t) {
                if seen.insert(n) {
                    stack.push(n);
                }
            }
        }
        seen.remove(&start);
        let mut out: Vec<TermId> = seen.into_iter().collect();
        out.sort();
        out
    }

    /// Terms whose name or synonym contains `query` (case-insensitive), best first: exact
    /// name, exact synonym, name prefix, synonym prefix, word prefix, substring, and last
    /// texts holding every word of the query in any order; shorter texts first within a
    /// rank, then by id. Returns at most `limit` hits and the number of
    /// terms that matched.
    pub fn search(
        &self,
        query: &str,
        limit: usize,
        include_obsolete: bool,
    ) -> (Vec<TermHit<'_>>, usize) {
        let needle = query.trim().to_lowercase();
        if needle.is_empty() {
            return (Vec::new(), 0);
        }
        let words: Vec<&str> = needle.split_whitespace().collect();
        // Best (rank, length, text index) per term.
        let mut best: HashMap<usize, (u8, usize, usize)> = HashMap::new();
        for (i, (term_index, text, synonym)) in self.search_texts.iter().enumerate() {
            let term = &self.terms[*term_index];
            if term.obsolete && !include_obsolete {
                continue;
            }
            let rank = if *text == needle {
                if *synonym { 1 } else { 0 }
            } else if text.starts_with(&needle) {
                if *synonym { 3 } else { 2 }
            } else if text
                .match_indices(&needle)
                .any(|(at, _)| at > 0 && !text.as_bytes()[at - 1].is_ascii_alphanumeric())
            {
                if *synonym { 5 } else { 4 }
            } else if text.contains(&needle) {
                if *synonym { 7 } else { 6 }
            } else if words.len() > 1 && words.iter().all(|w| text.contains(w)) {
                if *synonym { 9 } else { 8 }
            } else {
                continue;
            };
            let key = (rank, text.len(), i);
            best.entry(*term_index)
                .and_modify(|current| *current = (*current).min(key))
                .or_insert(key);
        }
        let total = best.len();
        let mut ranked: Vec<(u8, usize, TermId, usize)> = best
            .into_iter()
            .map(|(term_index, (rank, len, text))| (rank, len, self.terms[term_index].id, text))
            .collect();
        ranked.sort_unstable();
        let hits = ranked
            .into_iter()
            .take(limit)
            .filter_map(|(_, _, id, text)| {
                let (term_index, _, synonym) = &self.search_texts[text];
                let term = &self.terms[*term_index];
                let matched = if *synonym {
                    term.synonyms
                        .iter()
                        .find(|s| s.to_lowercase() == self.search_texts[text].1)?
                } else {
                    &term.name
                };
                debug_assert_eq!(term.id, id);
                Some(TermHit {
                    term,
                    matched,
                    synonym: *synonym,
                })
            })
            .collect();
        (hits, total)
    }

    /// Current terms whose name equals `label` (ignoring case); when none does, those with
    /// a synonym that equals it. More than one means the label is ambiguous.
    pub fn find_by_label(&self, label: &str) -> Vec<TermId> {
        let needle = label.trim().to_lowercase();
        let matching = |synonyms: bool| {
            let mut ids: Vec<TermId> = self
                .search_texts
                .iter()
                .filter(|(i, text, synonym)| {
                    *synonym == synonyms && *text == needle && !self.terms[*i].obsolete
                })
                .map(|(i, _, _)| self.terms[*i].id)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let by_name = matching(false);
        if by_name.is_empty() {
            matching(true)
        } else {
            by_name
        }
    }

    /// The acknowledgement the HPO license asks services to display, with the version.
    pub fn attribution(&self) -> String {
        format!(
            "This service is using the Human Phenotype Ontology (version {}). \
             Find out more at http://www.human-phenotype-ontology.org",
            self.version
        )
    }
}

struct OboParser<'a> {
    source_name: &'a str,
    line_number: usize,
    version: Option<String>,
    terms: Vec<Term>,
    alt_ids: Vec<(TermId, TermId)>,
    current: Option<Term>,
    in_term: bool,
}

impl OboParser<'_> {
    fn error(&self, message: String) -> OntologyError {
        OntologyError::Format {
            source_name: self.source_name.to_owned(),
            line: self.line_number,
            message,
        }
    }

    fn term_id(&self, text: &str) -> Result<TermId, OntologyError> {
        // Values may carry a trailing comment (`HP:0000118 ! Phenotypic abnormality`).
        let text = text.split_once(" !").map_or(text, |(id, _)| id).trim();
        TermId::parse(text).map_err(|e| self.error(e.0))
    }

    fn line(&mut self, line: &str) -> Result<(), OntologyError> {
        if line.starts_with('[') {
            self.close_term()?;
            self.in_term = line == "[Term]";
            return Ok(());
        }
        let Some((tag, value)) = line.split_once(':') else {
            return Ok(());
        };
        let value = value.trim();
        if self.current.is_none() && !self.in_term {
            if tag == "data-version" {
                let version = value.rsplit('/').next().unwrap_or(value);
                self.version = Some(version.to_owned());
            }
            return Ok(());
        }
        if !self.in_term {
            return Ok(());
        }
        if tag == "id" {
            if self.current.is_some() {
                return Err(self.error("a second id in one [Term] stanza".to_owned()));
            }
            let id = self.term_id(value)?;
            self.current = Some(Term {
                id,
                name: String::new(),
                synonyms: Vec::new(),
                parents: Vec::new(),
                obsolete: false,
                replaced_by: None,
            });
            return Ok(());
        }
        let Some(term_id) = self.current.as_ref().map(|t| t.id) else {
            return Err(self.error(format!("'{tag}' before the stanza's id")));
        };
        match tag {
            "name" => self.with_term(|t| t.name = value.to_owned()),
            "synonym" => {
                // synonym: "text" SCOPE [xrefs]
                if let Some(rest) = value.strip_prefix('"')
                    && let Some(end) = rest.find('"')
                {
                    let text = rest[..end].to_owned();
                    self.with_term(|t| t.synonyms.push(text));
                }
            }
            "is_a" => {
                let parent = self.term_id(value)?;
                self.with_term(|t| t.parents.push(parent));
            }
            "alt_id" => {
                let alt = self.term_id(value)?;
                self.alt_ids.push((alt, term_id));
            }
            "is_obsolete" => {
                let obsolete = value == "true";
                self.with_term(|t| t.obsolete = obsolete);
            }
            "replaced_by" => {
                // Only HPO replacements are usable for HPO search.
                if let Ok(replacement) = self.term_id(value) {
                    self.with_term(|t| t.replaced_by = Some(replacement));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn with_term(&mut self, f: impl FnOnce(&mut Term)) {
        if let Some(term) = self.current.as_mut() {
            f(term);
        }
    }

    fn close_term(&mut self) -> Result<(), OntologyError> {
        if let Some(term) = self.current.take() {
            if term.name.is_empty() {
                return Err(self.error(format!("term {} has no name", term.id)));
            }
            self.terms.push(term);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Ontology, OntologyError> {
        self.close_term()?;
        let Some(version) = self.version.take() else {
            return Err(self.error("no 'data-version' header: not an HPO release".to_owned()));
        };
        if self.terms.is_empty() {
            return Err(self.error("no [Term] stanzas".to_owned()));
        }
        let by_id: HashMap<TermId, usize> = self
            .terms
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i))
            .collect();
        if by_id.len() != self.terms.len() {
            return Err(self.error("a term id occurs in more than one stanza".to_owned()));
        }
        let mut children: HashMap<TermId, Vec<TermId>> = HashMap::new();
        let mut search_texts = Vec::new();
        for (index, term) in self.terms.iter().enumerate() {
            for parent in &term.parents {
                children.entry(*parent).or_default().push(term.id);
            }
            search_texts.push((index, term.name.to_lowercase(), false));
            for synonym in &term.synonyms {
                search_texts.push((index, synonym.to_lowercase(), true));
            }
        }
        Ok(Ontology {
            version,
            source: self.source_name.to_owned(),
            terms: self.terms,
            by_id,
            alt_ids: self.alt_ids.into_iter().collect(),
            children,
            search_texts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "format-version: 1.2\n\
data-version: hp/releases/2025-01-16\n\
\n\
[Term]\n\
id: HP:0000001\n\
name: All\n\
\n\
[Term]\n\
id: HP:0000118\n\
name: Phenotypic abnormality\n\
alt_id: HP:0000005\n\
synonym: \"Organ abnormality\" EXACT []\n\
is_a: HP:0000001 ! All\n\
\n\
[Term]\n\
id: HP:0000006\n\
name: obsolete thing\n\
is_obsolete: true\n\
replaced_by: HP:0000118\n\
\n\
[Term]\n\
id: HP:0000007\n\
name: obsolete other\n\
is_obsolete: true\n\
consider: HP:0000118\n\
\n\
[Typedef]\n\
id: part_of\n\
name: part of\n";

    #[test]
    fn parses_terms_and_resolves_ids() {
        let hpo = Ontology::from_reader(SAMPLE.as_bytes(), "sample").unwrap();
        assert_eq!(hpo.version(), "2025-01-16");
        assert_eq!(hpo.term_count(), 4);
        let pa = hpo.term(TermId(118)).unwrap();
        assert_eq!(pa.name, "Phenotypic abnormality");
        assert_eq!(pa.parents, vec![TermId(1)]);
        assert_eq!(pa.synonyms, vec!["Organ abnormality".to_owned()]);
        assert_eq!(hpo.resolve(TermId(118)), Resolution::Current(TermId(118)));
        assert_eq!(hpo.resolve(TermId(5)), Resolution::AltId(TermId(118)));
        assert_eq!(
            hpo.resolve(TermId(6)),
            Resolution::ObsoleteReplaced(TermId(118))
        );
        assert_eq!(hpo.resolve(TermId(7)), Resolution::Obsolete(TermId(7)));
        assert_eq!(
            hpo.resolve(TermId(9_999_999)),
            Resolution::Unknown(TermId(9_999_999))
        );
    }

    #[test]
    fn relatives_and_search() {
        let hpo = Ontology::embedded().unwrap();
        let calcinosis_cutis = TermId(25520);
        let ancestors = hpo.ancestors(calcinosis_cutis);
        // Phenotypic abnormality and the root are above every phenotype.
        assert!(ancestors.contains(&TermId(118)) && ancestors.contains(&TermId(1)));
        assert!(!ancestors.contains(&calcinosis_cutis));
        for ancestor in &ancestors {
            assert!(
                hpo.descendants(*ancestor).contains(&calcinosis_cutis),
                "{ancestor}"
            );
        }
        assert_eq!(
            hpo.descendants(TermId(1)).len(),
            hpo.term_count() - 1 - obsolete_without_parents(&hpo)
        );

        let (hits, total) = hpo.search("calcinosis cutis", 5, false);
        assert!(total >= 1);
        assert_eq!(hits[0].term.id, calcinosis_cutis);
        assert!(!hits[0].synonym);
        let (none, zero) = hpo.search("  ", 5, false);
        assert!(none.is_empty() && zero == 0);
        let (reordered, _) = hpo.search("cutis calcinosis", 5, false);
        assert!(reordered.iter().any(|h| h.term.id == calcinosis_cutis));
        let (prefixed, _) = hpo.search("CALCINOS", 50, false);
        assert!(
            prefixed
                .iter()
                .all(|h| h.matched.to_lowercase().contains("calcinos"))
        );
    }

    /// Obsolete terms carry no `is_a`, so nothing reaches them from the root.
    fn obsolete_without_parents(hpo: &Ontology) -> usize {
        hpo.terms
            .iter()
            .filter(|t| t.id != TermId(1) && t.parents.is_empty())
            .count()
    }

    #[test]
    fn rejects_files_that_are_not_hpo_releases() {
        assert!(Ontology::from_reader("".as_bytes(), "empty").is_err());
        let no_version = "[Term]\nid: HP:0000001\nname: All\n";
        assert!(Ontology::from_reader(no_version.as_bytes(), "x").is_err());
        let bad_id = "data-version: hp/releases/x\n[Term]\nid: HP:1\nname: All\n";
        let err = Ontology::from_reader(bad_id.as_bytes(), "x").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn embedded_release_loads() {
        let hpo = Ontology::embedded().unwrap();
        assert_eq!(hpo.version(), "2025-01-16");
        // Counted in the release itself (see data/README.md): 19,484 [Term] stanzas.
        assert_eq!(hpo.term_count(), 19_484);
        let calcinosis = hpo.term(TermId::parse("HP:0025520").unwrap()).unwrap();
        assert!(!calcinosis.name.is_empty());
    }
}
