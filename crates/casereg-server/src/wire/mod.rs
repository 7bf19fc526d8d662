//! Between the wire and the domain: record checks (`convert`, guided by `record_walk`),
//! what search reads of a record (`facts`), wire filters as checked core queries
//! (`filter`), aggregate requests (`aggregate`) and search hits (`hits`). Nothing here knows
//! tonic's services or the network.
//!
//! Public for the benchmarks and the end-to-end tests, which build registries and indexes
//! from records in process.

pub mod aggregate;
pub mod convert;
pub mod facts;
pub mod filter;
pub(crate) mod hits;
pub mod record_walk;
