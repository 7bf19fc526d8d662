//! Every limit the registry enforces, in one place, with its unit.
//!
//! Handlers and the store refer to these names only; `GetRegistryInfo` reports them and
//! ARCHITECTURE.md lists them. Each is tested at and just past its edge.

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
