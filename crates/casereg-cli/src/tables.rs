//! `casereg stats`: reading `--by` dimensions and showing aggregate results as a table with
//! bars, or as CSV.

use std::io::Write;

use casereg_proto::age::{AgeUnit, days};
use casereg_proto::v1 as pb;
use comfy_table::Table;
use comfy_table::presets::UTF8_FULL_CONDENSED;

/// Width of the longest bar, in characters.
const BAR_WIDTH: u64 = 40;

/// Reads `name[:param]`: `phenotype:1` (roll-up depth), `onset:10y` (bucket width).
pub fn parse_group_by(text: &str) -> Result<pb::GroupBy, String> {
    use pb::Dimension as D;
    let (name, param) = match text.split_once(':') {
        Some((name, param)) => (name, Some(param)),
        None => (text, None),
    };
    let dimension = match name.to_ascii_lowercase().as_str() {
        "disease" => D::Disease,
        "phenotype" => D::Phenotype,
        "excluded" => D::ExcludedPhenotype,
        "gene" => D::Gene,
        "treatment" => D::Treatment,
        "response" => D::Response,
        "procedure" => D::Procedure,
        "sex" => D::Sex,
        "onset" => D::Onset,
        "age" => D::Age,
        "center" => D::Center,
        "publication" => D::Publication,
        other => {
            return Err(format!(
                "unknown dimension {other:?}; use disease, phenotype[:DEPTH], excluded, gene, \
                 treatment, response, procedure, sex, onset:WIDTH, age:WIDTH, center, publication"
            ));
        }
    };
    let mut group = pb::GroupBy {
        dimension: dimension.into(),
        ..pb::GroupBy::default()
    };
    match (dimension, param) {
        (D::Phenotype, Some(depth)) => {
            group.rollup_depth = depth
                .parse()
                .map_err(|_| format!("{text:?}: the roll-up depth must be a whole number"))?;
        }
        (D::Onset | D::Age, Some(width)) => group.bucket_days = bucket_days(width, text)?,
        (D::Onset | D::Age, None) => {
            return Err(format!("{text:?}: give a bucket width, e.g. {name}:10y"));
        }
        (_, Some(_)) => return Err(format!("{text:?}: {name} takes no parameter")),
        (_, None) => {}
    }
    Ok(group)
}

fn bucket_days(width: &str, text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?}: a bucket width is a whole number and a unit y, m, w or d");
    let unit = width
        .chars()
        .last()
        .and_then(AgeUnit::from_suffix)
        .ok_or_else(bad)?;
    let amount: u64 = width[..width.len() - 1].parse().map_err(|_| bad())?;
    u32::try_from(days(amount, unit)).map_err(|_| bad())
}

/// A count as text: `12`, `<5` (withheld), `>95` (blurred) or `≥12` (a lower bound).
pub fn count_text(count: Option<&pb::Count>) -> String {
    let Some(count) = count else {
        return String::new();
    };
    match pb::Precision::try_from(count.precision) {
        Ok(pb::Precision::FewerThan) => format!("<{}", count.value),
        Ok(pb::Precision::MoreThan) => format!(">{}", count.value),
        Ok(pb::Precision::AtLeast) => format!("≥{}", count.value),
        _ => count.value.to_string(),
    }
}

/// The fate of every center of a network answer, as a table (and a warning line when the
/// answer is partial).
pub fn write_centers(
    out: &mut dyn Write,
    centers: &[pb::CenterOutcome],
    partial: bool,
) -> std::io::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "center", "via", "status", "cases", "count", "ms", "HPO", "message",
    ]);
    for center in centers {
        let status = pb::CenterStatus::try_from(center.status)
            .map_or("unknown", |s| s.as_str_name())
            .trim_start_matches("CENTER_STATUS_")
            .to_ascii_lowercase()
            .replace('_', " ");
        let hpo = if center.hpo_differs {
            format!("{} (differs)", center.hpo_version)
        } else {
            center.hpo_version.clone()
        };
        table.add_row([
            center.center.clone(),
            center.peer.clone(),
            status,
            count_text(center.cases.as_ref()),
            count_text(center.count.as_ref()),
            center.millis.to_string(),
            hpo,
            center.message.clone(),
        ]);
    }
    writeln!(out, "{table}")?;
    if partial {
        writeln!(
            out,
            "partial: not every center answered; the result covers those that did"
        )?;
    }
    Ok(())
}

fn key_text(key: &pb::GroupKey) -> String {
    if key.label.is_empty() || key.label == key.id {
        key.id.clone()
    } else {
        format!("{} ({})", key.label, key.id)
    }
}

/// A table of cells; one-dimensional results get a bar per cell.
pub fn write_table(
    out: &mut dyn Write,
    response: &pb::AggregateResponse,
    by: &[String],
) -> std::io::Result<()> {
    let one = by.len() == 1;
    let longest = response
        .cells
        .iter()
        .filter_map(|c| c.count.as_ref())
        .map(|c| c.value)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let mut header: Vec<String> = by.to_vec();
    header.push("cases".to_owned());
    if one {
        header.push(String::new());
    }
    table.set_header(header);
    for cell in &response.cells {
        let mut row: Vec<String> = cell.keys.iter().map(key_text).collect();
        row.push(count_text(cell.count.as_ref()));
        if one {
            let value = cell.count.as_ref().map_or(0, |c| c.value);
            let length = (value * BAR_WIDTH).div_ceil(longest);
            row.push("█".repeat(length as usize));
        }
        table.add_row(row);
    }
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "matching cases: {}; in no listed cell: {}; without a value: {}",
        count_text(response.total.as_ref()),
        count_text(response.other.as_ref()),
        count_text(response.none.as_ref()),
    )?;
    if response.min_cell_count > 1 {
        writeln!(
            out,
            "counts from 1 to {} are shown as <{} (small-count protection)",
            response.min_cell_count - 1,
            response.min_cell_count
        )?;
    }
    Ok(())
}

/// A co-occurrence table: value, cases in the subset and in the registry, ratio, p, q.
pub fn write_cooccurrence(
    out: &mut dyn Write,
    dimension: i32,
    response: &pb::CoOccurrenceResponse,
) -> std::io::Result<()> {
    let name = pb::Dimension::try_from(dimension).map_or("values", |d| match d {
        pb::Dimension::Phenotype => "observed phenotypes",
        pb::Dimension::ExcludedPhenotype => "excluded phenotypes (looked for, absent)",
        other => other.as_str_name(),
    });
    writeln!(
        out,
        "{name} among {} matching cases (registry: {}; {} values tested)",
        count_text(response.subset_cases.as_ref()),
        count_text(response.registry_cases.as_ref()),
        response.tested
    )?;
    let percent = |f: f64| format!("{:.1}%", f * 100.0);
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["value", "cases", "registry", "ratio", "p", "q (BH)"]);
    for v in &response.values {
        table.add_row([
            v.key.as_ref().map(key_text).unwrap_or_default(),
            format!(
                "{} ({})",
                count_text(v.cases.as_ref()),
                percent(v.frequency)
            ),
            format!(
                "{} ({})",
                count_text(v.registry_cases.as_ref()),
                percent(v.registry_frequency)
            ),
            format!("{:.2}", v.ratio),
            format!("{:.2e}", v.p_value),
            format!("{:.2e}", v.q_value),
        ]);
    }
    writeln!(out, "{table}")?;
    if response.min_cell_count > 1 {
        writeln!(
            out,
            "values in fewer than {} matching cases are not listed (small-count protection)",
            response.min_cell_count
        )?;
    }
    Ok(())
}

/// CSV: per key, its id and label columns, then the count (as `count_text` writes it).
pub fn write_csv(out: &mut dyn Write, response: &pb::AggregateResponse) -> std::io::Result<()> {
    let width = response.cells.first().map_or(1, |c| c.keys.len());
    let mut header: Vec<String> = (1..=width)
        .flat_map(|i| [format!("id{i}"), format!("label{i}")])
        .collect();
    header.push("count".to_owned());
    writeln!(out, "{}", header.join(","))?;
    for cell in &response.cells {
        let mut fields: Vec<String> = cell
            .keys
            .iter()
            .flat_map(|k| [csv_field(&k.id), csv_field(&k.label)])
            .collect();
        fields.push(count_text(cell.count.as_ref()));
        writeln!(out, "{}", fields.join(","))?;
    }
    Ok(())
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_by_texts() {
        assert_eq!(parse_group_by("phenotype:1").unwrap().rollup_depth, 1);
        assert_eq!(parse_group_by("onset:10y").unwrap().bucket_days, 3652);
        assert_eq!(
            parse_group_by("treatment").unwrap().dimension,
            pb::Dimension::Treatment as i32
        );
        assert!(parse_group_by("onset").is_err());
        assert!(parse_group_by("sex:2").is_err());
        assert!(parse_group_by("colour").is_err());
        assert!(parse_group_by("age:ten").is_err());
    }

    #[test]
    fn withheld_counts_read_as_bounds() {
        let count = |value, precision: pb::Precision| pb::Count {
            value,
            precision: precision.into(),
        };
        assert_eq!(count_text(Some(&count(5, pb::Precision::FewerThan))), "<5");
        assert_eq!(count_text(Some(&count(95, pb::Precision::MoreThan))), ">95");
        assert_eq!(count_text(Some(&count(7, pb::Precision::Exact))), "7");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
