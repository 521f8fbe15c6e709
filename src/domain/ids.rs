//! Typed, prefixed identifiers. On the wire an id is `<prefix>_<uuid>` (e.g.
//! `sim_0192…`), so an id of one kind can never be passed where another is expected.

/// Declares a typed id around a UUIDv7 with a wire prefix.
macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// Wire prefix, e.g. `sim`.
            pub const PREFIX: &'static str = $prefix;

            /// A new time-ordered (v7) id.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            /// Wraps a UUID read from the database.
            pub fn from_uuid(id: uuid::Uuid) -> Self {
                Self(id)
            }

            /// The underlying UUID (for binding in queries).
            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }

            /// Parses `<prefix>_<uuid>`.
            ///
            /// # Errors
            /// A message naming the expected form when the prefix or UUID is wrong.
            pub fn parse(s: &str) -> Result<Self, String> {
                let rest = s
                    .strip_prefix(concat!($prefix, "_"))
                    .ok_or_else(|| format!("expected an id of the form {}_<uuid>, got {:?}", $prefix, s))?;
                uuid::Uuid::parse_str(rest)
                    .map(Self)
                    .map_err(|_| format!("expected an id of the form {}_<uuid>, got {:?}", $prefix, s))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}_{}", $prefix, self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// A tenant organisation.
    TenantId,
    "ten"
);
typed_id!(
    /// A named platform administrator (`platform.admins`).
    AdminId,
    "adm"
);
typed_id!(
    /// A user inside a tenant.
    UserId,
    "usr"
);
typed_id!(
    /// An API key inside a tenant.
    ApiKeyId,
    "key"
);
typed_id!(
    /// A stored simulation result inside a tenant.
    SimulationId,
    "sim"
);
typed_id!(
    /// A background simulation job.
    JobId,
    "job"
);
typed_id!(
    /// A signed-in session (one refresh-token family) of a user; the access token's `sid`.
    SessionId,
    "ses"
);
typed_id!(
    /// A batch of background simulation jobs.
    BatchId,
    "bat"
);
typed_id!(
    /// An invitation to join a tenant.
    InvitationId,
    "inv"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_prefixes() {
        let id = SimulationId::new();
        assert_eq!(SimulationId::parse(&id.to_string()), Ok(id));
        assert!(ApiKeyId::parse(&id.to_string()).is_err());
        assert!(SimulationId::parse("sim_not-a-uuid").is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<SimulationId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<UserId>(&json).is_err());
    }
}
