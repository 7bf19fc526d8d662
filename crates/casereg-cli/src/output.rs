//! How the commands print cases, listings, hits, terms and registry info.

use std::io::Write;

use casereg_proto::v1 as pb;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

pub(crate) fn write_warnings(
    out: &mut dyn Write,
    warnings: &[pb::TermWarning],
) -> std::io::Result<()> {
    for warning in warnings {
        writeln!(out, "warning: {}: {}", warning.field, warning.message)?;
    }
    Ok(())
}

pub(crate) fn timestamp_text(timestamp: Option<&pbjson_types::Timestamp>) -> String {
    timestamp
        .and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(crate) fn status_text(status: i32) -> &'static str {
    match pb::CaseStatus::try_from(status) {
        Ok(pb::CaseStatus::Active) => "active",
        Ok(pb::CaseStatus::Retracted) => "retracted",
        Ok(pb::CaseStatus::Unspecified) | Err(_) => "unknown",
    }
}

pub(crate) fn sex_text(sex: i32) -> &'static str {
    match pb::Sex::try_from(sex) {
        Ok(pb::Sex::Female) => "female",
        Ok(pb::Sex::Male) => "male",
        Ok(pb::Sex::OtherSex) => "other",
        Ok(pb::Sex::UnknownSex) | Err(_) => "unknown",
    }
}

pub(crate) fn term_text(term: Option<&pb::OntologyClass>) -> String {
    match term {
        Some(t) if t.label.is_empty() => t.id.clone(),
        Some(t) => format!("{} ({})", t.label, t.id),
        None => "-".to_owned(),
    }
}

pub(crate) fn age_text(time: Option<&pb::TimeElement>) -> Option<String> {
    use pb::time_element::Element;
    match time?.element.as_ref()? {
        Element::Age(age) => Some(age.iso8601duration.clone()),
        Element::AgeRange(range) => Some(format!(
            "{}–{}",
            range
                .start
                .as_ref()
                .map_or("", |a| a.iso8601duration.as_str()),
            range
                .end
                .as_ref()
                .map_or("", |a| a.iso8601duration.as_str())
        )),
        Element::GestationalAge(g) => Some(format!("gestational week {}+{}", g.weeks, g.days)),
        Element::OntologyClass(c) => Some(term_text(Some(c))),
        Element::Timestamp(t) => Some(timestamp_text(Some(t))),
        Element::Interval(i) => Some(format!(
            "{} – {}",
            timestamp_text(i.start.as_ref()),
            timestamp_text(i.end.as_ref())
        )),
    }
}

pub(crate) fn write_case(out: &mut dyn Write, case: &pb::Case) -> std::io::Result<()> {
    let p = case.phenopacket.clone().unwrap_or_default();
    writeln!(
        out,
        "case         {} (version {}, {})",
        case.case_id,
        case.version,
        status_text(case.status)
    )?;
    writeln!(out, "center       {}", case.center_id)?;
    writeln!(out, "phenopacket  {}", p.id)?;
    writeln!(
        out,
        "stored       {} (created {})",
        timestamp_text(case.updated_at.as_ref()),
        timestamp_text(case.created_at.as_ref())
    )?;
    if !case.retraction_reason.is_empty() {
        writeln!(out, "retracted    {}", case.retraction_reason)?;
    }
    if let Some(subject) = &p.subject {
        let age = age_text(subject.time_at_last_encounter.as_ref())
            .unwrap_or_else(|| "age unknown".to_owned());
        writeln!(
            out,
            "subject      {}, {}, {}",
            subject.id,
            sex_text(subject.sex),
            age
        )?;
    }
    for disease in &p.diseases {
        let onset = age_text(disease.onset.as_ref())
            .map(|a| format!(", onset {a}"))
            .unwrap_or_default();
        writeln!(
            out,
            "disease      {}{onset}",
            term_text(disease.term.as_ref())
        )?;
    }
    let (excluded, present): (Vec<_>, Vec<_>) =
        p.phenotypic_features.iter().partition(|f| f.excluded);
    writeln!(out, "present      {} phenotypic features", present.len())?;
    for feature in present {
        writeln!(out, "  + {}", term_text(feature.r#type.as_ref()))?;
    }
    writeln!(out, "excluded     {} (looked for, absent)", excluded.len())?;
    for feature in excluded {
        writeln!(out, "  - {}", term_text(feature.r#type.as_ref()))?;
    }
    for action in &p.medical_actions {
        use pb::medical_action::Action;
        let what = match &action.action {
            Some(Action::Treatment(t)) => format!("treatment {}", term_text(t.agent.as_ref())),
            Some(Action::Procedure(pr)) => format!("procedure {}", term_text(pr.code.as_ref())),
            Some(Action::RadiationTherapy(r)) => {
                format!("radiation {}", term_text(r.modality.as_ref()))
            }
            Some(Action::TherapeuticRegimen(_)) => "therapeutic regimen".to_owned(),
            None => "-".to_owned(),
        };
        let response = action
            .response_to_treatment
            .as_ref()
            .map(|r| format!(" → {}", term_text(Some(r))))
            .unwrap_or_default();
        writeln!(out, "action       {what}{response}")?;
    }
    writeln!(
        out,
        "also         {} measurements, {} biosamples, {} interpretations, {} references",
        p.measurements.len(),
        p.biosamples.len(),
        p.interpretations.len(),
        p.meta_data
            .as_ref()
            .map_or(0, |m| m.external_references.len())
    )?;
    Ok(())
}

pub(crate) fn write_listing(
    out: &mut dyn Write,
    cases: &[pb::CaseSummary],
    next: &str,
) -> std::io::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "case",
        "center",
        "ver",
        "status",
        "phenopacket",
        "sex",
        "diseases",
        "present",
        "excluded",
    ]);
    for case in cases {
        table.add_row([
            case.case_id.clone(),
            case.center_id.clone(),
            case.version.to_string(),
            status_text(case.status).to_owned(),
            case.phenopacket_id.clone(),
            sex_text(case.sex).to_owned(),
            case.diseases.join("; "),
            case.present_features.to_string(),
            case.excluded_features.to_string(),
        ]);
    }
    writeln!(out, "{table}")?;
    writeln!(out, "{} cases shown", cases.len())?;
    if !next.is_empty() {
        writeln!(out, "more: casereg list --page-token {next}")?;
    }
    Ok(())
}

pub(crate) fn write_audit(
    out: &mut dyn Write,
    entries: &[pb::AuditEntry],
    next: u64,
) -> std::io::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "seq",
        "time",
        "principal",
        "center",
        "call",
        "case",
        "ver",
        "outcome",
        "detail",
    ]);
    for entry in entries {
        let outcome = pb::AuditOutcome::try_from(entry.outcome)
            .map_or("unknown", |o| o.as_str_name())
            .trim_start_matches("AUDIT_OUTCOME_")
            .to_ascii_lowercase();
        table.add_row([
            entry.sequence.to_string(),
            timestamp_text(entry.time.as_ref()),
            entry.principal.clone(),
            entry.center_id.clone(),
            entry.call.rsplit('/').next().unwrap_or_default().to_owned(),
            entry.case_id.clone(),
            if entry.version == 0 {
                String::new()
            } else {
                entry.version.to_string()
            },
            outcome,
            entry.detail.clone(),
        ]);
    }
    writeln!(out, "{table}")?;
    writeln!(out, "{} entries shown", entries.len())?;
    if next != 0 {
        writeln!(out, "more: casereg audit --after {next}")?;
    }
    Ok(())
}

pub(crate) fn write_hits(
    out: &mut dyn Write,
    hits: &[pb::SearchHit],
    total: Option<u64>,
    query: &str,
    next: &str,
) -> std::io::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["case", "center", "sex", "diseases", "phenotypes (first 5)"]);
    for hit in hits {
        let summary = hit.summary.clone().unwrap_or_default();
        let phenotypes: Vec<&str> = hit
            .phenotypes
            .iter()
            .map(|t| if t.label.is_empty() { &t.id } else { &t.label })
            .map(String::as_str)
            .collect();
        table.add_row([
            summary.case_id,
            summary.center_id,
            sex_text(summary.sex).to_owned(),
            summary.diseases.join("; "),
            phenotypes.join("; "),
        ]);
    }
    if !hits.is_empty() {
        writeln!(out, "{table}")?;
    }
    if let Some(total) = total {
        writeln!(out, "{} of {total} matching cases shown", hits.len())?;
    }
    if !next.is_empty() {
        writeln!(
            out,
            "more: casereg search {} --page-token {next}",
            shell_quote(query)
        )?;
    }
    Ok(())
}

/// `text` quoted for a POSIX shell.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

pub(crate) fn write_term(
    out: &mut dyn Write,
    response: &pb::GetTermResponse,
) -> std::io::Result<()> {
    let term = response.term.clone().unwrap_or_default();
    writeln!(out, "{}  {}", term.id, term.name)?;
    if !response.requested_id.is_empty() {
        writeln!(
            out,
            "  (asked for {}, an alternative id of this term)",
            response.requested_id
        )?;
    }
    if term.obsolete {
        let replacement = if term.replaced_by.is_empty() {
            "no replacement named".to_owned()
        } else {
            format!("replaced by {}", term.replaced_by)
        };
        writeln!(out, "  obsolete: {replacement}")?;
    }
    for parent in &term.parents {
        writeln!(out, "  is a      {}  {}", parent.id, parent.name)?;
    }
    for synonym in &term.synonyms {
        writeln!(out, "  synonym   {synonym}")?;
    }
    writeln!(out, "  children  {}", term.child_count)?;
    writeln!(out, "  release   HPO {}", response.release)?;
    Ok(())
}

pub(crate) fn write_term_matches(
    out: &mut dyn Write,
    response: &pb::SearchTermsResponse,
) -> std::io::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["id", "name", "matched synonym"]);
    for hit in &response.matches {
        let term = hit.term.clone().unwrap_or_default();
        let synonym = if hit.synonym {
            hit.matched.clone()
        } else {
            String::new()
        };
        table.add_row([term.id, term.name, synonym]);
    }
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "{} of {} matching terms shown",
        response.matches.len(),
        response.total
    )?;
    Ok(())
}

pub(crate) fn write_relatives(
    out: &mut dyn Write,
    response: &pb::GetRelativesResponse,
    up: bool,
) -> std::io::Result<()> {
    let term = response.term.clone().unwrap_or_default();
    let what = if up { "ancestors" } else { "descendants" };
    writeln!(
        out,
        "{} {} of {}  {}",
        response.relatives.len(),
        what,
        term.id,
        term.name
    )?;
    for relative in &response.relatives {
        writeln!(out, "  {}  {}", relative.id, relative.name)?;
    }
    Ok(())
}

pub(crate) fn write_info(out: &mut dyn Write, info: &pb::RegistryInfo) -> std::io::Result<()> {
    writeln!(
        out,
        "{} {} (schema {}, Phenopacket {})",
        info.service_name,
        info.service_version,
        info.schema_version,
        info.phenopacket_schema_version
    )?;
    writeln!(out, "center       {}", info.center_id)?;
    if let Some(caller) = &info.caller {
        let level = pb::AccessLevel::try_from(caller.level)
            .map_or("unknown", |l| l.as_str_name())
            .trim_start_matches("ACCESS_LEVEL_")
            .to_ascii_lowercase();
        writeln!(
            out,
            "you          {} ({} of center {}, {level} access)",
            caller.principal, caller.role, caller.center_id
        )?;
    }
    match (&info.caller, &info.cases) {
        // Record level: both counts, exact.
        (Some(caller), _) if caller.level == pb::AccessLevel::Record as i32 => writeln!(
            out,
            "cases        {} active, {} retracted",
            info.active_cases, info.retracted_cases
        )?,
        (_, Some(cases)) => writeln!(
            out,
            "cases        {} active (small counts withheld below {})",
            crate::tables::count_text(Some(cases)),
            info.min_cell_count
        )?,
        _ => writeln!(out, "cases        (not shown at this access level)")?,
    }
    for ontology in &info.ontologies {
        writeln!(
            out,
            "ontology     {} {} ({} terms, {})",
            ontology.prefix, ontology.version, ontology.term_count, ontology.source
        )?;
        writeln!(out, "             {}", ontology.attribution)?;
    }
    writeln!(out, "strict terms {}", info.strict_terms)?;
    if let Some(limits) = &info.limits {
        if limits.all.is_empty() {
            // A server from before the full list.
            writeln!(
                out,
                "limits       message {} B, record {} B, text {} B, id {} B, page {}",
                limits.max_message_bytes,
                limits.max_record_bytes,
                limits.max_text_bytes,
                limits.max_id_bytes,
                limits.max_page_size
            )?;
        } else {
            writeln!(out, "limits the server enforces:")?;
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_header(["limit", "value", "unit"]);
            for limit in &limits.all {
                table.add_row([
                    limit.name.clone(),
                    limit.value.to_string(),
                    limit.unit.clone(),
                ]);
            }
            writeln!(out, "{table}")?;
        }
    }
    Ok(())
}
