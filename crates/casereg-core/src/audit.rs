//! The audit log: every write to a case and every refused request, who made it and when.
//!
//! Entries live in the store's `audit` tree under a sequence number that only grows. A
//! write's entry is part of the write's own transaction, so a change is never stored
//! without its entry (nor an entry without its change). Nothing in the store removes or
//! rewrites an entry, and no call of the service does either.

use crate::case::UnixMicros;
use crate::ids::{CaseId, CenterId};

/// Who is writing: the authenticated principal and the center it acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The principal's name (from the principals file; `local` when no principals are
    /// configured).
    pub principal: String,
    /// The center whose cases it creates, and the only center whose cases it may change
    /// unless `any_center`.
    pub center: CenterId,
    /// May change the cases of every center (administrators).
    pub any_center: bool,
}

impl Actor {
    /// Whether this actor may change a case owned by `owner`.
    pub fn may_change(&self, owner: &CenterId) -> bool {
        self.any_center || &self.center == owner
    }
}

/// How a request ended, as the audit log records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Outcome {
    /// Unreadable or from a newer version.
    Unspecified = 0,
    /// The write was applied.
    Applied = 1,
    /// The write was accepted but changed nothing (the same record again).
    Unchanged = 2,
    /// The write was refused by the store (version conflict, retracted case, ...).
    Failed = 3,
    /// The request was refused by access control before it could do anything.
    Denied = 4,
}

impl Outcome {
    /// The lower-case name used in logs and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Applied => "applied",
            Self::Unchanged => "unchanged",
            Self::Failed => "failed",
            Self::Denied => "denied",
        }
    }
}

/// One entry of the audit log (also its on-disk form: a protobuf message, so fields can be
/// added compatibly).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AuditEntry {
    /// Position in the log, from 1, without gaps.
    #[prost(uint64, tag = "1")]
    pub sequence: u64,
    /// When, in microseconds since the Unix epoch (server clock).
    #[prost(int64, tag = "2")]
    pub at_micros: i64,
    /// The principal's name; empty when the caller presented no valid token.
    #[prost(string, tag = "3")]
    pub principal: String,
    /// The principal's center; empty when unknown.
    #[prost(string, tag = "4")]
    pub center: String,
    /// The gRPC method, e.g. `casereg.v1.CaseRegistry/UpdateCase`.
    #[prost(string, tag = "5")]
    pub call: String,
    /// The case concerned, when there is one.
    #[prost(string, tag = "6")]
    pub case_id: String,
    /// The case's version after the write (0 when nothing was written).
    #[prost(uint64, tag = "7")]
    pub version: u64,
    /// How it ended (`outcome()` reads it as an [`Outcome`]; unknown numbers as
    /// unspecified).
    #[prost(enumeration = "Outcome", tag = "8")]
    pub outcome: i32,
    /// What happened, in words (`created`, `retracted: entered twice`, the refusal reason).
    #[prost(string, tag = "9")]
    pub detail: String,
}

impl AuditEntry {
    /// An entry not yet numbered (the store gives the sequence number when it appends).
    pub fn new(
        at: UnixMicros,
        principal: &str,
        center: Option<&CenterId>,
        call: &str,
        outcome: Outcome,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            sequence: 0,
            at_micros: at.0,
            principal: principal.to_owned(),
            center: center.map(ToString::to_string).unwrap_or_default(),
            call: call.to_owned(),
            case_id: String::new(),
            version: 0,
            outcome: outcome as i32,
            detail: detail.into(),
        }
    }

    /// The entry of a write by `actor`.
    pub fn of_write(
        actor: &Actor,
        at: UnixMicros,
        call: &str,
        outcome: Outcome,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(
            at,
            &actor.principal,
            Some(&actor.center),
            call,
            outcome,
            detail,
        )
    }

    /// The same entry about `case` at `version`.
    pub fn on_case(mut self, case: &CaseId, version: u64) -> Self {
        self.case_id = case.to_string();
        self.version = version;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn center(name: &str) -> CenterId {
        CenterId::parse(name).expect("center")
    }

    #[test]
    fn only_administrators_change_other_centers_cases() {
        let curator = Actor {
            principal: "ana".to_owned(),
            center: center("a"),
            any_center: false,
        };
        assert!(curator.may_change(&center("a")));
        assert!(!curator.may_change(&center("b")));
        let admin = Actor {
            any_center: true,
            ..curator
        };
        assert!(admin.may_change(&center("b")));
    }

    #[test]
    fn an_entry_round_trips_through_its_encoding() {
        use prost::Message as _;
        let actor = Actor {
            principal: "ana".to_owned(),
            center: center("a"),
            any_center: false,
        };
        let id = CaseId::derive(
            &center("a"),
            &crate::ids::ExternalId::parse("p1").expect("id"),
        );
        let entry = AuditEntry::of_write(
            &actor,
            UnixMicros(7),
            "casereg.v1.CaseRegistry/CreateCase",
            Outcome::Applied,
            "created",
        )
        .on_case(&id, 1);
        let decoded = AuditEntry::decode(entry.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(decoded, entry);
        assert_eq!(decoded.outcome(), Outcome::Applied);
        assert_eq!(decoded.center, "a");
    }
}
