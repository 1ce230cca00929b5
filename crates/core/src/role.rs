//! Roles of API keys and what each may do (API.md, "Authentication and roles").

/// One role per key. `Admin` may do everything in its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Settings, providers, credentials, API keys, webhooks, audit, and all agent rights.
    Admin,
    /// Verifications, deliveries, users, challenges, caller verifications; reads settings.
    Agent,
    /// Only inbound provider callbacks.
    Webhook,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Agent => "agent",
            Self::Webhook => "webhook",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "agent" => Some(Self::Agent),
            "webhook" => Some(Self::Webhook),
            _ => None,
        }
    }

    /// Whether this role includes every right of `needed`.
    pub fn grants(self, needed: Role) -> bool {
        matches!((self, needed), (Self::Admin, _) | (Self::Agent, Self::Agent) | (Self::Webhook, Self::Webhook))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_includes_every_role_and_others_only_their_own() {
        assert!(Role::Admin.grants(Role::Agent));
        assert!(Role::Admin.grants(Role::Admin));
        assert!(Role::Admin.grants(Role::Webhook));
        assert!(!Role::Agent.grants(Role::Webhook));
        assert!(!Role::Agent.grants(Role::Admin));
        assert!(!Role::Webhook.grants(Role::Agent));
        assert!(Role::Webhook.grants(Role::Webhook));
    }

    #[test]
    fn names_round_trip() {
        for role in [Role::Admin, Role::Agent, Role::Webhook] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
