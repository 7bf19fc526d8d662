//! The gRPC face: one module per service (thin handlers: convert, call the core off the
//! async runtime, convert back), the access layer in front of all of them, the import and
//! export streams, and the one table from core errors to statuses.

pub(crate) mod audit;
pub(crate) mod import;
pub(crate) mod layer;
pub(crate) mod network;
pub(crate) mod ontology;
pub(crate) mod registry;
pub(crate) mod routes;
pub(crate) mod status;
