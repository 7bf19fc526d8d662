//! The casereg wire contract, generated from `proto/casereg/v1/*.proto` at build time.
//!
//! Generated, apart from this module list and [`zero_copy`]: prost messages, tonic client
//! and server stubs, and pbjson serde impls (proto3 JSON, so a `Phenopacket` serialises to
//! GA4GH Phenopacket JSON and parses camelCase or snake_case keys, enum names or numbers,
//! and 64-bit integers as numbers or strings).

#![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]

/// Version 1 of the casereg API and the Phenopacket v2 record it carries.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/casereg.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/casereg.v1.serde.rs"));
}

pub mod zero_copy;

/// The encoded `FileDescriptorSet` of the whole contract: served by gRPC reflection so that
/// generic clients work with no .proto at hand, and used for reflective record checks.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/casereg_descriptor.bin"));

/// Version of this wire contract, reported by `GetRegistryInfo`.
pub const SCHEMA_VERSION: &str = "casereg.v1";

/// The GA4GH Phenopacket schema version whose messages `v1::Phenopacket` mirrors.
pub const PHENOPACKET_SCHEMA_VERSION: &str = "2.0.2";
