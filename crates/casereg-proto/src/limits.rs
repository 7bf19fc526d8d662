//! Every limit the registry and its clients enforce, in one place, with its unit and
//! reason. Code refers to these names only; [`ALL`] lists each with its value, and
//! `GetRegistryInfo` (so `casereg info`) reports the server's.

/// Largest gRPC message the server decodes or encodes, in bytes (tonic's default is 4 MiB;
/// set on purpose on both sides so that the limit is a decision, not an accident).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// HTTP/2 flow-control window per stream, in bytes (both sides). The protocol default of
/// 64 KiB makes a bulk import stop for a window update every few records.
pub const HTTP2_STREAM_WINDOW_BYTES: u32 = 4 * 1024 * 1024;

/// HTTP/2 flow-control window per connection, in bytes (both sides).
pub const HTTP2_CONNECTION_WINDOW_BYTES: u32 = 8 * 1024 * 1024;

/// Largest encoded phenopacket accepted, in bytes. The largest of the 8,464 published
/// phenopacket-store records is far below this; a record this big is almost surely a mistake.
pub const MAX_RECORD_BYTES: usize = 2 * 1024 * 1024;

/// Longest string field anywhere in a record (descriptions, labels, HGVS, VCF alleles…), in
/// UTF-8 bytes. Sized for real data: the longest string in phenopacket-store is a 60,206-byte
/// VCF reference allele of a large deletion.
pub const MAX_TEXT_BYTES: usize = 128 * 1024;

/// Longest identifier (phenopacket, subject and ontology ids, CURIEs), in UTF-8 bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Longest retraction reason, in UTF-8 bytes.
pub const MAX_REASON_BYTES: usize = 4 * 1024;

/// Longest center id, in bytes (ASCII letters, digits, `-`, `_`, `.`).
pub const MAX_CENTER_ID_BYTES: usize = 64;

/// Page size used when a listing asks for 0.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Largest page a listing returns; larger requests are rejected, not silently cut.
pub const MAX_PAGE_SIZE: u32 = 1_000;

/// Most field violations reported for one record; the rest are summarised in one line.
pub const MAX_REPORTED_VIOLATIONS: usize = 100;

/// Most records in one `ImportCases` stream message.
pub const MAX_IMPORT_RECORDS_PER_MESSAGE: usize = 1_000;

/// Records written per durable commit during an import (group commit): large enough that
/// the flush is paid rarely, small enough that a batch stays a few MiB.
pub const IMPORT_BATCH_RECORDS: usize = 512;

/// Most outcomes listed in one import response; counts are always complete.
pub const MAX_IMPORT_OUTCOMES: usize = 100_000;

/// Longest `source` label of an imported record, in bytes.
pub const MAX_SOURCE_BYTES: usize = 1_024;

/// Cases per `ExportCases` stream message.
pub const EXPORT_CHUNK_CASES: usize = 100;

/// Most case ids one export may name.
pub const MAX_EXPORT_IDS: usize = 10_000;

/// Longest ontology search query, in bytes.
pub const MAX_TERM_QUERY_BYTES: usize = 200;

/// Ontology search hits returned when a request asks for 0.
pub const DEFAULT_TERM_RESULTS: u32 = 10;

/// Most ontology search hits one request may ask for.
pub const MAX_TERM_RESULTS: u32 = 100;

/// Longest text query (`casereg search "…"`), in bytes.
pub const MAX_QUERY_BYTES: usize = 4 * 1024;

/// Deepest filter tree accepted (a leaf under one `all` has depth 2).
pub const MAX_FILTER_DEPTH: usize = 16;

/// Most nodes (leaves and operators) in one filter tree.
pub const MAX_FILTER_NODES: usize = 256;

/// Aggregate cells (or co-occurring values) returned when a request asks for 0.
pub const DEFAULT_TOP_N: u32 = 20;

/// Most aggregate cells (or co-occurring values) one request may ask for.
pub const MAX_TOP_N: u32 = 1_000;

/// Deepest phenotype roll-up below Phenotypic abnormality.
pub const MAX_ROLLUP_DEPTH: u32 = 8;

/// Most age buckets one aggregate dimension may produce.
pub const MAX_AGE_BUCKETS: usize = 500;

/// Peers asked at once by one network call; the rest wait for a free slot.
pub const MAX_CONCURRENT_PEERS: usize = 16;

/// Case summaries a network search asks of each center when the request says 0.
pub const DEFAULT_HITS_PER_CENTER: u32 = 10;

/// Most case summaries a network search asks of each center.
pub const MAX_HITS_PER_CENTER: u32 = 100;

/// Most centers a network request's route may list before it is refused (a longer route
/// is a loop or a fan-out storm, not a network).
pub const MAX_ROUTE_CENTERS: usize = 64;

/// Audit entries returned when a request asks for 0.
pub const DEFAULT_AUDIT_PAGE: u32 = 100;

/// Most audit entries one request may ask for.
pub const MAX_AUDIT_PAGE: u32 = 1_000;

/// Import batches checked or committing at once while the next is received: enough to keep
/// both cores busy, few enough that the server holds at most three batches of a stream.
pub const IMPORT_BATCHES_IN_FLIGHT: usize = 2;

/// Deepest message nesting the record walk follows; the schema's own depth is below 10.
pub const MAX_RECORD_DEPTH: usize = 32;

/// Longest line of an OBO ontology file, in bytes (HPO's longest is a few KiB).
pub const MAX_OBO_LINE_BYTES: usize = 64 * 1024;

/// Longest a client may take over the TLS handshake before its connection is dropped, in
/// seconds: bounds the handshakes pending at once from clients that connect and say nothing.
pub const TLS_HANDSHAKE_TIMEOUT_SECS: u64 = 10;

/// Largest certificate, key or CA file read, in bytes (server and client). A chain of a few
/// certificates is a few KiB; a file near this size is the wrong file.
pub const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

/// Client side: records per import stream message (the server accepts up to
/// [`MAX_IMPORT_RECORDS_PER_MESSAGE`]). Small messages keep the encode and decode buffers of
/// both ends small and reused: at 250 records (about 1 MB a message) the corpus import took
/// a fifth longer, in the CLI and the server alike.
pub const RECORDS_PER_MESSAGE: usize = 32;

/// Client side: import stream messages buffered between the file reader and the network.
pub const MESSAGES_IN_FLIGHT: usize = 4;

/// Client side: longest line read from a JSON Lines file, in bytes; longer lines are
/// rejected whole.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Client side: largest single-document `.json` file, in bytes.
pub const MAX_JSON_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Who enforces a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The server (reported by `GetRegistryInfo`).
    Server,
    /// The `casereg` client, before anything is sent.
    Client,
}

/// One limit as [`ALL`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The constant's name.
    pub name: &'static str,
    /// Its value, in `unit`.
    pub value: u64,
    /// `bytes`, `seconds`, `records`, `cases`, …
    pub unit: &'static str,
    /// Who enforces it.
    pub side: Side,
}

const fn limit(name: &'static str, value: u64, unit: &'static str, side: Side) -> Limit {
    Limit {
        name,
        value,
        unit,
        side,
    }
}

/// Every limit of this module with its value, in the module's order (a test holds the list
/// to the module's constants).
pub const ALL: &[Limit] = {
    use Side::{Client, Server};
    &[
        limit(
            "MAX_MESSAGE_BYTES",
            MAX_MESSAGE_BYTES as u64,
            "bytes",
            Server,
        ),
        limit(
            "HTTP2_STREAM_WINDOW_BYTES",
            HTTP2_STREAM_WINDOW_BYTES as u64,
            "bytes",
            Server,
        ),
        limit(
            "HTTP2_CONNECTION_WINDOW_BYTES",
            HTTP2_CONNECTION_WINDOW_BYTES as u64,
            "bytes",
            Server,
        ),
        limit("MAX_RECORD_BYTES", MAX_RECORD_BYTES as u64, "bytes", Server),
        limit("MAX_TEXT_BYTES", MAX_TEXT_BYTES as u64, "bytes", Server),
        limit("MAX_ID_BYTES", MAX_ID_BYTES as u64, "bytes", Server),
        limit("MAX_REASON_BYTES", MAX_REASON_BYTES as u64, "bytes", Server),
        limit(
            "MAX_CENTER_ID_BYTES",
            MAX_CENTER_ID_BYTES as u64,
            "bytes",
            Server,
        ),
        limit(
            "DEFAULT_PAGE_SIZE",
            DEFAULT_PAGE_SIZE as u64,
            "cases",
            Server,
        ),
        limit("MAX_PAGE_SIZE", MAX_PAGE_SIZE as u64, "cases", Server),
        limit(
            "MAX_REPORTED_VIOLATIONS",
            MAX_REPORTED_VIOLATIONS as u64,
            "violations",
            Server,
        ),
        limit(
            "MAX_IMPORT_RECORDS_PER_MESSAGE",
            MAX_IMPORT_RECORDS_PER_MESSAGE as u64,
            "records",
            Server,
        ),
        limit(
            "IMPORT_BATCH_RECORDS",
            IMPORT_BATCH_RECORDS as u64,
            "records",
            Server,
        ),
        limit(
            "MAX_IMPORT_OUTCOMES",
            MAX_IMPORT_OUTCOMES as u64,
            "outcomes",
            Server,
        ),
        limit("MAX_SOURCE_BYTES", MAX_SOURCE_BYTES as u64, "bytes", Server),
        limit(
            "EXPORT_CHUNK_CASES",
            EXPORT_CHUNK_CASES as u64,
            "cases",
            Server,
        ),
        limit("MAX_EXPORT_IDS", MAX_EXPORT_IDS as u64, "ids", Server),
        limit(
            "MAX_TERM_QUERY_BYTES",
            MAX_TERM_QUERY_BYTES as u64,
            "bytes",
            Server,
        ),
        limit(
            "DEFAULT_TERM_RESULTS",
            DEFAULT_TERM_RESULTS as u64,
            "terms",
            Server,
        ),
        limit("MAX_TERM_RESULTS", MAX_TERM_RESULTS as u64, "terms", Server),
        limit("MAX_QUERY_BYTES", MAX_QUERY_BYTES as u64, "bytes", Client),
        limit(
            "MAX_FILTER_DEPTH",
            MAX_FILTER_DEPTH as u64,
            "levels",
            Server,
        ),
        limit("MAX_FILTER_NODES", MAX_FILTER_NODES as u64, "nodes", Server),
        limit("DEFAULT_TOP_N", DEFAULT_TOP_N as u64, "cells", Server),
        limit("MAX_TOP_N", MAX_TOP_N as u64, "cells", Server),
        limit(
            "MAX_ROLLUP_DEPTH",
            MAX_ROLLUP_DEPTH as u64,
            "levels",
            Server,
        ),
        limit("MAX_AGE_BUCKETS", MAX_AGE_BUCKETS as u64, "buckets", Server),
        limit(
            "MAX_CONCURRENT_PEERS",
            MAX_CONCURRENT_PEERS as u64,
            "peers",
            Server,
        ),
        limit(
            "DEFAULT_HITS_PER_CENTER",
            DEFAULT_HITS_PER_CENTER as u64,
            "cases",
            Server,
        ),
        limit(
            "MAX_HITS_PER_CENTER",
            MAX_HITS_PER_CENTER as u64,
            "cases",
            Server,
        ),
        limit(
            "MAX_ROUTE_CENTERS",
            MAX_ROUTE_CENTERS as u64,
            "centers",
            Server,
        ),
        limit(
            "DEFAULT_AUDIT_PAGE",
            DEFAULT_AUDIT_PAGE as u64,
            "entries",
            Server,
        ),
        limit("MAX_AUDIT_PAGE", MAX_AUDIT_PAGE as u64, "entries", Server),
        limit(
            "IMPORT_BATCHES_IN_FLIGHT",
            IMPORT_BATCHES_IN_FLIGHT as u64,
            "batches",
            Server,
        ),
        limit(
            "MAX_RECORD_DEPTH",
            MAX_RECORD_DEPTH as u64,
            "levels",
            Server,
        ),
        limit(
            "MAX_OBO_LINE_BYTES",
            MAX_OBO_LINE_BYTES as u64,
            "bytes",
            Server,
        ),
        limit(
            "TLS_HANDSHAKE_TIMEOUT_SECS",
            TLS_HANDSHAKE_TIMEOUT_SECS,
            "seconds",
            Server,
        ),
        limit("MAX_PEM_FILE_BYTES", MAX_PEM_FILE_BYTES, "bytes", Server),
        limit(
            "RECORDS_PER_MESSAGE",
            RECORDS_PER_MESSAGE as u64,
            "records",
            Client,
        ),
        limit(
            "MESSAGES_IN_FLIGHT",
            MESSAGES_IN_FLIGHT as u64,
            "messages",
            Client,
        ),
        limit("MAX_LINE_BYTES", MAX_LINE_BYTES as u64, "bytes", Client),
        limit("MAX_JSON_FILE_BYTES", MAX_JSON_FILE_BYTES, "bytes", Client),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_constant_of_the_module_once_in_order() {
        let source = include_str!("limits.rs");
        let declared: Vec<&str> = source
            .lines()
            .filter_map(|line| line.strip_prefix("pub const "))
            .filter_map(|rest| rest.split_once(':').map(|(name, _)| name))
            .filter(|name| *name != "ALL")
            .collect();
        let listed: Vec<&str> = ALL.iter().map(|l| l.name).collect();
        assert_eq!(listed, declared);
    }
}
