//! casereg's domain: typed ids, limits, the HPO ontology, record checks and the sled store.
//!
//! Architecture invariant: this crate knows nothing of gRPC, tonic or the network, and
//! nothing of the generated wire types; the server converts at its boundary.

pub mod aggregate;
pub mod audit;
pub mod case;
pub mod disclosure;
pub mod error;
pub mod fast_hash;
pub mod ids;
pub mod index;
pub mod merge;
pub mod ontology;
pub mod stats;
pub mod store;
pub mod text;

/// The contract's limits and age calendar, which clients share (they live in
/// casereg-proto so that a client needs nothing else).
pub use casereg_proto::{age, limits};

pub use error::{CoreError, FieldViolation, Result};
