//! Response examples for the OpenAPI document. Fixed ids and times keep the committed spec
//! stable; the simulation example is a real (deterministic) engine run of the request example.

use super::accounts::{MeResponse, SignupResponse, TenantView, TokenResponse, UserView};
use super::admin::{AdminTenantView, TierView};
use super::keys::{ApiKeyView, KeyStatus, NewApiKey};
use super::simulation_results::{SimulationResultView, SimulationView};
use super::simulation_views::{SimulationPage, SimulationRequest, SimulationSummary};
use super::usage::{DailyUsage, KeyUsage, PeriodView, UsageReport};
use crate::app::simulation_spec::to_spec;
use crate::domain::simulation::{SimulationInput, SimulationOutput};
use crate::domain::{ApiKeyId, Role, SimulationId, TenantId, TenantSlug, TenantStatus, UserId};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use poem_openapi::types::Example;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0)
        .single()
        .unwrap_or_default()
}

fn tenant_id() -> TenantId {
    TenantId::parse("ten_01a1fe67-63d8-714e-938a-1da86c597c0b").expect("valid example id")
}

fn user_id() -> UserId {
    UserId::parse("usr_01a1fe67-63d8-714e-938a-1da9ab5bc23d").expect("valid example id")
}

fn key_id() -> ApiKeyId {
    ApiKeyId::parse("key_01a1fe67-642f-7112-87cc-d8482d7474d3").expect("valid example id")
}

fn sim_id() -> SimulationId {
    SimulationId::parse("sim_01a1fe67-7476-751b-906b-4e351b40de94").expect("valid example id")
}

fn acme() -> TenantSlug {
    TenantSlug::parse("acme").expect("valid example slug")
}

impl Example for TenantView {
    fn example() -> Self {
        Self {
            id: tenant_id(),
            slug: acme(),
            name: "Acme Capital".into(),
            tier: "trial".into(),
            status: TenantStatus::Active,
            trial_ends_at: Some(at(30, 12)),
        }
    }
}

impl Example for UserView {
    fn example() -> Self {
        Self {
            id: user_id(),
            email: "ada@acme.example".into(),
            full_name: "Ada Lovelace".into(),
            role: Role::Owner,
            created_at: at(1, 12),
            active: None,
            two_factor_enabled: None,
            email_verified_at: Some(at(1, 13)),
        }
    }
}

impl Example for NewApiKey {
    fn example() -> Self {
        Self {
            id: key_id(),
            name: "default".into(),
            prefix: "mk_live_5Yupfv".into(),
            secret: "mk_live_5YupfvMHvvz8rkkrbuOuWL3GToIM".into(),
            created_at: at(1, 12),
            expires_at: Some(at(30, 12)),
        }
    }
}

/// An example refresh token (`mrt_` + 43 base64url characters).
pub const EXAMPLE_REFRESH: &str = "mrt_q4Jv0Z5m7X1sT9bW2yN8cK3pL6hD0fR4gU7eA1iO5zM";

const EXAMPLE_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c3JfLi4uIiwidGlkIjoidGVuXy4uLiIsInJvbGUiOiJvd25lciJ9.c2lnbmF0dXJl";

impl Example for SignupResponse {
    fn example() -> Self {
        let mut second = NewApiKey::example();
        second.id =
            ApiKeyId::parse("key_01a1fe67-6431-758a-89d4-18c2756397fb").expect("valid example id");
        second.name = "secondary".into();
        second.prefix = "mk_live_3x8SNK".into();
        second.secret = "mk_live_3x8SNKtZRQ52JZZonxEJot0kJIkH".into();
        Self {
            tenant: TenantView::example(),
            user: UserView::example(),
            access_token: EXAMPLE_TOKEN.into(),
            token_type: "Bearer".into(),
            expires_at: at(1, 12) + chrono::Duration::minutes(15),
            refresh_token: EXAMPLE_REFRESH.into(),
            api_keys: vec![NewApiKey::example(), second],
        }
    }
}

impl Example for TokenResponse {
    fn example() -> Self {
        Self {
            access_token: EXAMPLE_TOKEN.into(),
            token_type: "Bearer".into(),
            expires_at: at(2, 9) + chrono::Duration::minutes(15),
            refresh_token: EXAMPLE_REFRESH.into(),
            refresh_expires_at: at(2, 9) + chrono::Duration::days(30),
            session_id: crate::domain::SessionId::parse("ses_01a1fe6e-2f4c-7b0a-9c1e-5d2f8a7b6c40")
                .expect("valid example id"),
            two_factor_enrolment_required: false,
            user: UserView::example(),
        }
    }
}

impl Example for MeResponse {
    fn example() -> Self {
        Self {
            tenant: TenantView::example(),
            user: Some(UserView::example()),
            api_key_id: None,
        }
    }
}

impl Example for ApiKeyView {
    fn example() -> Self {
        Self {
            id: key_id(),
            name: "default".into(),
            prefix: "mk_live_5Yupfv".into(),
            status: KeyStatus::Active,
            created_at: at(1, 12),
            expires_at: Some(at(30, 12)),
            last_used_at: Some(at(2, 9)),
            revoked_at: None,
        }
    }
}

impl Example for SimulationView {
    fn example() -> Self {
        let request = SimulationRequest::example();
        let seed = request.seed.unwrap_or(42);
        let mut input = SimulationInput::from(request);
        input.seed = Some(seed);
        let result = to_spec(&input, seed)
            .ok()
            .and_then(|spec| engine::Simulation::new(spec).ok())
            .map(|sim| {
                let output = SimulationOutput {
                    result: sim.run(),
                    precision: None,
                    withdrawal_rates: None,
                };
                SimulationResultView::of(&input, &output)
            });
        Self {
            id: sim_id(),
            created_at: at(2, 9),
            duration_ms: 12.5,
            request: (&input).into(),
            result: result.expect("the request example is a valid simulation"),
        }
    }
}

impl Example for SimulationPage {
    fn example() -> Self {
        let sim = SimulationView::example();
        Self {
            items: vec![SimulationSummary {
                id: sim.id,
                created_at: sim.created_at,
                paths: sim.result.paths,
                steps: sim.result.steps,
                seed: sim.result.seed,
                terminal_p50: sim.result.terminal.percentiles.p50,
                terminal_mean: sim.result.terminal.mean,
            }],
            next_cursor: Some(sim_id()),
        }
    }
}

impl Example for UsageReport {
    fn example() -> Self {
        Self {
            period: PeriodView {
                period: "2026-11".into(),
                tier: "starter".into(),
                quota: Some(1000),
                used: 42,
                remaining: Some(958),
                overage: 0,
                resets_at: Utc
                    .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
                    .single()
                    .unwrap_or_default(),
            },
            days: 30,
            daily: vec![DailyUsage {
                date: NaiveDate::from_ymd_opt(2026, 11, 2).unwrap_or_default(),
                calls: 57,
                simulations: 42,
                errors: 3,
                units: 50_400_000,
            }],
            per_key: vec![KeyUsage {
                key_id: Some(key_id()),
                prefix: Some("mk_live_5Yupfv".into()),
                calls: 57,
                simulations: 42,
                units: 50_400_000,
                last_call_at: at(2, 17),
            }],
        }
    }
}

impl Example for AdminTenantView {
    fn example() -> Self {
        Self {
            id: tenant_id(),
            slug: acme(),
            name: "Acme Capital".into(),
            schema: "t_acme".into(),
            tier: "starter".into(),
            status: TenantStatus::Active,
            trial_ends_at: Some(at(30, 12)),
            overage_enabled: true,
            created_at: at(1, 12),
            deleted_at: None,
            purge_after: None,
        }
    }
}

impl Example for TierView {
    fn example() -> Self {
        Self {
            name: "starter".into(),
            display_name: "Starter".into(),
            price_cents_per_month: 9900,
            monthly_simulations: Some(1000),
            max_paths: 100_000,
            max_work: 500_000_000,
            burst_per_second: 5,
            burst_size: 10,
            max_concurrent_simulations: 2,
            max_api_keys: Some(10),
            overage_cents_per_simulation: Some(5),
        }
    }
}
