//! The `Aggregate` call: request checks, the core's exact counts, labels, then disclosure
//! control (always last, in [`crate::disclosure`]).

use casereg_core::aggregate::{Cut, Dimension, GroupKey};
use casereg_core::index::{AgeField, CodeKind, Index};
use casereg_core::{CoreError, FieldViolation};
use casereg_proto::v1 as pb;

use casereg_core::stats::frequencies;

use crate::access::disclosure;
use crate::wire::filter;

use casereg_core::limits::{DEFAULT_TOP_N, MAX_ROLLUP_DEPTH, MAX_TOP_N};

/// Answers `request` from `index`, withholding counts below `min_cell_count` (0: exact).
pub fn aggregate(
    request: &pb::AggregateRequest,
    index: &Index,
    min_cell_count: u64,
) -> Result<pb::AggregateResponse, CoreError> {
    let query = filter::to_query(request.filter.as_ref(), "filter", index)?;
    let mut violations = Vec::new();
    if request.group_by.is_empty() || request.group_by.len() > 2 {
        violations.push(FieldViolation::new(
            "group_by",
            format!("has {} dimensions; give one or two", request.group_by.len()),
        ));
    }
    let dimensions: Vec<Dimension> = request
        .group_by
        .iter()
        .enumerate()
        .filter_map(|(i, g)| match dimension(g) {
            Ok(d) => Some(d),
            Err((field, message)) => {
                violations.push(FieldViolation::new(
                    format!("group_by[{i}].{field}"),
                    message,
                ));
                None
            }
        })
        .collect();
    let top = match checked_top(request.top_n) {
        Ok(top) => top,
        Err(CoreError::Invalid(mut v)) => {
            violations.append(&mut v);
            0
        }
        Err(other) => return Err(other),
    };
    if !violations.is_empty() {
        return Err(CoreError::Invalid(violations));
    }
    let cut = Cut {
        top: top as usize,
        min_count: request.min_count,
    };
    let result = index
        .aggregate(&query, &dimensions, cut)
        .map_err(|e| CoreError::Invalid(vec![FieldViolation::new("group_by", e.0)]))?;
    let (counts, total, other, none) = disclosure::protect(&result, min_cell_count);
    let cells = result
        .cells
        .into_iter()
        .zip(counts)
        .map(|(cell, count)| pb::AggregateCell {
            keys: cell
                .keys
                .into_iter()
                .zip(&dimensions)
                .map(|(key, dimension)| labelled(key, *dimension, index))
                .collect(),
            count: Some(count),
        })
        .collect();
    Ok(pb::AggregateResponse {
        cells,
        total: Some(total),
        other: Some(other),
        none: Some(none),
        min_cell_count,
    })
}

/// Answers a co-occurrence request. Below record level (k > 1) a value is listed only if at
/// least k cases of the subset have it, since its frequency would give a smaller count away.
pub fn cooccurrence(
    request: &pb::CoOccurrenceRequest,
    index: &Index,
    min_cell_count: u64,
) -> Result<pb::CoOccurrenceResponse, CoreError> {
    let query = filter::to_query(request.filter.as_ref(), "filter", index)?;
    let group = pb::GroupBy {
        dimension: request.dimension,
        ..pb::GroupBy::default()
    };
    let dimension = dimension(&group).map_err(|(field, message)| {
        CoreError::Invalid(vec![FieldViolation::new(field, message)])
    })?;
    let top = checked_top(request.top_n)?;
    let cut = Cut {
        top: top as usize,
        min_count: request.min_count.max(min_cell_count),
    };
    let result = index
        .cooccurrence(&query, dimension, cut)
        .map_err(|e| CoreError::Invalid(vec![FieldViolation::new("dimension", e.0)]))?;
    let subset_cases = disclosure::count(result.subset, min_cell_count);
    let withheld = subset_cases.precision != pb::Precision::Exact as i32;
    let values = if withheld {
        Vec::new()
    } else {
        result
            .values
            .into_iter()
            .map(|v| {
                let shares = frequencies(v.subset, result.subset, v.registry, result.registry);
                pb::CoOccurringValue {
                    key: Some(labelled(v.key, dimension, index)),
                    cases: Some(disclosure::count(v.subset, min_cell_count)),
                    registry_cases: Some(disclosure::count(v.registry, min_cell_count)),
                    frequency: shares.frequency,
                    registry_frequency: shares.registry_frequency,
                    ratio: shares.ratio,
                    p_value: v.p_value,
                    q_value: v.q_value,
                }
            })
            .collect()
    };
    Ok(pb::CoOccurrenceResponse {
        values,
        subset_cases: Some(subset_cases),
        registry_cases: Some(disclosure::count(result.registry, min_cell_count)),
        tested: result.tested as u64,
        min_cell_count,
    })
}

/// The top-N and minimum count of `request`, checked (for answers cut after merging).
pub fn cut_of(request: &pb::AggregateRequest) -> Result<Cut, CoreError> {
    Ok(Cut {
        top: checked_top(request.top_n)? as usize,
        min_count: request.min_count,
    })
}

fn checked_top(top_n: u32) -> Result<u32, CoreError> {
    match top_n {
        0 => Ok(DEFAULT_TOP_N),
        n if n > MAX_TOP_N => Err(CoreError::Invalid(vec![FieldViolation::new(
            "top_n",
            format!("is {n}; the limit is {MAX_TOP_N} (0 means {DEFAULT_TOP_N})"),
        )])),
        n => Ok(n),
    }
}

/// A requested dimension, or the field at fault and why.
fn dimension(g: &pb::GroupBy) -> Result<Dimension, (&'static str, String)> {
    use pb::Dimension as D;
    let d = D::try_from(g.dimension)
        .map_err(|_| ("dimension", format!("{} is not a Dimension", g.dimension)))?;
    let code = |kind| Dimension::Code(kind);
    let age = |field| {
        if g.bucket_days == 0 {
            Err((
                "bucket_days",
                "is required for ages and must be at least 1".to_owned(),
            ))
        } else {
            Ok(Dimension::Age {
                field,
                bucket_days: g.bucket_days,
            })
        }
    };
    if g.rollup_depth != 0 && d != D::Phenotype {
        return Err(("rollup_depth", "applies to PHENOTYPE only".to_owned()));
    }
    if g.bucket_days != 0 && !matches!(d, D::Onset | D::Age) {
        return Err(("bucket_days", "applies to ONSET and AGE only".to_owned()));
    }
    Ok(match d {
        D::Unspecified => {
            return Err((
                "dimension",
                "is required: DISEASE, PHENOTYPE, EXCLUDED_PHENOTYPE, GENE, TREATMENT, RESPONSE, \
                 PROCEDURE, SEX, ONSET, AGE, CENTER or PUBLICATION"
                    .to_owned(),
            ));
        }
        D::Disease => code(CodeKind::Disease),
        D::Phenotype if g.rollup_depth > MAX_ROLLUP_DEPTH => {
            return Err((
                "rollup_depth",
                format!("is {}; the limit is {MAX_ROLLUP_DEPTH}", g.rollup_depth),
            ));
        }
        D::Phenotype => Dimension::Phenotype {
            rollup_depth: g.rollup_depth,
        },
        D::ExcludedPhenotype => Dimension::Excluded,
        D::Gene => code(CodeKind::Gene),
        D::Treatment => code(CodeKind::Treatment),
        D::Response => code(CodeKind::Response),
        D::Procedure => code(CodeKind::Procedure),
        D::Sex => Dimension::Sex,
        D::Onset => age(AgeField::Onset)?,
        D::Age => age(AgeField::LastEncounter)?,
        D::Center => code(CodeKind::Center),
        D::Publication => code(CodeKind::Publication),
    })
}

/// A group key with its label.
fn labelled(key: GroupKey, dimension: Dimension, index: &Index) -> pb::GroupKey {
    let (id, label) = match key {
        GroupKey::Code(id) => {
            let label = match dimension {
                Dimension::Code(kind) => index.label_of(kind, &id).unwrap_or_default(),
                _ => "",
            };
            (id, label.to_owned())
        }
        GroupKey::Term(term) => (
            term.to_string(),
            index
                .ontology()
                .term(term)
                .map(|t| t.name.clone())
                .unwrap_or_default(),
        ),
        GroupKey::Sex(sex) => {
            let name = pb::Sex::try_from(sex).map_or("UNKNOWN_SEX", |s| s.as_str_name());
            (name.to_owned(), name.to_lowercase().replace('_', " "))
        }
        GroupKey::Bucket { from, until } => (format!("[{from},{until})"), age_words(from, until)),
        GroupKey::SeveralBuckets => ("several".to_owned(), "spans several buckets".to_owned()),
    };
    pb::GroupKey { id, label }
}

/// `[from, until)` days in words: whole years when both ends are, else days.
fn age_words(from: i32, until: i32) -> String {
    let years = |d: i32| {
        let y = i64::from(d) * 4 / 1461;
        (casereg_core::age::days(y.unsigned_abs(), casereg_core::age::AgeUnit::Years) * y.signum()
            == i64::from(d))
        .then_some(y)
    };
    match (years(from), years(until)) {
        (Some(a), Some(b)) => format!("{a} to {b} years"),
        _ => format!("{from} to {until} days"),
    }
}
