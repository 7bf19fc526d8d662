//! Access control, decided in one layer in front of every service: who is calling (a bearer
//! token, or the local administrator when the server runs without principals on loopback),
//! and whether its role and access level allow the method. Handlers never see a request that
//! was refused; they find the [`Caller`] in the request's extensions and shape their answer
//! by its level through [`Caller::min_cell_count`] and [`Caller::level`]. Every refusal is
//! written to the audit log.

pub mod disclosure;
pub mod principals;

use std::sync::Arc;

use casereg_core::audit::Actor;
use casereg_core::ids::CenterId;
use casereg_proto::v1 as pb;
use tonic::Status;

use crate::access::principals::{Level, Principal, Principals, Role};

/// How callers are identified.
#[derive(Debug, Clone)]
pub enum Access {
    /// No principals configured: every caller is this administrator (loopback only).
    Local(Arc<Principal>),
    /// Callers present a bearer token of one of these principals.
    Tokens(Arc<Principals>),
}

impl Access {
    /// Without principals: everyone is the local administrator of `center`.
    pub fn local(center: CenterId) -> Self {
        Self::Local(Arc::new(Principal::local_admin(center)))
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Principal>);

impl Caller {
    /// The caller the access layer put on `request`. Its absence is a server bug (a service
    /// mounted without the layer), answered as INTERNAL rather than served unchecked.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Self, Status> {
        request
            .extensions()
            .get::<Self>()
            .cloned()
            .ok_or_else(|| Status::internal("request reached a handler without access control"))
    }

    /// Who writes, as the store records it.
    pub fn actor(&self) -> Actor {
        Actor {
            principal: self.0.name.clone(),
            center: self.0.center.clone(),
            any_center: self.0.role == Role::Admin,
        }
    }

    /// The caller's access level.
    pub fn level(&self) -> Level {
        self.0.level
    }

    /// The small-count threshold for this caller: none (0) at record level, the server's
    /// `k` below it.
    pub fn min_cell_count(&self, k: u64) -> u64 {
        if self.0.level == Level::Record { 0 } else { k }
    }

    /// The wire form (for GetRegistryInfo).
    pub fn info(&self) -> pb::CallerInfo {
        let level = match self.0.level {
            Level::Record => pb::AccessLevel::Record,
            Level::Count => pb::AccessLevel::Count,
            Level::Boolean => pb::AccessLevel::Boolean,
        };
        pb::CallerInfo {
            principal: self.0.name.clone(),
            center_id: self.0.center.to_string(),
            role: self.0.role.as_str().to_owned(),
            level: level.into(),
        }
    }
}

/// What a method asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: health checks and reflection carry no data.
    Open,
    /// An authenticated caller with at least this level.
    Level(Level),
    /// A curator or an administrator (the store then checks the case's center).
    Write,
    /// An administrator.
    Admin,
}

/// The table of every method and what it needs; `None` for a method not in it (refused to
/// all but administrators, so a method added without an entry is never open by mistake).
pub fn need(method: &str) -> Option<Need> {
    let (service, call) = method.split_once('/')?;
    Some(match (service, call) {
        ("grpc.health.v1.Health", _)
        | ("grpc.reflection.v1.ServerReflection", _)
        | ("grpc.reflection.v1alpha.ServerReflection", _) => Need::Open,
        ("casereg.v1.CaseRegistry", "CreateCase" | "UpdateCase" | "DeleteCase" | "ImportCases") => {
            Need::Write
        }
        ("casereg.v1.CaseRegistry", "GetCase" | "ListCases" | "SearchCases" | "ExportCases") => {
            Need::Level(Level::Record)
        }
        ("casereg.v1.CaseRegistry", "Aggregate" | "CoOccurrence") => Need::Level(Level::Count),
        ("casereg.v1.CaseRegistry", "CountCases" | "GetRegistryInfo") => {
            Need::Level(Level::Boolean)
        }
        ("casereg.v1.Ontology", "GetTerm" | "SearchTerms" | "GetAncestors" | "GetDescendants") => {
            Need::Level(Level::Boolean)
        }
        ("casereg.v1.Audit", "ListAuditEntries") => Need::Admin,
        ("casereg.v1.Network", "NetworkCount") => Need::Level(Level::Boolean),
        ("casereg.v1.Network", "NetworkAggregate" | "NetworkCoOccurrence") => {
            Need::Level(Level::Count)
        }
        ("casereg.v1.Network", "NetworkSearch") => Need::Level(Level::Boolean),
        _ => return None,
    })
}

/// Why `principal` may not call a method that needs `need`, if it may not.
pub(crate) fn refusal(principal: &Principal, need: Option<Need>) -> Option<String> {
    let role = principal.role;
    match need.unwrap_or(Need::Admin) {
        Need::Open => None,
        Need::Level(level) if principal.level >= level => None,
        Need::Level(level) => Some(format!(
            "needs {} access; {:?} has {} access",
            level.as_str(),
            principal.name,
            principal.level.as_str()
        )),
        Need::Write if role.writes() => None,
        Need::Write => Some(format!(
            "writes are for curators and administrators; {:?} is a {}",
            principal.name,
            role.as_str()
        )),
        Need::Admin if role == Role::Admin => None,
        Need::Admin => Some(format!(
            "is for administrators; {:?} is a {}",
            principal.name,
            role.as_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_the_contract_has_an_entry() {
        let pool = prost_reflect::DescriptorPool::decode(casereg_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let mut methods = 0;
        for service in pool.services() {
            for method in service.methods() {
                let path = format!("{}/{}", service.full_name(), method.name());
                assert!(need(&path).is_some(), "{path} has no access rule");
                methods += 1;
            }
        }
        assert!(methods >= 17, "only {methods} methods found");
        assert_eq!(need("casereg.v1.CaseRegistry/DropEverything"), None);
        assert_eq!(need("grpc.health.v1.Health/Check"), Some(Need::Open));
    }

    fn principal(role: Role, level: Level) -> Principal {
        let mut p = Principal::local_admin(CenterId::parse("c").expect("center"));
        p.role = role;
        p.level = level;
        p
    }

    #[test]
    fn roles_and_levels_open_what_they_should() {
        let admin = principal(Role::Admin, Level::Record);
        let curator = principal(Role::Curator, Level::Record);
        let reader = principal(Role::Reader, Level::Record);
        let counter = principal(Role::Peer, Level::Count);
        let boolean = principal(Role::Reader, Level::Boolean);
        let write = Some(Need::Write);
        let records = Some(Need::Level(Level::Record));
        let counts = Some(Need::Level(Level::Count));
        let exists = Some(Need::Level(Level::Boolean));
        let admin_only = Some(Need::Admin);
        let allowed = |p: &Principal, n| refusal(p, n).is_none();
        assert!(
            [write, records, counts, exists, admin_only, None]
                .iter()
                .all(|n| allowed(&admin, *n))
        );
        assert!(
            allowed(&curator, write)
                && allowed(&curator, records)
                && !allowed(&curator, admin_only)
        );
        assert!(!allowed(&reader, write) && allowed(&reader, records) && !allowed(&reader, None));
        assert!(
            !allowed(&counter, records) && allowed(&counter, counts) && allowed(&counter, exists)
        );
        assert!(!allowed(&boolean, counts) && allowed(&boolean, exists));
    }
}
