//! [`Text`]: an immutable UTF-8 string over shared bytes.
//!
//! A coordinator reads hundreds of ids and labels from each center's answer. Held as
//! [`Text`], each is a view of the received buffer: checked as UTF-8 once, never copied, and
//! cloned or moved into a merged answer by a reference count.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use bytes::Bytes;

/// A UTF-8 string sharing its bytes (with a received message, or with the `String` it was
/// made from). Compares, orders and hashes as the `str` it holds.
#[derive(Clone, Default)]
pub struct Text(Bytes);

/// Bytes that are not UTF-8, with where the first invalid sequence starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not UTF-8 (invalid byte sequence at offset {valid_up_to})")]
pub struct NotUtf8 {
    /// Bytes before the invalid sequence.
    pub valid_up_to: usize,
}

impl Text {
    /// `bytes` as text, if they are UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, NotUtf8> {
        match std::str::from_utf8(&bytes) {
            Ok(_) => Ok(Self(bytes)),
            Err(e) => Err(NotUtf8 {
                valid_up_to: e.valid_up_to(),
            }),
        }
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // Every constructor checks the bytes, so this never falls back; checking again
        // (instead of an unchecked conversion) keeps the crate free of unsafe code, and
        // costs a pass over an id or a label.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Text {
    /// Takes over the string's buffer.
    fn from(text: String) -> Self {
        Self(Bytes::from(text))
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Self(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl From<Text> for String {
    /// Reuses the buffer when nothing else shares it.
    fn from(text: Text) -> Self {
        String::from_utf8(Vec::from(text.0)).unwrap_or_default()
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    /// Byte order, which for UTF-8 is the order of `str`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

impl Hash for Text {
    /// As `str` hashes (its bytes, then `0xff`), so that a map keyed by `Text` can be looked
    /// up by `&str`; from the bytes, without reading them as a `str` first.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0);
        state.write_u8(0xff);
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    #[test]
    fn reads_utf8_and_refuses_the_rest() {
        let text = Text::from_utf8(Bytes::from_static("Sjögren".as_bytes())).expect("utf-8");
        assert_eq!(text, "Sjögren");
        assert_eq!(text.len(), 8);
        let bad = Text::from_utf8(Bytes::from_static(b"ab\xffcd"));
        assert_eq!(bad, Err(NotUtf8 { valid_up_to: 2 }));
    }

    #[test]
    fn orders_hashes_and_converts_as_str() {
        let mut texts: Vec<Text> = ["OMIM:2", "OMIM:10", "HP:1", "é", "z"]
            .into_iter()
            .map(Text::from)
            .collect();
        texts.sort();
        let mut strs = vec!["OMIM:2", "OMIM:10", "HP:1", "é", "z"];
        strs.sort_unstable();
        assert_eq!(texts, strs);
        let map: HashMap<Text, usize> = texts.iter().cloned().zip(0..).collect();
        assert_eq!(map.get("OMIM:10"), Some(&1));
        let fast: crate::fast_hash::FastMap<Text, usize> = texts.iter().cloned().zip(0..).collect();
        assert!(texts.iter().all(|t| fast.get(t.as_str()) == map.get(t)));
        let owned = String::from(Text::from("label".to_owned()));
        assert_eq!(owned, "label");
        assert_eq!(Text::default().as_str(), "");
    }
}
