// Typed usage of the generated `paths` (openapi-typescript): the README walkthrough written
// as a consumer would. Only type-checked (`tsc --noEmit`), never run: if the spec changes in a
// way that breaks a client, this stops compiling.
import type { paths, components } from "./api";

// ---- helpers a consumer writes (same idea as openapi-typescript-helpers' SuccessResponseJSON)
type Json = "application/json";
type Body<Op> = Op extends { requestBody: { content: { [K in Json]: infer B } } } ? B
  : Op extends { requestBody?: { content: { [K in Json]: infer B } } } ? B : never;
type Ok<Op, S extends number> =
  Op extends { responses: { [K in S]: { content: { [K2 in Json]: infer R } } } } ? R : never;
type HeaderParams<Op> = Op extends { parameters: { header?: infer H } } ? NonNullable<H> : never;
type QueryParams<Op> = Op extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

type Signup = paths["/api/v1/signup"]["post"];
type Login = paths["/api/v1/auth/login"]["post"];
type Me = paths["/api/v1/auth/me"]["get"];
type CreateKey = paths["/api/v1/keys"]["post"];
type CreateSim = paths["/api/v1/simulations"]["post"];
type ListSims = paths["/api/v1/simulations"]["get"];
type GetSim = paths["/api/v1/simulations/{id}"]["get"];
type Usage = paths["/api/v1/usage"]["get"];

declare function call<R>(method: string, path: string, init: { headers?: object; query?: object; body?: unknown }): R;

const slug = "acme-1234";

// 1. signup
const signupBody: Body<Signup> = {
  organisation_name: "Acme Capital", slug,
  full_name: "Ada Lovelace", email: "ada@acme.example", password: "correct horse battery",
};
const signup = call<Ok<Signup, 201>>("POST", "/api/v1/signup", { body: signupBody });
const key: string = signup.api_keys[0].secret;

// 2. login with the tenant named by X-Tenant-ID (a declared header parameter)
const loginHeaders: HeaderParams<Login> = { "X-Tenant-ID": slug };
const token = call<Ok<Login, 200>>("POST", "/api/v1/auth/login", {
  headers: loginHeaders, body: { email: "ada@acme.example", password: "correct horse battery" } satisfies Body<Login>,
});
const access: string = token.access_token;

// 3. me, with the token (user present) and with the key (user absent: optional, not null)
const meHeaders: HeaderParams<Me> = { "X-Tenant-ID": slug };
const me = call<Ok<Me, 200>>("GET", "/api/v1/auth/me", { headers: { ...meHeaders, Authorization: `Bearer ${access}` } });
const email: string | undefined = me.user?.email;

// 4. create a key
const newKey = call<Ok<CreateKey, 201>>("POST", "/api/v1/keys", { body: { name: "ci" } satisfies Body<CreateKey> });
const secret: string = newKey.secret;

// 5. GBM simulation: only the fields we care about; defaults are optional in the REQUEST
const gbm: Body<CreateSim> = {
  assets: [
    { name: "Equities", weight: 0.6, drift: 0.07, volatility: 0.16 },
    { name: "Bonds", weight: 0.4, drift: 0.03, volatility: 0.06 },
  ],
  correlation: [[1.0, 0.2], [0.2, 1.0]],
  initial_value: 100000, horizon_years: 20,
};
const simHeaders: HeaderParams<CreateSim> = { "X-Tenant-ID": slug, "Idempotency-Key": "3f7c0b7e-2d1e-4c55-9d6e-1b2f3a4c5d6e" };
const sim = call<Ok<CreateSim, 201>>("POST", "/api/v1/simulations", { headers: { ...simHeaders, "X-API-Key": key }, body: gbm });
// ...and the echo shows the defaults that were applied: required in the RESPONSE
const steps: number = sim.request.steps_per_year;
const paths_: number = sim.request.paths;
const p50: number = sim.result.terminal.percentiles.p50;

// 6. bootstrap on the bundled history
const boot: Body<CreateSim> = {
  assets: [{ name: "US stocks", weight: 0.6 }, { name: "US bonds", weight: 0.4 }],
  initial_value: 100000, horizon_years: 30, steps_per_year: 12, paths: 5000,
  model: { type: "bootstrap", history: "shiller_us_monthly", block_length: 12 },
  rebalancing: "annually",
};
call<Ok<CreateSim, 201>>("POST", "/api/v1/simulations", { headers: { "X-API-Key": secret }, body: boot });

// 6b. a retirement plan: unions by `type`; the echo shows every guardrail parameter applied
const plan: Body<CreateSim> = {
  assets: [
    { name: "Stocks", weight: 0.6, drift: 0.07, volatility: 0.16, expense_ratio: 0.0005 },
    { name: "Bonds", weight: 0.4, drift: 0.03, volatility: 0.06 },
  ],
  initial_value: 1000000, horizon_years: 30, steps_per_year: 1, paths: 2000,
  rebalancing: "annually",
  withdrawal: { type: "guardrails", initial_rate: 0.05 },
  inflation: { type: "constant", rate: 0.025 },
  sampling: { type: "rqmc", scramblings: 8 },
  withdrawal_rates: { success_probability: 0.95 },
};
const planned = call<Ok<CreateSim, 201>>("POST", "/api/v1/simulations", { headers: { "X-API-Key": key }, body: plan });
const w = planned.request.withdrawal;
const noCut: number | undefined = w?.type === "guardrails" ? w.no_cut_final_years : undefined;
const safeRate: number | undefined = planned.result.withdrawal_rates?.safe.rate;
const successLower: number | undefined = planned.result.risk.success_rate_interval?.lower;
const realYear30: number | undefined = planned.result.withdrawals?.yearly_real?.[29]?.percentiles.p50;
const startMonth: string | undefined = planned.result.cohorts?.cohorts[0]?.start_month;

// 7. get, list with the cursor, usage
const got = call<Ok<GetSim, 200>>("GET", `/api/v1/simulations/${sim.id}`, {});
const q: QueryParams<ListSims> = { limit: 1 };
let page = call<Ok<ListSims, 200>>("GET", "/api/v1/simulations", { query: q });
while (page.next_cursor !== undefined) {
  page = call<Ok<ListSims, 200>>("GET", "/api/v1/simulations", { query: { ...q, cursor: page.next_cursor } satisfies QueryParams<ListSims> });
}
const usage = call<Ok<Usage, 200>>("GET", "/api/v1/usage", {});
const remaining: number | undefined = usage.period.remaining;

// 8. errors are problem+json
type Problem = components["schemas"]["Problem"];
const status: number = ({} as Problem).status;

export { email, steps, paths_, p50, got, remaining, status };
