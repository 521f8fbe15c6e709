//! Tags grouping the operations in the docs.

use poem_openapi::Tags;

/// Tags grouping the operations in the docs.
#[derive(Tags)]
pub enum ApiTags {
    /// Sign up an organisation, sign in, and see who you are.
    Accounts,
    /// Refresh, sign out, sessions, two-factor authentication.
    Sessions,
    /// Users of a tenant (owner/admin manage them), roles, ownership, the team's rules.
    Users,
    /// The tenant's audit log (owner/admin).
    Audit,
    /// API keys of a tenant (owner/admin manage them).
    Keys,
    /// Run and read correlated Monte Carlo portfolio simulations.
    Simulations,
    /// Background simulation jobs and batches: progress, events, cancel.
    Jobs,
    /// Usage records and the current quota period.
    Usage,
    /// Subscriptions and invoices (Stripe); owner or admin.
    Billing,
    /// Platform administration: tenants and tiers.
    Admin,
    /// Liveness and readiness.
    Health,
}
