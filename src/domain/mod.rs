//! Domain types: values with rules get a newtype with a private field and a fallible
//! constructor ("parse, don't validate"). Once built, a value is valid everywhere.

pub mod api_key;
pub mod ids;
pub mod slug;
pub mod user;

pub use api_key::{ApiKeySecret, GeneratedKey};
pub use ids::{ApiKeyId, SimulationId, TenantId, UserId};
pub use slug::{SchemaName, TenantSlug};
pub use user::{Email, Password, Role};
