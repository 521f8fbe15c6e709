//! Domain types: values with rules get a newtype with a private field and a fallible
//! constructor ("parse, don't validate"). Once built, a value is valid everywhere. Nothing here
//! does I/O or knows of HTTP.

pub mod api_key;
pub mod client;
pub mod ids;
pub mod job;
pub mod one_time_token;
pub mod simulation;
pub mod slug;
pub mod tenant;
pub mod text;
pub mod tier;
pub mod user;

pub use api_key::{ApiKeySecret, GeneratedKey};
pub use client::Client;
pub use ids::{
    AdminId, ApiKeyId, BatchId, InvitationId, JobId, SessionId, SimulationId, TenantId, UserId,
};
pub use one_time_token::OneTimeToken;
pub use slug::{SchemaName, TenantSlug};
pub use tenant::{Principal, Tenant, TenantStatus};
pub use text::{DisplayName, KeyName};
pub use tier::{Tier, TierCatalog};
pub use user::{Email, Password, Role};
