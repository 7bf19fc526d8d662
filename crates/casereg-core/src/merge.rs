//! Merging the answers of several centers to one count, aggregate or co-occurrence request,
//! without looking at any wire type.
//!
//! A center may withhold small counts (a count from 1 to k−1 is "fewer than k") and blur its
//! totals ("more than R": R+1 ..= R+k). What is known of each count is therefore an interval,
//! [`Bounds`], and merging adds intervals. Everything here is sound: the true value of a
//! merged count always lies within its merged bounds, provided that every case is reported
//! by one center only (a case registered at two centers is counted twice).
//!
//! The merges are associative and commutative (results are sorted by key ids and labels are
//! reconciled by a commutative rule), so a coordinator may merge answers in any order or in
//! stages, e.g. a coordinator of coordinators.
//!
//! What a caller then sees is decided by [`Bounds::reported`], which never shows a count
//! from 1 to k−1 more precisely than "not zero".

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Sum;
use std::ops::Add;

use crate::aggregate::{Cut, select_top};
use crate::fast_hash::FastMap;
use crate::stats::{benjamini_hochberg, fisher_greater, frequencies};
use crate::text::Text;

/// How exactly a reported count is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// The value is the count.
    Exact,
    /// The count is between 1 and value − 1 (a small count, withheld).
    FewerThan,
    /// The count is between value + 1 and value + k, k being the threshold of whoever
    /// reported it (a total blurred so that a withheld count cannot be derived from it).
    MoreThan,
    /// The count is value or more (a lower bound; produced by merging).
    AtLeast,
}

/// What is known of a count: it lies in `low ..= high`.
///
/// Invariant: `low <= high`. Arithmetic saturates: a sum whose upper bound would overflow is
/// unbounded above, a lower bound stops at `u64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Smallest possible value.
    pub low: u64,
    /// Largest possible value; `None` when unbounded above.
    pub high: Option<u64>,
}

impl Bounds {
    /// Exactly zero.
    pub const ZERO: Self = Self::exact(0);

    /// Exactly `value`.
    pub const fn exact(value: u64) -> Self {
        Self {
            low: value,
            high: Some(value),
        }
    }

    /// From 0 to `high`: a count that may or may not have been reported.
    pub const fn at_most(high: u64) -> Self {
        Self {
            low: 0,
            high: Some(high),
        }
    }

    /// `low ..= high` (`None`: unbounded above), or `None` when `high < low`.
    pub fn new(low: u64, high: Option<u64>) -> Option<Self> {
        high.is_none_or(|h| low <= h).then_some(Self { low, high })
    }

    /// What a count reported as `value` with `precision` by a center with threshold `k`
    /// (its `min_cell_count`) says:
    /// - `Exact` v: `[v, v]`;
    /// - `FewerThan` v: `[1, v − 1]` (v is the center's k; the value is used, as the wire
    ///   defines it);
    /// - `MoreThan` R: `[R + 1, R + k]`;
    /// - `AtLeast` L: `[L, ∞)`.
    ///
    /// `None` when the report is impossible: "fewer than" 0 or 1, "more than" with `k = 0`,
    /// or a bound past `u64::MAX`.
    pub fn from_reported(value: u64, precision: Precision, k: u64) -> Option<Self> {
        match precision {
            Precision::Exact => Some(Self::exact(value)),
            Precision::FewerThan if value >= 2 => Some(Self {
                low: 1,
                high: Some(value - 1),
            }),
            Precision::FewerThan => None,
            Precision::MoreThan if k >= 1 => Some(Self {
                low: value.checked_add(1)?,
                high: Some(value.checked_add(k)?),
            }),
            Precision::MoreThan => None,
            Precision::AtLeast => Some(Self {
                low: value,
                high: None,
            }),
        }
    }

    /// What is known of a sum one of whose parts is missing: at least this, with no upper
    /// bound (a center that did not answer may hold any number of cases).
    pub const fn or_more(self) -> Self {
        Self {
            low: self.low,
            high: None,
        }
    }

    /// The count, when it is known exactly.
    pub fn exact_value(&self) -> Option<u64> {
        (self.high == Some(self.low)).then_some(self.low)
    }

    /// Whether `value` is possible.
    pub fn contains(&self, value: u64) -> bool {
        self.low <= value && self.high.is_none_or(|h| value <= h)
    }

    /// The count as a caller at threshold `k_out` may see it (0 or 1: exact access).
    ///
    /// Rule: of a count that may lie in `1 ..= k_out − 1`, a caller learns at most whether
    /// it is zero; a center's own protection (disclosure) reveals no more, since "fewer than
    /// k" already says "not zero". Hence:
    /// - known exactly as v: `Exact` v, unless `1 <= v < k_out`: `FewerThan` k_out;
    /// - within `1 ..= k_out − 1` but not known exactly: `FewerThan` k_out;
    /// - possibly 0 and at most k_out − 1: `AtLeast` 0 ("fewer than" would claim it is not
    ///   zero);
    /// - otherwise `AtLeast` low, except that a lower bound L with `1 <= L < k_out` is shown
    ///   as `AtLeast` 1. "At least 3" with k_out = 5 is not an exact small count, but the
    ///   same caller may also learn an upper bound below k_out (from another query, or
    ///   another coordinator), and "at least 4" with "fewer than 5" is exactly 4; "at least
    ///   1" with "fewer than 5" is what "fewer than 5" alone says.
    ///
    /// So an `Exact` value is 0 or at least k_out, an `AtLeast` value is 0, 1 or at least
    /// k_out, and reading the answer back with [`Bounds::from_reported`] (threshold k_out)
    /// gives bounds that contain these.
    pub fn reported(&self, k_out: u64) -> (u64, Precision) {
        let small = |v: u64| (1..k_out).contains(&v);
        if let Some(v) = self.exact_value() {
            return if small(v) {
                (k_out, Precision::FewerThan)
            } else {
                (v, Precision::Exact)
            };
        }
        match self.high {
            Some(high) if self.low >= 1 && high < k_out => (k_out, Precision::FewerThan),
            _ if small(self.low) => (1, Precision::AtLeast),
            _ => (self.low, Precision::AtLeast),
        }
    }

    /// The upper bound, `u64::MAX` standing for unbounded (for capping other bounds).
    fn ceiling(&self) -> u64 {
        self.high.unwrap_or(u64::MAX)
    }
}

/// Interval addition: lows add, highs add (unbounded if either is).
impl Add for Bounds {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            low: self.low.saturating_add(other.low),
            high: self
                .high
                .zip(other.high)
                .and_then(|(a, b)| a.checked_add(b)),
        }
    }
}

/// The interval sum of all; [`Bounds::ZERO`] for none.
impl Sum for Bounds {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, Add::add)
    }
}

/// A merged count: the sum of what each center said (counts from different centers are of
/// different cases).
pub fn merge_counts(parts: &[Bounds]) -> Bounds {
    parts.iter().copied().sum()
}

/// A value a cell or co-occurrence is keyed by, along one dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// What identifies the value (a CURIE, a sex name, an age range): merging matches by it.
    pub id: Text,
    /// How it reads; centers may label an id differently (see [`merge_aggregates`]).
    pub label: Text,
}

/// One cell of an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartCell {
    /// One key per dimension (one or two); the cell is identified by their ids.
    pub keys: Vec<Key>,
    /// Matching cases in the cell.
    pub count: Bounds,
}

/// What one center (or an earlier merge) answered to an aggregate request.
///
/// A case counts in every cell it belongs to (a case with two diseases is in both disease
/// cells), so cells may sum to more than the total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The listed cells. Each cell is listed once.
    pub cells: Vec<PartCell>,
    /// Cases matching the filter.
    pub total: Bounds,
    /// Matching cases with a value of the first dimension that are in no listed cell.
    pub other: Bounds,
    /// Matching cases without any value of the first dimension.
    pub none: Bounds,
    /// Every cell not listed has fewer cases than this; 0 (or 1) when every non-empty cell
    /// is listed. A center cut by `min_count` m alone has `m`; one cut by `top_n` has the
    /// upper bound of its smallest listed cell + 1 (or less, with `min_count`).
    ///
    /// Not `other`: a case may be in a listed and in an unlisted cell at once, so `other`
    /// can be 0 while an unlisted cell is large (every case with diseases X and Y, only X
    /// listed), and with two dimensions `other` counts cases that have no value of the
    /// second one even when every cell is listed.
    pub listed_from: u64,
}

/// The most an unlisted cell (or value) of a part may hold: below `listed_from`, and not more
/// than the part's `cap` (its total, or its subset).
fn unlisted_max(listed_from: u64, cap: Bounds) -> u64 {
    listed_from.saturating_sub(1).min(cap.ceiling())
}

/// `listed_from` for unlisted cells of at most `max` cases.
fn listed_from(max: u64) -> u64 {
    if max == 0 { 0 } else { max.saturating_add(1) }
}

/// Records `key`'s label under its id: the smallest non-empty label seen wins, which does
/// not depend on the order parts are merged in.
fn reconcile(labels: &mut BTreeMap<Text, Text>, key: &Key) {
    let label = labels.entry(key.id.clone()).or_default();
    if prefer(&key.label, label) {
        label.clone_from(&key.label);
    }
}

/// Whether `label` replaces `current` under the reconciling rule: the smallest non-empty
/// label wins.
fn prefer(label: &Text, current: &Text) -> bool {
    !label.is_empty() && (current.is_empty() || label < current)
}

fn keyed(id: &str, labels: &BTreeMap<Text, Text>) -> Key {
    Key {
        id: Text::from(id),
        label: labels.get(id).cloned().unwrap_or_default(),
    }
}

/// A cell's key ids, in order, borrowed.
fn cell_ids(cell: &PartCell) -> impl Iterator<Item = &Text> {
    cell.keys.iter().map(|k| &k.id)
}

/// A cell's keys compared and hashed by their ids alone (labels may differ between parts).
struct CellIds<'a>(&'a [Key]);

impl PartialEq for CellIds<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(other.0).all(|(a, b)| a.id == b.id)
    }
}

impl Eq for CellIds<'_> {}

impl std::hash::Hash for CellIds<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.len());
        for key in self.0 {
            key.id.hash(state);
        }
    }
}

/// Cells ordered by their key ids.
fn by_ids(a: &PartCell, b: &PartCell) -> Ordering {
    cell_ids(a).cmp(cell_ids(b))
}

/// Merges the aggregates of several centers: associative and commutative, cells sorted by
/// their key ids.
///
/// - A cell is the sum of its count in each part. A part that does not list it contributes
///   `[0, 0]` if it lists every non-empty cell, else `[0, min(listed_from − 1, total.high)]`
///   (the cell may have been cut there).
/// - `total` and `none` add.
/// - `other`: the highs add (a case in no merged cell is in no cell of its own part). The
///   lows add only when every part lists every cell; otherwise the low is 0, because a
///   case in a part's `other` may be in a cell that part did not list but another did, and
///   is then in a listed cell of the merge. (Keeping the low of just the complete parts
///   would not be associative: a merge of a complete and an incomplete part is
///   incomplete.)
/// - Labels are reconciled by id: the smallest non-empty label of any part.
/// - `listed_from` follows from the sum of what each part may have left out.
///
/// A part that lists the same cell twice has both counts added.
///
/// Parts are taken by value (a slice is cloned): the merged cells reuse their ids and
/// labels.
pub fn merge_aggregates(parts: impl Into<Vec<Part>>) -> Part {
    let mut parts: Vec<Part> = parts.into();
    match merged_alone(&mut parts) {
        Some(merged) => merged,
        None => merge_many(parts, None).0,
    }
}

/// `cut(merge_aggregates(parts), top, min_count)`, without building the cells the cut
/// drops (a coordinator merges hundreds of cells per center to keep twenty).
pub fn merge_and_cut(parts: impl Into<Vec<Part>>, top: usize, min_count: u64) -> Part {
    let mut parts: Vec<Part> = parts.into();
    // A center with no peers answering its part of a network call has nothing to merge.
    if let Some(merged) = merged_alone(&mut parts) {
        return cut(merged, top, min_count);
    }
    let (merged, dropped) = merge_many(parts, Some(Cut { top, min_count }));
    finish_cut(merged, &dropped)
}

/// Puts the items `cut` keeps first, in its order (largest `low` first, ties by key ids),
/// and returns how many they are: those with at least `min_count` cases, at most `top`.
fn pick<T>(
    cut: Cut,
    items: &mut [T],
    low: impl Fn(&T) -> u64,
    by_ids: impl Fn(&T, &T) -> Ordering,
) -> usize {
    let eligible = items.iter().filter(|i| low(i) >= cut.min_count).count();
    let kept = eligible.min(cut.top);
    select_top(items, kept, |a, b| {
        low(b).cmp(&low(a)).then_with(|| by_ids(a, b))
    });
    kept
}

/// The merge of `parts` when they are a single part [`merge_one`] takes; otherwise `parts`
/// is left as it was.
fn merged_alone(parts: &mut Vec<Part>) -> Option<Part> {
    if parts.len() != 1 {
        return None;
    }
    match merge_one(parts.pop()?) {
        Ok(merged) => Some(merged),
        Err(part) => {
            parts.push(part);
            None
        }
    }
}

/// The merge of a single part whose cells each have one key, no two the same (what a center
/// with no peers merges): the part itself, cells in key order, nothing to add up and no
/// label to reconcile, so none of [`merge_many`]'s bookkeeping. Any other part is given
/// back.
fn merge_one(mut part: Part) -> std::result::Result<Part, Part> {
    if part.cells.iter().any(|cell| cell.keys.len() != 1) {
        return Err(part);
    }
    part.cells.sort_unstable_by(by_ids);
    if part
        .cells
        .windows(2)
        .any(|pair| pair[0].keys[0].id == pair[1].keys[0].id)
    {
        return Err(part);
    }
    // As in `merge_many`: what the part may have left out is its own unlisted cells.
    let hidden = unlisted_max(part.listed_from, part.total);
    if hidden > 0 {
        part.other.low = 0;
    }
    part.listed_from = listed_from(hidden);
    Ok(part)
}

/// [`merge_aggregates`] of any number of parts; with a cut, only the cells it keeps (in its
/// order) and the counts of those it drops.
fn merge_many(mut parts: Vec<Part>, cut: Option<Cut>) -> (Part, Vec<Bounds>) {
    // Every distinct cell (by key ids) gets a slot, the cell where it was first seen; each
    // id gets the preferred label of any part.
    let cells: usize = parts.iter().map(|p| p.cells.len()).sum();
    let mut slots: FastMap<CellIds<'_>, usize> = FastMap::default();
    slots.reserve(cells);
    let mut first_seen: Vec<(usize, usize)> = Vec::with_capacity(cells);
    let mut labels: FastMap<&Text, &Text> = FastMap::default();
    labels.reserve(cells);
    let part_slots: Vec<Vec<usize>> = parts
        .iter()
        .enumerate()
        .map(|(p, part)| {
            part.cells
                .iter()
                .enumerate()
                .map(|(c, cell)| {
                    for key in &cell.keys {
                        let label = labels.entry(&key.id).or_insert(&key.label);
                        if prefer(&key.label, label) {
                            *label = &key.label;
                        }
                    }
                    let next = first_seen.len();
                    let slot = *slots.entry(CellIds(&cell.keys)).or_insert(next);
                    if slot == next {
                        first_seen.push((p, c));
                    }
                    slot
                })
                .collect()
        })
        .collect();
    drop(slots);
    let cell_at = |(p, c): (usize, usize)| &parts[p].cells[c];
    let mut counts = vec![Bounds::ZERO; first_seen.len()];
    let mut hidden = 0u64;
    let mut listed = vec![false; first_seen.len()];
    for (part, slots) in parts.iter().zip(&part_slots) {
        let unlisted = unlisted_max(part.listed_from, part.total);
        hidden = hidden.saturating_add(unlisted);
        listed.fill(false);
        for (cell, &slot) in part.cells.iter().zip(slots) {
            counts[slot] = counts[slot] + cell.count;
            listed[slot] = true;
        }
        if unlisted > 0 {
            for (count, _) in counts.iter_mut().zip(&listed).filter(|(_, l)| !**l) {
                *count = *count + Bounds::at_most(unlisted);
            }
        }
    }
    let mut order: Vec<usize> = (0..first_seen.len()).collect();
    let slot_ids = |&a: &usize, &b: &usize| by_ids(cell_at(first_seen[a]), cell_at(first_seen[b]));
    let dropped: Vec<Bounds> = match cut {
        None => {
            order.sort_unstable_by(slot_ids);
            Vec::new()
        }
        Some(cut) => {
            let kept = pick(cut, &mut order, |&slot| counts[slot].low, slot_ids);
            order.drain(kept..).map(|slot| counts[slot]).collect()
        }
    };
    // The kept cells' labels (shared, not copied), taken before their keys are moved.
    let chosen: Vec<Vec<Text>> = order
        .iter()
        .map(|&slot| {
            cell_at(first_seen[slot])
                .keys
                .iter()
                .map(|key| labels[&key.id].clone())
                .collect()
        })
        .collect();
    drop(labels);
    let sum = |of: fn(&Part) -> Bounds| parts.iter().map(of).sum::<Bounds>();
    let mut other = sum(|p| p.other);
    if hidden > 0 {
        other.low = 0;
    }
    let (total, none) = (sum(|p| p.total), sum(|p| p.none));
    let cells = order
        .into_iter()
        .zip(chosen)
        .map(|(slot, labels)| {
            let (p, c) = first_seen[slot];
            let keys = std::mem::take(&mut parts[p].cells[c].keys);
            let keys = keys
                .into_iter()
                .zip(labels)
                .map(|(key, label)| Key { id: key.id, label })
                .collect();
            PartCell {
                keys,
                count: counts[slot],
            }
        })
        .collect();
    let merged = Part {
        cells,
        total,
        other,
        none,
        listed_from: listed_from(hidden),
    };
    (merged, dropped)
}

/// The most an unlisted cell may hold after `dropped` join those a part already left out
/// (`None`: no bound), capped by `cap`.
fn unlisted_after(listed_from: u64, cap: Bounds, dropped: &[Bounds]) -> u64 {
    let dropped = dropped.iter().map(Bounds::ceiling).max().unwrap_or(0);
    unlisted_max(listed_from, cap)
        .max(dropped)
        .min(cap.ceiling())
}

/// Cuts a merged aggregate to what is returned: cells by `low`, largest first (ties by key
/// ids), those with `low >= min_count`, at most `top` of them; the result lists them in
/// that order.
///
/// The cells dropped go into `other` and `listed_from`:
/// - `other.high` grows by the sum of their highs (unbounded if one is), capped by
///   `total.high`: their cases are now in no listed cell, unless also in a kept one;
/// - `other.low` stays as it was. The cases of a dropped cell may all be in a kept cell
///   too (a case can be in several cells: every case with diseases X and Y, X kept and Y
///   dropped, adds nothing to `other`), so a dropped cell's low says nothing of `other`.
///   Cases already in no listed cell still are.
/// - `listed_from` is past the largest high dropped (capped by `total.high`).
pub fn cut(mut merged: Part, top: usize, min_count: u64) -> Part {
    let kept = pick(
        Cut { top, min_count },
        &mut merged.cells,
        |c| c.count.low,
        by_ids,
    );
    let dropped: Vec<Bounds> = merged.cells.drain(kept..).map(|c| c.count).collect();
    finish_cut(merged, &dropped)
}

/// A part whose cells are the kept ones, in order, given the counts of the cells dropped:
/// `other` and `listed_from` as [`cut`] says.
fn finish_cut(kept: Part, dropped: &[Bounds]) -> Part {
    let Part {
        cells,
        total,
        other,
        none,
        listed_from: merged_from,
    } = kept;
    let grown = (other + dropped.iter().copied().sum::<Bounds>()).high;
    let high = match (grown, total.high) {
        (Some(h), Some(t)) => Some(h.min(t)),
        (h, t) => h.or(t),
    };
    let high = high.map(|h| h.max(other.low));
    Part {
        cells,
        total,
        other: Bounds {
            low: other.low,
            high,
        },
        none,
        listed_from: listed_from(unlisted_after(merged_from, total, dropped)),
    }
}

/// One value of a co-occurrence answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoPartValue {
    /// The value.
    pub key: Key,
    /// Cases of the subset with it.
    pub subset: Bounds,
    /// Active cases of the registry with it.
    pub registry: Bounds,
}

/// What one center (or an earlier merge) answered to a co-occurrence request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoPart {
    /// The listed values. Each value is listed once.
    pub values: Vec<CoPartValue>,
    /// Cases matching the filter.
    pub subset: Bounds,
    /// Active cases in the registry.
    pub registry: Bounds,
    /// Values in fewer cases of the subset were not listed (a center's threshold, or the
    /// request's `min_count` if larger); 0 (or 1) when every value present in the subset is
    /// listed.
    pub listed_from: u64,
}

/// Merges the co-occurrence answers of several centers: associative and commutative,
/// values sorted by key id, labels reconciled as in [`merge_aggregates`].
///
/// A value a part does not list contributes to the subset count `[0, min(listed_from − 1,
/// subset.high)]` (`[0, 0]` when that part lists every value: then no case of its subset
/// has it), and to the registry count `[0, registry.high]` of that part: a value absent
/// from a subset may still be common in the rest of the registry, which the part does not
/// report. Subset and registry sizes add.
pub fn merge_cooccurrence(parts: &[CoPart]) -> CoPart {
    let mut labels = BTreeMap::new();
    for value in parts.iter().flat_map(|p| &p.values) {
        reconcile(&mut labels, &value.key);
    }
    let mut counts: BTreeMap<&str, (Bounds, Bounds)> = labels
        .keys()
        .map(|id| (id.as_str(), (Bounds::ZERO, Bounds::ZERO)))
        .collect();
    let mut hidden = 0u64;
    for part in parts {
        let unlisted = unlisted_max(part.listed_from, part.subset);
        hidden = hidden.saturating_add(unlisted);
        let mut own: BTreeMap<&str, (Bounds, Bounds)> = BTreeMap::new();
        for value in &part.values {
            let (subset, registry) = own
                .entry(value.key.id.as_str())
                .or_insert((Bounds::ZERO, Bounds::ZERO));
            *subset = *subset + value.subset;
            *registry = *registry + value.registry;
        }
        let absent = (
            Bounds::at_most(unlisted),
            Bounds {
                low: 0,
                high: part.registry.high,
            },
        );
        for (id, (subset, registry)) in &mut counts {
            let (s, r) = own.get(id).copied().unwrap_or(absent);
            *subset = *subset + s;
            *registry = *registry + r;
        }
    }
    CoPart {
        values: counts
            .into_iter()
            .map(|(id, (subset, registry))| CoPartValue {
                key: keyed(id, &labels),
                subset,
                registry,
            })
            .collect(),
        subset: parts.iter().map(|p| p.subset).sum(),
        registry: parts.iter().map(|p| p.registry).sum(),
        listed_from: listed_from(hidden),
    }
}

/// One merged value with its frequencies and test of enrichment.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrichedValue {
    /// The value.
    pub key: Key,
    /// Cases of the subset with it.
    pub subset: Bounds,
    /// Active cases of the registry with it.
    pub registry: Bounds,
    /// `subset.low` / the merged subset's low, at most 1 (exact when both are exact).
    pub frequency: f64,
    /// `registry.low` / the merged registry's low, at most 1 (exact when both are exact).
    pub registry_frequency: f64,
    /// `frequency / registry_frequency`; 0 when the latter is 0.
    pub ratio: f64,
    /// One-sided Fisher exact test of enrichment in the subset, when all four counts of its
    /// 2×2 table are exact; `None` otherwise: a p-value is not computable from withheld
    /// counts, and bounds on the counts give no useful bound on it.
    pub p_value: Option<f64>,
    /// Benjamini–Hochberg adjusted p-value over every merged value, when `p_value` is known
    /// and every value present in the merged subset is listed (the merge's `listed_from` is
    /// 0, so the number of tests is known). Values whose p-value is unknown count as p = 1:
    /// the adjustment never decreases when a p-value grows, so this is the true q-value when
    /// every p-value is known and an upper bound (conservative) otherwise. `None` otherwise.
    pub q_value: Option<f64>,
}

/// A merged co-occurrence, tested and cut.
#[derive(Debug, Clone, PartialEq)]
pub struct Enriched {
    /// Largest `subset.low` first, then smallest p-value (unknown last), then key id.
    pub values: Vec<EnrichedValue>,
    /// Cases matching the filter.
    pub subset: Bounds,
    /// Active cases in the registry.
    pub registry: Bounds,
    /// Number of merged values, the `m` of the adjustment (every value present in the subset
    /// when `listed_from` of the merge is 0; a lower bound otherwise).
    pub tested: usize,
    /// Values not listed here have fewer cases of the subset than this (0: every value is
    /// listed), counting those the cut dropped.
    pub listed_from: u64,
}

/// Fisher's test of a value seen in `hits` of `subset` cases and in `with_value` of the
/// `population`, when all four are exact and consistent.
fn p_value(hits: Bounds, subset: Bounds, with_value: Bounds, population: Bounds) -> Option<f64> {
    let (hits, subset) = (hits.exact_value()?, subset.exact_value()?);
    let (with_value, population) = (with_value.exact_value()?, population.exact_value()?);
    let consistent = hits <= subset && subset <= population && hits <= with_value;
    (consistent && with_value <= population)
        .then(|| fisher_greater(hits, subset, with_value, population))
}

/// Unknown p-values sort last.
fn by_p_value(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Frequencies, p-values and q-values of a merged co-occurrence (see [`EnrichedValue`] for
/// when each is known), then the cut: values with `subset.low >= min_count`, at most `top`,
/// in a deterministic order. The adjustment is over every merged value, before the cut.
pub fn enrich(merged: &CoPart, top: usize, min_count: u64) -> Enriched {
    let mut values: Vec<EnrichedValue> = merged
        .values
        .iter()
        .map(|v| {
            let shares = frequencies(
                v.subset.low,
                merged.subset.low,
                v.registry.low,
                merged.registry.low,
            );
            EnrichedValue {
                key: v.key.clone(),
                subset: v.subset,
                registry: v.registry,
                frequency: shares.frequency,
                registry_frequency: shares.registry_frequency,
                ratio: shares.ratio,
                p_value: p_value(v.subset, merged.subset, v.registry, merged.registry),
                q_value: None,
            }
        })
        .collect();
    if merged.listed_from <= 1 {
        let p: Vec<f64> = values.iter().map(|v| v.p_value.unwrap_or(1.0)).collect();
        for (value, q) in values.iter_mut().zip(benjamini_hochberg(&p)) {
            value.q_value = value.p_value.map(|_| q);
        }
    }
    let tested = values.len();
    values.sort_by(|a, b| {
        b.subset
            .low
            .cmp(&a.subset.low)
            .then_with(|| by_p_value(a.p_value, b.p_value))
            .then_with(|| a.key.id.cmp(&b.key.id))
    });
    let eligible = values.iter().filter(|v| v.subset.low >= min_count).count();
    let dropped: Vec<Bounds> = values
        .split_off(eligible.min(top))
        .iter()
        .map(|v| v.subset)
        .collect();
    Enriched {
        values,
        subset: merged.subset,
        registry: merged.registry,
        tested,
        listed_from: listed_from(unlisted_after(merged.listed_from, merged.subset, &dropped)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(low: u64, high: u64) -> Bounds {
        Bounds {
            low,
            high: Some(high),
        }
    }

    fn unbounded(low: u64) -> Bounds {
        Bounds { low, high: None }
    }

    fn key(id: &str, label: &str) -> Key {
        Key {
            id: id.into(),
            label: label.into(),
        }
    }

    fn cell(ids: &[&str], count: Bounds) -> PartCell {
        PartCell {
            keys: ids.iter().map(|id| key(id, "")).collect(),
            count,
        }
    }

    /// A complete part: every non-empty cell listed, exact totals.
    fn part(cells: &[(&str, Bounds)], total: u64) -> Part {
        Part {
            cells: cells.iter().map(|(id, c)| cell(&[id], *c)).collect(),
            total: Bounds::exact(total),
            other: Bounds::ZERO,
            none: Bounds::ZERO,
            listed_from: 0,
        }
    }

    fn count_of(part: &Part, id: &str) -> Option<Bounds> {
        part.cells
            .iter()
            .find(|c| c.keys.iter().map(|k| k.id.as_str()).eq([id]))
            .map(|c| c.count)
    }

    #[test]
    fn reported_counts_read_back_as_bounds() {
        use Precision::*;
        assert_eq!(Bounds::from_reported(7, Exact, 5), Some(range(7, 7)));
        assert_eq!(Bounds::from_reported(5, FewerThan, 5), Some(range(1, 4)));
        assert_eq!(Bounds::from_reported(95, MoreThan, 5), Some(range(96, 100)));
        assert_eq!(Bounds::from_reported(3, AtLeast, 5), Some(unbounded(3)));
        // Impossible reports.
        assert_eq!(Bounds::from_reported(1, FewerThan, 5), None);
        assert_eq!(Bounds::from_reported(0, FewerThan, 0), None);
        assert_eq!(Bounds::from_reported(95, MoreThan, 0), None);
        assert_eq!(Bounds::from_reported(u64::MAX, MoreThan, 5), None);
        assert_eq!(Bounds::new(3, Some(2)), None);
        assert_eq!(Bounds::new(3, None), Some(unbounded(3)));
    }

    #[test]
    fn bounds_add_as_intervals() {
        assert_eq!(range(1, 4) + range(96, 100), range(97, 104));
        assert_eq!(range(1, 4) + unbounded(2), unbounded(3));
        assert_eq!(range(0, u64::MAX) + range(1, 1), unbounded(1));
        assert_eq!(
            merge_counts(&[range(1, 4), Bounds::exact(10), range(0, 2)]),
            range(11, 16)
        );
        assert_eq!(merge_counts(&[]), Bounds::ZERO);
    }

    #[test]
    fn reported_follows_the_rule() {
        use Precision::*;
        // Exact unless small.
        assert_eq!(Bounds::exact(0).reported(5), (0, Exact));
        assert_eq!(Bounds::exact(3).reported(5), (5, FewerThan));
        assert_eq!(Bounds::exact(5).reported(5), (5, Exact));
        // Within 1..k−1: fewer than k.
        assert_eq!(range(1, 4).reported(5), (5, FewerThan));
        assert_eq!(range(2, 3).reported(5), (5, FewerThan));
        // Possibly zero: nothing to say but "at least 0".
        assert_eq!(range(0, 3).reported(5), (0, AtLeast));
        assert_eq!(range(0, 30).reported(5), (0, AtLeast));
        // A small lower bound says only "not zero"; a large one is shown.
        assert_eq!(range(3, 7).reported(5), (1, AtLeast));
        assert_eq!(unbounded(4).reported(5), (1, AtLeast));
        assert_eq!(range(6, 9).reported(5), (6, AtLeast));
        assert_eq!(range(5, 9).reported(5), (5, AtLeast));
        // Exact access (0 or 1).
        for k in [0, 1] {
            assert_eq!(Bounds::exact(3).reported(k), (3, Exact));
            assert_eq!(range(3, 7).reported(k), (3, AtLeast));
            assert_eq!(range(0, 2).reported(k), (0, AtLeast));
        }
    }

    #[test]
    fn reported_is_sound_and_never_shows_a_small_count() {
        for k in 0..8u64 {
            for low in 0..12u64 {
                let highs = (low..14).map(Some).chain([None]);
                for high in highs {
                    let bounds = Bounds { low, high };
                    let (value, precision) = bounds.reported(k);
                    let read = Bounds::from_reported(value, precision, k);
                    let read = read.unwrap_or(Bounds::ZERO);
                    assert!(read.low <= low, "{bounds:?} at {k}: {read:?}");
                    assert!(
                        read.high.is_none() || high.is_some_and(|h| read.ceiling() >= h),
                        "{bounds:?} at {k}: {read:?}"
                    );
                    let small = (1..k).contains(&value);
                    match precision {
                        Precision::Exact => assert!(!small, "{bounds:?} at {k}"),
                        Precision::AtLeast => assert!(value <= 1 || !small, "{bounds:?} at {k}"),
                        Precision::FewerThan => assert_eq!(value, k),
                        Precision::MoreThan => panic!("never produced"),
                    }
                }
            }
        }
    }

    #[test]
    fn a_cell_of_three_at_k_five_is_never_visible_as_three_after_merge() {
        let k = 5;
        let withheld = Bounds::from_reported(k, Precision::FewerThan, k).unwrap_or(Bounds::ZERO);
        // Center A has 3 cases in the cell and withholds them; B and C list every cell.
        let a = part(&[("X", withheld), ("Y", Bounds::exact(40))], 43);
        let b_without = part(&[("Y", Bounds::exact(10))], 10);
        // C reports to the coordinator exactly (record-level access there): 3 more.
        let c_exact = part(&[("X", Bounds::exact(3)), ("Y", Bounds::exact(7))], 10);
        let b_hiding = Part {
            listed_from: 5,
            ..b_without.clone()
        };
        for parts in [
            vec![a.clone()],
            vec![a.clone(), b_without.clone()],
            vec![b_without.clone(), a.clone()],
            vec![c_exact.clone()],
            vec![c_exact.clone(), b_without.clone()],
            vec![a.clone(), c_exact.clone()],
            vec![a.clone(), b_hiding.clone()],
            vec![c_exact.clone(), b_hiding],
        ] {
            let merged = merge_aggregates(parts.as_slice());
            let x = count_of(&merged, "X").unwrap_or(Bounds::ZERO);
            let (value, precision) = x.reported(k);
            assert_ne!(value, 3, "{parts:?}: {x:?}");
            assert_ne!(precision, Precision::Exact, "{parts:?}: {x:?}");
            let y = count_of(&merged, "Y").unwrap_or(Bounds::ZERO);
            assert!(y.reported(k).0 >= k, "{y:?}");
        }
        // With A and C: 4 to 7, shown as "at least 1" — not "at least 4", which with "fewer
        // than 5" from elsewhere would give 4 away.
        let merged = merge_aggregates(&[a, c_exact]);
        assert_eq!(count_of(&merged, "X"), Some(range(4, 7)));
        assert_eq!(range(4, 7).reported(k), (1, Precision::AtLeast));
    }

    #[test]
    fn exact_parts_merge_to_simple_sums() {
        let a = Part {
            other: Bounds::exact(2),
            none: Bounds::exact(5),
            ..part(&[("X", Bounds::exact(10)), ("Y", Bounds::exact(3))], 20)
        };
        let b = Part {
            other: Bounds::exact(1),
            none: Bounds::exact(0),
            ..part(&[("Y", Bounds::exact(4)), ("Z", Bounds::exact(1))], 6)
        };
        let merged = merge_aggregates(&[a, b]);
        assert_eq!(
            merged.cells,
            vec![
                cell(&["X"], Bounds::exact(10)),
                cell(&["Y"], Bounds::exact(7)),
                cell(&["Z"], Bounds::exact(1)),
            ]
        );
        assert_eq!(merged.total, Bounds::exact(26));
        assert_eq!(merged.other, Bounds::exact(3));
        assert_eq!(merged.none, Bounds::exact(5));
        assert_eq!(merged.listed_from, 0);
        for cell in &merged.cells {
            assert_eq!(cell.count.reported(0).1, Precision::Exact);
        }
    }

    #[test]
    fn a_cell_a_part_may_have_cut_is_bounded_by_its_threshold_and_total() {
        let complete = part(&[("X", Bounds::exact(10))], 10);
        let cut_at_5 = Part {
            listed_from: 5,
            other: range(0, 6),
            ..part(&[("Y", Bounds::exact(8))], 9)
        };
        let tiny = Part {
            listed_from: 50,
            ..part(&[("Y", Bounds::exact(2))], 2)
        };
        let merged = merge_aggregates(&[complete.clone(), cut_at_5.clone()]);
        // X: 10 from the complete part, 0 to 4 from the cut one; Y: 0 from the complete one.
        assert_eq!(count_of(&merged, "X"), Some(range(10, 14)));
        assert_eq!(count_of(&merged, "Y"), Some(range(8, 8)));
        assert_eq!(merged.listed_from, 5);
        // A part's unlisted cell is never above its total.
        let merged = merge_aggregates(&[complete, tiny]);
        assert_eq!(count_of(&merged, "X"), Some(range(10, 12)));
        assert_eq!(merged.listed_from, 3);
    }

    #[test]
    fn other_keeps_its_low_only_when_every_part_lists_everything() {
        // A's 3 "other" cases may all be in Y, which A did not list but B does.
        let a = Part {
            listed_from: 4,
            other: Bounds::exact(3),
            ..part(&[("X", Bounds::exact(10))], 13)
        };
        let b = Part {
            other: Bounds::exact(2),
            ..part(&[("Y", Bounds::exact(5))], 7)
        };
        let merged = merge_aggregates(&[a, b.clone()]);
        assert_eq!(merged.other, range(0, 5));
        assert_eq!(count_of(&merged, "Y"), Some(range(5, 8)));
        let complete = merge_aggregates(&[b.clone(), b]);
        assert_eq!(complete.other, Bounds::exact(4));
    }

    #[test]
    fn labels_are_reconciled_by_id_whatever_the_order() {
        let labelled = |label: &str| Part {
            cells: vec![PartCell {
                keys: vec![key("OMIM:154700", label)],
                count: Bounds::exact(5),
            }],
            ..part(&[], 5)
        };
        let parts = [labelled(""), labelled("Marfan syndrome"), labelled("MFS")];
        let forward = merge_aggregates(&parts);
        let backward = merge_aggregates(&[parts[2].clone(), parts[1].clone(), parts[0].clone()]);
        assert_eq!(forward, backward);
        assert_eq!(forward.cells[0].keys[0].label, "MFS");
        assert_eq!(forward.cells[0].count, Bounds::exact(15));
    }

    #[test]
    fn cells_with_two_keys_are_matched_by_both_ids() {
        let a = Part {
            cells: vec![
                cell(&["F", "X"], Bounds::exact(3)),
                cell(&["M", "X"], Bounds::exact(2)),
            ],
            ..part(&[], 5)
        };
        let b = Part {
            cells: vec![cell(&["F", "X"], Bounds::exact(1))],
            ..part(&[], 1)
        };
        let merged = merge_aggregates(&[b, a]);
        assert_eq!(
            merged.cells,
            vec![
                cell(&["F", "X"], Bounds::exact(4)),
                cell(&["M", "X"], Bounds::exact(2)),
            ]
        );
    }

    #[test]
    fn cut_keeps_the_largest_and_bounds_what_it_drops() {
        let merged = Part {
            other: range(1, 2),
            ..part(
                &[
                    ("A", range(3, 4)),
                    ("B", range(10, 12)),
                    ("C", range(10, 10)),
                    ("D", range(1, 4)),
                ],
                30,
            )
        };
        let two = cut(merged.clone(), 2, 0);
        assert_eq!(
            two.cells,
            vec![cell(&["B"], range(10, 12)), cell(&["C"], range(10, 10))]
        );
        // The dropped A and D may or may not be in B or C: other.low stays 1, the high
        // grows by 4 + 4.
        assert_eq!(two.other, range(1, 10));
        assert_eq!(two.listed_from, 5);
        // By min_count: A (low 3) is kept at 3, not D (low 1, though it may hold 4).
        let at_three = cut(merged.clone(), 10, 3);
        assert_eq!(at_three.cells.len(), 3);
        assert_eq!(at_three.other, range(1, 6));
        assert_eq!(at_three.listed_from, 5);
        // Other is never above the total; unbounded cells make listed_from the total.
        let wide = Part {
            cells: vec![cell(&["A"], unbounded(5)), cell(&["B"], range(20, 25))],
            ..part(&[], 28)
        };
        let one = cut(wide.clone(), 1, 0);
        assert_eq!(one.cells, vec![cell(&["B"], range(20, 25))]);
        assert_eq!(one.other, range(0, 28));
        assert_eq!(one.listed_from, 29);
        // Nothing dropped: unchanged.
        assert_eq!(cut(merged.clone(), 4, 0).other, merged.other);
        assert_eq!(cut(merged.clone(), 4, 0).listed_from, 0);
    }

    #[test]
    fn a_dropped_cell_may_be_entirely_inside_a_kept_one() {
        // Every one of 10 cases has both X and Y: cells X 10, Y 10, other 0. Cutting to one
        // cell leaves other truly 0, which the bounds must allow.
        let merged = part(&[("X", Bounds::exact(10)), ("Y", Bounds::exact(10))], 10);
        let one = cut(merged.clone(), 1, 0);
        assert!(one.other.contains(0));
        assert_eq!(one.other, range(0, 10));
    }

    fn co_value(id: &str, subset: Bounds, registry: Bounds) -> CoPartValue {
        CoPartValue {
            key: key(id, ""),
            subset,
            registry,
        }
    }

    #[test]
    fn co_occurrence_values_merge_by_id_and_absent_values_are_bounded() {
        let a = CoPart {
            values: vec![
                co_value("HP:1", Bounds::exact(6), Bounds::exact(20)),
                co_value("HP:2", Bounds::exact(5), Bounds::exact(9)),
            ],
            subset: Bounds::exact(10),
            registry: Bounds::exact(100),
            listed_from: 5,
        };
        let b = CoPart {
            values: vec![co_value("HP:1", Bounds::exact(2), Bounds::exact(4))],
            subset: Bounds::exact(3),
            registry: Bounds::exact(50),
            listed_from: 0,
        };
        let merged = merge_cooccurrence(&[b.clone(), a.clone()]);
        assert_eq!(merged, merge_cooccurrence(&[a, b]));
        assert_eq!(merged.subset, Bounds::exact(13));
        assert_eq!(merged.registry, Bounds::exact(150));
        assert_eq!(merged.listed_from, 5);
        assert_eq!(
            merged.values,
            vec![
                co_value("HP:1", Bounds::exact(8), Bounds::exact(24)),
                // B lists every value of its subset, so none of its 3 has HP:2; its registry
                // may have up to 50 cases with it.
                co_value("HP:2", Bounds::exact(5), range(9, 59)),
            ]
        );
    }

    #[test]
    fn enrichment_is_tested_only_on_exact_tables() {
        let merged = CoPart {
            values: vec![
                co_value("HP:1", Bounds::exact(8), Bounds::exact(24)),
                co_value("HP:2", Bounds::exact(5), range(9, 59)),
                co_value("HP:3", Bounds::exact(2), Bounds::exact(2)),
            ],
            subset: Bounds::exact(13),
            registry: Bounds::exact(150),
            listed_from: 0,
        };
        let enriched = enrich(&merged, 10, 0);
        let ids: Vec<&str> = enriched.values.iter().map(|v| v.key.id.as_str()).collect();
        assert_eq!(ids, ["HP:1", "HP:2", "HP:3"]);
        assert_eq!(enriched.tested, 3);
        let first = &enriched.values[0];
        assert_eq!(first.p_value, Some(fisher_greater(8, 13, 24, 150)));
        assert!((first.frequency - 8.0 / 13.0).abs() < 1e-12);
        assert!((first.registry_frequency - 24.0 / 150.0).abs() < 1e-12);
        assert!((first.ratio - (8.0 / 13.0) / (24.0 / 150.0)).abs() < 1e-12);
        assert_eq!(enriched.values[1].p_value, None);
        assert_eq!(enriched.values[1].q_value, None);
        // HP:2's p-value counts as 1: the q-values are no smaller than with its true one.
        let q = |v: &EnrichedValue| v.q_value.unwrap_or(f64::NAN);
        for true_registry in [9, 30, 59] {
            let p = [
                fisher_greater(8, 13, 24, 150),
                fisher_greater(5, 13, true_registry, 150),
                fisher_greater(2, 13, 2, 150),
            ];
            let truth = benjamini_hochberg(&p);
            assert!(q(&enriched.values[0]) >= truth[0]);
            assert!(q(&enriched.values[2]) >= truth[2]);
        }
        // Every p-value known: the q-values are Benjamini–Hochberg's.
        let exact = CoPart {
            values: vec![
                co_value("HP:1", Bounds::exact(8), Bounds::exact(24)),
                co_value("HP:3", Bounds::exact(2), Bounds::exact(2)),
            ],
            ..merged.clone()
        };
        let enriched = enrich(&exact, 10, 0);
        let p = [
            fisher_greater(8, 13, 24, 150),
            fisher_greater(2, 13, 2, 150),
        ];
        let expected = benjamini_hochberg(&p);
        assert_eq!(q(&enriched.values[0]), expected[0]);
        assert_eq!(q(&enriched.values[1]), expected[1]);
        // Some values not listed: the number of tests is unknown, so no q-values.
        let partial = enrich(
            &CoPart {
                listed_from: 3,
                ..exact
            },
            10,
            0,
        );
        assert!(partial.values.iter().all(|v| v.q_value.is_none()));
        assert!(partial.values.iter().all(|v| v.p_value.is_some()));
    }

    #[test]
    fn enrichment_cuts_after_testing() {
        let merged = CoPart {
            values: vec![
                co_value("HP:1", Bounds::exact(8), Bounds::exact(24)),
                co_value("HP:2", Bounds::exact(8), Bounds::exact(9)),
                co_value("HP:3", range(2, 6), Bounds::exact(2)),
            ],
            subset: Bounds::exact(13),
            registry: Bounds::exact(150),
            listed_from: 0,
        };
        let enriched = enrich(&merged, 1, 0);
        // Equal subset counts: the smaller p-value (HP:2, rarer in the registry) first.
        assert_eq!(enriched.values.len(), 1);
        assert_eq!(enriched.values[0].key.id, "HP:2");
        assert_eq!(enriched.tested, 3);
        assert_eq!(enriched.listed_from, 9);
        let enriched = enrich(&merged, 10, 3);
        assert_eq!(enriched.values.len(), 2);
        assert_eq!(enriched.listed_from, 7);
        // Inconsistent bounds give no p-value rather than a panic.
        let odd = CoPart {
            values: vec![co_value("HP:1", Bounds::exact(20), Bounds::exact(5))],
            ..merged
        };
        assert_eq!(enrich(&odd, 10, 0).values[0].p_value, None);
    }
}
