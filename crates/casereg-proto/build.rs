//! Compiles `proto/` with protox (pure Rust, so no system `protoc` is needed), generates
//! prost messages, tonic services and pbjson serde impls, and keeps the encoded descriptor
//! set for server reflection and for reflective validation.

use std::path::PathBuf;

use prost::Message as _;

/// The .proto files that make up the contract, relative to `proto/`.
const PROTO_FILES: &[&str] = &[
    "casereg/v1/phenopacket.proto",
    "casereg/v1/search.proto",
    "casereg/v1/aggregate.proto",
    "casereg/v1/registry.proto",
    "casereg/v1/ontology.proto",
    "casereg/v1/audit.proto",
    "casereg/v1/network.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    // Nothing else tells cargo that the schema lives outside this crate: without these
    // lines an edited .proto would be silently ignored until the next clean build.
    println!("cargo:rerun-if-changed={}", proto_root.display());
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }

    let descriptor_set = protox::compile(PROTO_FILES, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_bytes = descriptor_set.encode_to_vec();
    std::fs::write(out_dir.join("casereg_descriptor.bin"), &descriptor_bytes)?;

    // Well-known types come from pbjson-types (prost types with proto3-JSON serde), which
    // prost only allows once it is told not to supply its own.
    // Map fields as ordered maps: a hash map's order differs from one decode to the next,
    // and the stored encoding of a record must not (an unchanged record would read as
    // changed).
    tonic_prost_build::configure()
        .btree_map(".")
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(descriptor_set)?;

    pbjson_build::Builder::new()
        // pbjson maps `.google.protobuf` to `pbjson_types` by itself.
        .register_descriptors(&descriptor_bytes)?
        .btree_map(["."])
        .build(&[".casereg"])?;
    Ok(())
}
