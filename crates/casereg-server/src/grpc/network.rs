//! The `Network` gRPC service: a count or an aggregate asked of this registry and of its
//! peers at once, merged, with every center's fate reported.
//!
//! Federation is just another client of the public API: peers are asked through
//! `casereg_client` with the token this server holds for each, and answer at the access
//! level they grant it. The local registry takes part like a peer, computed in process.
//! Merging is `casereg_core::merge` (pure, tested for associativity and for equality with
//! the union); small-count protection is applied again to the merged result, at the
//! caller's level.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use casereg_client::{Client, ClientError};
use casereg_core::disclosure::Reported;
use casereg_core::limits::{
    DEFAULT_HITS_PER_CENTER, MAX_CONCURRENT_PEERS, MAX_HITS_PER_CENTER, MAX_ROUTE_CENTERS,
};
use casereg_core::merge::{self, Bounds};
use casereg_core::text::Text;
use casereg_proto::v1 as pb;
use casereg_proto::v1::network_server::Network;
use tonic::{Request, Response, Status};

use crate::access::principals::Level;
use crate::access::{Caller, disclosure};
use crate::grpc::status::to_status;
use crate::peers::Peer;
use crate::registry::Registry;
use crate::wire::{aggregate, filter};

/// Time kept back from the caller's deadline to merge and answer.
const ANSWER_MARGIN: Duration = Duration::from_millis(50);
/// Cells each center is asked for: its whole distribution, up to the aggregate limit, so
/// that top N is cut after merging.
const FULL_DISTRIBUTION: u32 = casereg_core::limits::MAX_TOP_N;

/// The deadline the caller set (`grpc-timeout`), if any.
fn caller_deadline(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let number: u64 = number.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(number.saturating_mul(3600)),
        "M" => Duration::from_secs(number.saturating_mul(60)),
        "S" => Duration::from_secs(number),
        "m" => Duration::from_millis(number),
        "u" => Duration::from_micros(number),
        "n" => Duration::from_nanos(number),
        _ => return None,
    })
}

/// What a peer's failure is called in an outcome.
fn failure_status(error: &ClientError) -> pb::CenterStatus {
    match error {
        ClientError::DeadlineExceeded(_) => pb::CenterStatus::TimedOut,
        ClientError::Unavailable(_) | ClientError::Connect { .. } => pb::CenterStatus::Unavailable,
        ClientError::Unauthenticated(_) | ClientError::PermissionDenied(_) => {
            pb::CenterStatus::Refused
        }
        _ => pb::CenterStatus::Error,
    }
}

/// What a reported count says, read at the reporter's threshold `k`; unknown when absent
/// or impossible ("fewer than 1").
fn bounds(count: Option<&pb::Count>, k: u64) -> Bounds {
    count
        .and_then(|count| disclosure::read(count).bounds(k))
        .unwrap_or(UNKNOWN)
}

/// A count nothing is known of.
const UNKNOWN: Bounds = Bounds { low: 0, high: None };

/// What is known of a count, as a caller at threshold `k` may see it.
fn to_count(bounds: &Bounds, k: u64) -> pb::Count {
    let (value, precision) = bounds.reported(k);
    disclosure::wire(Reported { value, precision })
}

/// This registry's own answer to a full-distribution request, for merging (its strings
/// move into the part).
fn part_of(response: pb::AggregateResponse) -> merge::Part {
    let k = response.min_cell_count;
    let cells = response
        .cells
        .into_iter()
        .map(|cell| merge::PartCell {
            keys: cell
                .keys
                .into_iter()
                .map(|key| merge::Key {
                    id: key.id.into(),
                    label: key.label.into(),
                })
                .collect(),
            count: bounds(cell.count.as_ref(), k),
        })
        .collect();
    full_part(cells, [&response.total, &response.other, &response.none], k)
}

/// A peer's answer to a full-distribution request, for merging: its ids and labels stay in
/// the received buffer. Fails, naming the cell, if one is not UTF-8.
fn shared_part_of(
    response: casereg_proto::zero_copy::AggregateResponse,
) -> Result<merge::Part, ClientError> {
    let k = response.min_cell_count;
    let text = |bytes, i: usize, field: &str| {
        Text::from_utf8(bytes).map_err(|e| ClientError::Other {
            code: tonic::Code::Internal,
            message: format!("the answer's cells[{i}].keys.{field}: {e}"),
        })
    };
    let cells = response
        .cells
        .into_iter()
        .enumerate()
        .map(|(i, cell)| {
            let keys = cell
                .keys
                .into_iter()
                .map(|key| {
                    Ok(merge::Key {
                        id: text(key.id, i, "id")?,
                        label: text(key.label, i, "label")?,
                    })
                })
                .collect::<Result<Vec<_>, ClientError>>()?;
            Ok(merge::PartCell {
                keys,
                count: bounds(cell.count.as_ref(), k),
            })
        })
        .collect::<Result<Vec<_>, ClientError>>()?;
    Ok(full_part(
        cells,
        [&response.total, &response.other, &response.none],
        k,
    ))
}

/// A part from the cells of a full-distribution answer at threshold `k` and its total,
/// other and none counts. When it listed as many cells as it was asked for, cells it did
/// not list have at most as many cases as its smallest listed one.
fn full_part(
    cells: Vec<merge::PartCell>,
    [total, other, none]: [&Option<pb::Count>; 3],
    k: u64,
) -> merge::Part {
    let listed_from = listed_from(cells.len(), 0, cells.iter().map(|c| c.count.high));
    merge::Part {
        cells,
        total: bounds(total.as_ref(), k),
        other: bounds(other.as_ref(), k),
        none: bounds(none.as_ref(), k),
        listed_from,
    }
}

/// `listed_from` of an answer that lists `listed` values of a request for at most
/// [`FULL_DISTRIBUTION`], at threshold `k`: values it did not list have fewer cases than
/// this.
fn listed_from(listed: usize, k: u64, smallest_high: impl Iterator<Item = Option<u64>>) -> u64 {
    let cut = if listed < FULL_DISTRIBUTION as usize {
        0
    } else {
        smallest_high
            .map(|high| high.map_or(u64::MAX, |h| h.saturating_add(1)))
            .min()
            .unwrap_or(0)
    };
    cut.max(k)
}

/// A center's co-occurrence answer, for merging.
fn co_part_of(response: pb::CoOccurrenceResponse) -> merge::CoPart {
    let k = response.min_cell_count;
    let values: Vec<merge::CoPartValue> = response
        .values
        .into_iter()
        .map(|value| {
            let key = value.key.unwrap_or_default();
            merge::CoPartValue {
                key: merge::Key {
                    id: key.id.into(),
                    label: key.label.into(),
                },
                subset: bounds(value.cases.as_ref(), k),
                registry: bounds(value.registry_cases.as_ref(), k),
            }
        })
        .collect();
    let listed_from = listed_from(values.len(), k, values.iter().map(|v| v.subset.high));
    merge::CoPart {
        values,
        subset: bounds(response.subset_cases.as_ref(), k),
        registry: bounds(response.registry_cases.as_ref(), k),
        listed_from,
    }
}

/// A merged co-occurrence as a caller at threshold `k` may see it: below record level, only
/// values certainly in k or more cases of the subset, and none when the subset may be
/// smaller than k. When a center is missing (`partial`), every count is a lower bound;
/// frequencies and p-values describe the centers that answered.
fn co_wire_of(enriched: &merge::Enriched, k: u64, partial: bool) -> pb::CoOccurrenceResponse {
    let shown = |value: &merge::EnrichedValue| {
        k == 0 || (value.subset.low >= k && enriched.subset.low >= k)
    };
    let to_count = |bounds: &Bounds, k| to_count(&missing_parts(*bounds, partial), k);
    pb::CoOccurrenceResponse {
        values: enriched
            .values
            .iter()
            .filter(|v| shown(v))
            .map(|value| pb::CoOccurringValue {
                key: Some(pb::GroupKey {
                    id: value.key.id.to_string(),
                    label: value.key.label.to_string(),
                }),
                cases: Some(to_count(&value.subset, k)),
                registry_cases: Some(to_count(&value.registry, k)),
                frequency: value.frequency,
                registry_frequency: value.registry_frequency,
                ratio: value.ratio,
                p_value: value.p_value.unwrap_or(f64::NAN),
                q_value: value.q_value.unwrap_or(f64::NAN),
            })
            .collect(),
        subset_cases: Some(to_count(&enriched.subset, k)),
        registry_cases: Some(to_count(&enriched.registry, k)),
        tested: enriched.tested as u64,
        min_cell_count: k,
    }
}

fn wire_of(part: merge::Part, k: u64) -> pb::AggregateResponse {
    pb::AggregateResponse {
        cells: part
            .cells
            .into_iter()
            .map(|cell| pb::AggregateCell {
                keys: cell
                    .keys
                    .into_iter()
                    .map(|key| pb::GroupKey {
                        id: key.id.into(),
                        label: key.label.into(),
                    })
                    .collect(),
                count: Some(to_count(&cell.count, k)),
            })
            .collect(),
        total: Some(to_count(&part.total, k)),
        other: Some(to_count(&part.other, k)),
        none: Some(to_count(&part.none, k)),
        min_cell_count: k,
    }
}

/// The gRPC face of the network.
#[derive(Debug, Clone)]
pub struct NetworkService {
    registry: Arc<Registry>,
}

/// Where the request goes next, worked out from the route it came with.
struct Plan {
    /// The route to give peers.
    onward: pb::Route,
    /// Peers to ask, and outcomes for those skipped (already on the route).
    ask: Vec<Peer>,
    skipped: Vec<pb::CenterOutcome>,
    /// When the caller stops waiting, less the margin to answer.
    deadline: Instant,
}

impl NetworkService {
    /// Serves the network of `registry`'s peers.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    /// Checks the route (a request that already passed through this center is a loop and
    /// is refused) and decides whom to ask.
    fn plan(
        &self,
        route: Option<pb::Route>,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Plan, Status> {
        let me = self.registry.center.to_string();
        let peers = &self.registry.peers;
        let route = route.unwrap_or(pb::Route {
            visited: Vec::new(),
            hops_left: peers.max_hops,
        });
        if route.visited.len() > MAX_ROUTE_CENTERS {
            return Err(crate::grpc::status::invalid_field(
                "route.visited",
                format!("has more than {MAX_ROUTE_CENTERS} centers"),
            ));
        }
        if route.visited.contains(&me) {
            return Err(Status::failed_precondition(format!(
                "loop: center {me:?} is already on this request's route ({} → {me})",
                route.visited.join(" → ")
            )));
        }
        let mut visited = route.visited.clone();
        visited.push(me);
        let hops_left = route.hops_left.min(peers.max_hops);
        let wait = caller_deadline(metadata)
            .unwrap_or(peers.timeout + ANSWER_MARGIN)
            .saturating_sub(ANSWER_MARGIN);
        let (ask, skipped) = if hops_left == 0 {
            (Vec::new(), Vec::new())
        } else {
            let (skip, ask): (Vec<&Peer>, Vec<&Peer>) = peers
                .list
                .iter()
                .partition(|peer| visited.iter().any(|v| v == &peer.name));
            let skipped = skip
                .into_iter()
                .map(|peer| pb::CenterOutcome {
                    center: peer.name.clone(),
                    peer: peer.name.clone(),
                    status: pb::CenterStatus::Loop.into(),
                    message: format!(
                        "not asked: already on this request's route ({})",
                        visited.join(" → ")
                    ),
                    ..Default::default()
                })
                .collect();
            (ask.into_iter().cloned().collect(), skipped)
        };
        Ok(Plan {
            onward: pb::Route {
                visited,
                hops_left: hops_left.saturating_sub(1),
            },
            ask,
            skipped,
            deadline: Instant::now() + wait,
        })
    }

    /// Asks every peer of `plan` with `call`, at most [`MAX_CONCURRENT_PEERS`] at a time,
    /// each within the peer timeout and the caller's deadline. Returns each peer's answer or
    /// failure, with the time it took.
    async fn fan_out<T, F, Fut>(
        &self,
        plan: &Plan,
        call: F,
    ) -> Vec<(Peer, Result<T, ClientError>, Duration)>
    where
        T: Send + 'static,
        F: Fn(Client, pb::Route, Duration) -> Fut,
        Fut: Future<Output = Result<T, ClientError>> + Send + 'static,
    {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_PEERS));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, peer) in plan.ask.iter().enumerate() {
            let left = plan.deadline.saturating_duration_since(Instant::now());
            let wait = left.min(self.registry.peers.timeout);
            let future = call(peer.client.clone(), plan.onward.clone(), wait);
            let slots = Arc::clone(&slots);
            let deadline = plan.deadline;
            tasks.spawn(async move {
                let started = Instant::now();
                let result = match tokio::time::timeout_at(deadline.into(), async {
                    let _slot = slots.acquire_owned().await;
                    future.await
                })
                .await
                {
                    Ok(result) => result,
                    Err(_) => Err(ClientError::DeadlineExceeded(format!(
                        "no answer within {} ms",
                        wait.as_millis()
                    ))),
                };
                (i, result, started.elapsed())
            });
        }
        let mut answers: Vec<Option<(Result<T, ClientError>, Duration)>> =
            plan.ask.iter().map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((i, result, took)) = joined {
                answers[i] = Some((result, took));
            }
        }
        plan.ask
            .iter()
            .cloned()
            .zip(answers)
            .map(|(peer, answer)| {
                let (result, took) = answer.unwrap_or_else(|| {
                    (
                        Err(ClientError::Unavailable(
                            "the call's task failed".to_owned(),
                        )),
                        Duration::ZERO,
                    )
                });
                (peer, result, took)
            })
            .collect()
    }

    /// The peers' answers that arrived, and every center's outcome: this registry's own
    /// (`own`) first, then each peer's (its own and those it reports), then the peers not
    /// asked because they are on the route.
    fn collect<T>(
        &self,
        plan: Plan,
        own: pb::CenterOutcome,
        answers: Vec<(Peer, Result<T, ClientError>, Duration)>,
        reported: impl Fn(&T) -> Vec<pb::CenterOutcome>,
    ) -> (Vec<T>, Vec<pb::CenterOutcome>) {
        let mut centers = vec![own];
        let mut arrived = Vec::with_capacity(answers.len());
        for (peer, result, took) in answers {
            centers.extend(self.peer_outcomes(&peer, &result, took, &reported));
            if let Ok(answer) = result {
                arrived.push(answer);
            }
        }
        centers.extend(plan.skipped);
        (arrived, centers)
    }

    /// Runs this registry's own part of a network call on the blocking pool.
    async fn local<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Registry) -> Result<T, casereg_core::CoreError> + Send + 'static,
    ) -> Result<T, Status> {
        let registry = Arc::clone(&self.registry);
        tokio::task::spawn_blocking(move || work(&registry))
            .await
            .map_err(|e| Status::internal(format!("local part failed: {e}")))?
            .map_err(to_status)
    }

    /// This registry's own outcome: answered, with its HPO release and case count at `k`.
    fn own_outcome(&self, k: u64) -> pb::CenterOutcome {
        let active = self.registry.store.index().active_count();
        pb::CenterOutcome {
            center: self.registry.center.to_string(),
            status: pb::CenterStatus::Answered.into(),
            hpo_version: self.registry.hpo.version().to_owned(),
            cases: Some(disclosure::count(active, k)),
            ..Default::default()
        }
    }

    /// The outcomes a peer reported (its own and its peers'), marked with the peer's name
    /// and checked against this registry's HPO release; or one failure outcome.
    fn peer_outcomes<T>(
        &self,
        peer: &Peer,
        result: &Result<T, ClientError>,
        took: Duration,
        reported: impl Fn(&T) -> Vec<pb::CenterOutcome>,
    ) -> Vec<pb::CenterOutcome> {
        let millis = took.as_millis() as u64;
        match result {
            Ok(answer) => reported(answer)
                .into_iter()
                .map(|mut outcome| {
                    if outcome.peer.is_empty() {
                        outcome.peer = peer.name.clone();
                        outcome.millis = millis;
                    } else {
                        outcome.peer = format!("{}/{}", peer.name, outcome.peer);
                    }
                    outcome.hpo_differs = !outcome.hpo_version.is_empty()
                        && outcome.hpo_version != self.registry.hpo.version();
                    outcome
                })
                .collect(),
            Err(error) => vec![pb::CenterOutcome {
                center: peer.name.clone(),
                peer: peer.name.clone(),
                status: failure_status(error).into(),
                message: error.to_string(),
                millis,
                ..Default::default()
            }],
        }
    }
}

/// A merged count of an answer that is `partial`: a lower bound, since a center that did
/// not answer may hold any number of matching cases.
fn missing_parts(merged: Bounds, partial: bool) -> Bounds {
    if partial { merged.or_more() } else { merged }
}

/// A count a peer reported: its bounds, or for a boolean-level answer (no count) unknown, at
/// least 1 if it has a match.
fn reported_count(count: Option<&pb::Count>, exists: bool) -> Bounds {
    match count {
        Some(count) => bounds(Some(count), 0),
        None => Bounds {
            low: u64::from(exists),
            high: None,
        },
    }
}

fn answered(outcomes: &[pb::CenterOutcome]) -> bool {
    outcomes.iter().all(|o| {
        o.status == pb::CenterStatus::Answered as i32 || o.status == pb::CenterStatus::Loop as i32
    })
}

/// Every center's outcome as `caller` may see it. A boolean-level caller learns each
/// center's fate but no count. Below record level, every count is protected again at `k`:
/// a peer reports its parts at the level it grants this registry, which may be exact.
fn shown_to(caller: &Caller, k: u64, centers: Vec<pb::CenterOutcome>) -> Vec<pb::CenterOutcome> {
    let level = caller.level();
    let shown = |count: Option<pb::Count>| match level {
        Level::Boolean => None,
        Level::Count => count.map(|c| to_count(&bounds(Some(&c), 0), k)),
        Level::Record => count,
    };
    centers
        .into_iter()
        .map(|outcome| pb::CenterOutcome {
            cases: shown(outcome.cases),
            count: shown(outcome.count),
            ..outcome
        })
        .collect()
}

#[tonic::async_trait]
impl Network for NetworkService {
    async fn network_count(
        &self,
        request: Request<pb::NetworkCountRequest>,
    ) -> Result<Response<pb::NetworkCountResponse>, Status> {
        let caller = Caller::of(&request)?;
        let plan = self.plan(request.get_ref().route.clone(), request.metadata())?;
        let pb::NetworkCountRequest { filter, .. } = request.into_inner();
        let k = caller.min_cell_count(self.registry.min_cell_count);
        // The local part, exact; protected once, with everything else, at the end.
        let local = {
            let index = self.registry.store.index();
            let query = filter::to_query(filter.as_ref(), "filter", &index).map_err(to_status)?;
            index.count(&query)
        };
        let answers = self
            .fan_out(&plan, |mut client, route, wait| {
                let request = pb::NetworkCountRequest {
                    filter: filter.clone(),
                    route: Some(route),
                };
                async move { client.network_count(request, Some(wait)).await }
            })
            .await;
        let mut own = self.own_outcome(k);
        own.count = Some(disclosure::count(local, k));
        let (arrived, centers) = self.collect(plan, own, answers, |a| a.centers.clone());
        let total = Bounds::exact(local)
            + arrived
                .iter()
                .map(|a| reported_count(a.count.as_ref(), a.exists))
                .sum::<Bounds>();
        let exists = local > 0 || arrived.iter().any(|a| a.exists);
        let partial = !answered(&centers);
        let total = missing_parts(total, partial);
        Ok(Response::new(pb::NetworkCountResponse {
            count: match caller.level() {
                Level::Boolean => None,
                _ => Some(to_count(&total, k)),
            },
            exists,
            partial,
            centers: shown_to(&caller, k, centers),
        }))
    }

    async fn network_aggregate(
        &self,
        request: Request<pb::NetworkAggregateRequest>,
    ) -> Result<Response<pb::NetworkAggregateResponse>, Status> {
        let caller = Caller::of(&request)?;
        let plan = self.plan(request.get_ref().route.clone(), request.metadata())?;
        let pb::NetworkAggregateRequest { request: asked, .. } = request.into_inner();
        let asked = asked.unwrap_or_default();
        let k = caller.min_cell_count(self.registry.min_cell_count);
        let cut = aggregate::cut_of(&asked).map_err(to_status)?;
        // Every center, this one included, gives its whole bounded distribution.
        let full = pb::AggregateRequest {
            top_n: FULL_DISTRIBUTION,
            min_count: 0,
            ..asked.clone()
        };
        let local = {
            let full = full.clone();
            self.local(move |r| aggregate::aggregate(&full, &r.store.index(), 0))
        };
        // Each peer's answer is made a part as it arrives, its strings left in the buffer
        // they came in.
        let asking = self.fan_out(&plan, |mut client, route, wait| {
            let request = pb::NetworkAggregateRequest {
                request: Some(full.clone()),
                route: Some(route),
            };
            async move {
                let answer = client
                    .network_aggregate_zero_copy(request, Some(wait))
                    .await?;
                let part = shared_part_of(answer.merged.unwrap_or_default())?;
                Ok((part, answer.centers))
            }
        });
        // The local part is worked out while the peers are asked.
        let (local, answers) = tokio::join!(local, asking);
        let local = local?;
        let own = self.own_outcome(k);
        let (arrived, centers) = self.collect(plan, own, answers, |(_, centers)| centers.clone());
        let parts: Vec<merge::Part> = std::iter::once(part_of(local))
            .chain(arrived.into_iter().map(|(part, _)| part))
            .collect();
        let mut merged = merge::merge_and_cut(parts, cut.top, cut.min_count);
        let partial = !answered(&centers);
        if partial {
            for cell in &mut merged.cells {
                cell.count = cell.count.or_more();
            }
            for count in [&mut merged.total, &mut merged.other, &mut merged.none] {
                *count = count.or_more();
            }
        }
        Ok(Response::new(pb::NetworkAggregateResponse {
            merged: Some(wire_of(merged, k)),
            partial,
            centers: shown_to(&caller, k, centers),
        }))
    }

    async fn network_co_occurrence(
        &self,
        request: Request<pb::NetworkCoOccurrenceRequest>,
    ) -> Result<Response<pb::NetworkCoOccurrenceResponse>, Status> {
        let caller = Caller::of(&request)?;
        let plan = self.plan(request.get_ref().route.clone(), request.metadata())?;
        let pb::NetworkCoOccurrenceRequest { request: asked, .. } = request.into_inner();
        let asked = asked.unwrap_or_default();
        let k = caller.min_cell_count(self.registry.min_cell_count);
        let cut = aggregate::cut_of(&pb::AggregateRequest {
            top_n: asked.top_n,
            min_count: asked.min_count,
            ..Default::default()
        })
        .map_err(to_status)?;
        let full = pb::CoOccurrenceRequest {
            top_n: FULL_DISTRIBUTION,
            min_count: 0,
            ..asked.clone()
        };
        let local = {
            let full = full.clone();
            self.local(move |r| aggregate::cooccurrence(&full, &r.store.index(), 0))
        };
        let asking = self.fan_out(&plan, |mut client, route, wait| {
            let request = pb::NetworkCoOccurrenceRequest {
                request: Some(full.clone()),
                route: Some(route),
            };
            async move { client.network_co_occurrence(request, Some(wait)).await }
        });
        let (local, answers) = tokio::join!(local, asking);
        let local = local?;
        let own = self.own_outcome(k);
        let (arrived, centers) = self.collect(plan, own, answers, |a| a.centers.clone());
        let parts: Vec<merge::CoPart> = std::iter::once(co_part_of(local))
            .chain(
                arrived
                    .into_iter()
                    .map(|a| co_part_of(a.merged.unwrap_or_default())),
            )
            .collect();
        let merged = merge::merge_cooccurrence(&parts);
        let enriched = merge::enrich(&merged, cut.top, cut.min_count);
        let partial = !answered(&centers);
        Ok(Response::new(pb::NetworkCoOccurrenceResponse {
            merged: Some(co_wire_of(&enriched, k, partial)),
            partial,
            centers: shown_to(&caller, k, centers),
        }))
    }

    async fn network_search(
        &self,
        request: Request<pb::NetworkSearchRequest>,
    ) -> Result<Response<pb::NetworkSearchResponse>, Status> {
        let caller = Caller::of(&request)?;
        let plan = self.plan(request.get_ref().route.clone(), request.metadata())?;
        let pb::NetworkSearchRequest {
            filter, per_center, ..
        } = request.into_inner();
        let per_center = match per_center {
            0 => DEFAULT_HITS_PER_CENTER,
            n if n > MAX_HITS_PER_CENTER => {
                return Err(crate::grpc::status::invalid_field(
                    "per_center",
                    format!(
                        "is {n}; the limit is {MAX_HITS_PER_CENTER} (0 means {DEFAULT_HITS_PER_CENTER})"
                    ),
                ));
            }
            n => n,
        };
        let k = caller.min_cell_count(self.registry.min_cell_count);
        let records = caller.level() == Level::Record;
        // The local part: the count, and summaries only for a record-level caller.
        let local = {
            let filter = filter.clone();
            self.local(move |registry| {
                let query = filter::to_query(filter.as_ref(), "filter", &registry.store.index())?;
                if !records {
                    return Ok((registry.store.count(&query), Vec::new()));
                }
                let page = registry.store.search(&query, per_center, "", false)?;
                let hits = page
                    .cases
                    .into_iter()
                    .map(|case| crate::wire::hits::search_hit(case, &registry.hpo, false))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((page.total, hits))
            })
        };
        let asking = self.fan_out(&plan, |mut client, route, wait| {
            let request = pb::NetworkSearchRequest {
                filter: filter.clone(),
                per_center,
                route: Some(route),
            };
            async move { client.network_search(request, Some(wait)).await }
        });
        let (local, answers) = tokio::join!(local, asking);
        let (local, mut hits) = local?;
        let mut own = self.own_outcome(k);
        own.count = Some(disclosure::count(local, k));
        let (arrived, centers) = self.collect(plan, own, answers, |a| a.centers.clone());
        let total = Bounds::exact(local)
            + arrived
                .iter()
                .map(|a| reported_count(a.total.as_ref(), a.exists))
                .sum::<Bounds>();
        let exists = local > 0 || arrived.iter().any(|a| a.exists);
        if records {
            hits.extend(arrived.into_iter().flat_map(|a| a.hits));
        }
        let partial = !answered(&centers);
        let total = missing_parts(total, partial);
        Ok(Response::new(pb::NetworkSearchResponse {
            total: match caller.level() {
                Level::Boolean => None,
                _ => Some(to_count(&total, k)),
            },
            exists,
            partial,
            centers: shown_to(&caller, k, centers),
            hits,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer with `cells` (id, label, exact count), as a center sends it.
    fn answer(cells: &[(&str, &str, u64)]) -> pb::AggregateResponse {
        let count = |value| {
            Some(pb::Count {
                value,
                precision: pb::Precision::Exact.into(),
            })
        };
        pb::AggregateResponse {
            cells: cells
                .iter()
                .map(|&(id, label, n)| pb::AggregateCell {
                    keys: vec![pb::GroupKey {
                        id: id.to_owned(),
                        label: label.to_owned(),
                    }],
                    count: count(n),
                })
                .collect(),
            total: count(9),
            other: count(1),
            none: count(2),
            min_cell_count: 0,
        }
    }

    /// `response` as a coordinator receives it from a peer.
    fn received(response: &pb::AggregateResponse) -> casereg_proto::zero_copy::AggregateResponse {
        use prost::Message as _;
        casereg_proto::zero_copy::AggregateResponse::decode(prost::bytes::Bytes::from(
            response.encode_to_vec(),
        ))
        .expect("decodes")
    }

    #[test]
    fn a_received_answer_is_the_same_part_as_a_local_one() {
        let local = answer(&[("OMIM:1", "Sjögren syndrome", 5), ("OMIM:2", "", 3)]);
        let part = shared_part_of(received(&local)).expect("UTF-8");
        assert_eq!(part, part_of(local));
    }

    #[test]
    fn a_peer_answer_that_is_not_utf8_is_an_error_naming_the_cell() {
        let mut peer = received(&answer(&[("OMIM:1", "a", 5), ("OMIM:2", "b", 3)]));
        peer.cells[1].keys[0].label = prost::bytes::Bytes::from_static(b"Sj\xf6gren");
        let error = shared_part_of(peer).expect_err("not UTF-8");
        assert!(
            matches!(&error, ClientError::Other { message, .. }
                if message.contains("cells[1].keys.label") && message.contains("offset 2")),
            "{error}"
        );
    }

    #[test]
    fn grpc_timeouts_are_read_in_every_unit() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        for (text, expected) in [
            ("2S", Duration::from_secs(2)),
            ("1500m", Duration::from_millis(1500)),
            ("3M", Duration::from_secs(180)),
            ("7u", Duration::from_micros(7)),
        ] {
            metadata.insert("grpc-timeout", text.parse().expect("ascii"));
            assert_eq!(caller_deadline(&metadata), Some(expected), "{text}");
        }
        metadata.insert("grpc-timeout", "soon".parse().expect("ascii"));
        assert_eq!(caller_deadline(&metadata), None);
    }
}
