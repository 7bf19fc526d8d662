//! The casereg wire contract, generated from `proto/casereg/v1/*.proto` at build time.
//!
//! Hand-written: this module list, [`age`] and [`limits`] (the calendar and the limits
//! every client shares), and [`view`] and [`zero_copy`]. Generated: prost messages, tonic client
//! and server stubs, and pbjson serde impls (proto3 JSON, so a `Phenopacket` serialises to
//! GA4GH Phenopacket JSON and parses camelCase or snake_case keys, enum names or numbers,
//! and 64-bit integers as numbers or strings).

/// Version 1 of the casereg API and the Phenopacket v2 record it carries.
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/casereg.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/casereg.v1.serde.rs"));
}

pub mod age;
pub mod limits;
pub mod view;
pub mod zero_copy;

/// The encoded `FileDescriptorSet` of the whole contract: served by gRPC reflection so that
/// generic clients work with no .proto at hand, and used for reflective record checks.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/casereg_descriptor.bin"));

/// Version of this wire contract, reported by `GetRegistryInfo`.
pub const SCHEMA_VERSION: &str = "casereg.v1";

/// The GA4GH Phenopacket schema version whose messages `v1::Phenopacket` mirrors.
pub const PHENOPACKET_SCHEMA_VERSION: &str = "2.0.2";

/// The contract's own description of its messages, for tests of hand-written mirrors.
#[cfg(test)]
mod contract {
    use prost::Message as _;
    use prost_types::DescriptorProto;

    /// The descriptor of `casereg.v1.{name}`.
    pub(crate) fn message(name: &str) -> DescriptorProto {
        let set = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET)
            .expect("the contract's descriptors decode");
        set.file
            .into_iter()
            .filter(|f| f.package() == "casereg.v1")
            .flat_map(|f| f.message_type)
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("{name} is in the contract"))
    }
}
