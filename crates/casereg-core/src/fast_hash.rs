//! A fast hash for maps keyed by short strings that are read on every aggregate: code ids
//! and labels (hundreds per facet, thousands per network merge), where the standard
//! SipHash cost as much as the counting.
//!
//! It takes eight bytes at a step (a multiply and a rotate per word) and does not resist
//! chosen collisions, so it keys only maps whose keys come from stored records or answering
//! peers, and whose size is bounded by the registry's own limits.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map hashed with [`WordHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// Odd multiplier with well-spread bits (from the golden ratio).
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// Mixes input a word at a time into one 64-bit state.
#[derive(Debug, Default, Clone, Copy)]
pub struct WordHasher(u64);

impl WordHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SPREAD);
    }
}

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown takes its bucket from the low bits and its
        // control tag from the top seven.
        self.0 ^ (self.0 >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    fn hash(text: &str) -> u64 {
        BuildHasherDefault::<WordHasher>::default().hash_one(text)
    }

    /// Ids that differ in one character, in length or by trailing zero bytes hash apart,
    /// and the buckets of a thousand similar ids spread.
    #[test]
    fn similar_ids_hash_apart() {
        let ids: Vec<String> = (0..1_000)
            .map(|i| format!("OMIM:{:06}", 600_000 + i))
            .collect();
        let hashes: HashSet<u64> = ids.iter().map(|id| hash(id)).collect();
        assert_eq!(hashes.len(), ids.len());
        let buckets: HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
        assert!(
            buckets.len() > 500,
            "{} buckets of 1024 used",
            buckets.len()
        );
        assert_ne!(hash("a"), hash("a\0"));
        assert_ne!(hash(""), hash("\0"));
        assert_ne!(hash("abcdefgh"), hash("abcdefgh\0"));
        let map: FastMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        assert!(ids.iter().enumerate().all(|(i, id)| map[id.as_str()] == i));
    }
}
