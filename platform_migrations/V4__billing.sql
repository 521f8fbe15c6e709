-- Billing with Stripe (issue 10). Platform V3 is taken by the background-jobs work.
-- Runs with search_path = platform.

-- The Stripe price (or legacy plan: Stripe accepts a plan id wherever a price id goes) each paid
-- tier is sold at; written by `montecarlo-platform billing sync-catalog`.
ALTER TABLE platform.tiers ADD COLUMN stripe_price_id text UNIQUE;

-- One row per tenant that took a billing action: its Stripe customer, its subscription as last
-- applied, and its billing state. The tier itself stays on platform.tenants (its trigger tells
-- every instance).
CREATE TABLE platform.billing_accounts (
    tenant_id              uuid PRIMARY KEY REFERENCES platform.tenants (id) ON DELETE CASCADE,
    stripe_customer_id     text UNIQUE,
    subscription_id        text,
    subscription_status    text,           -- Stripe's spelling (active, past_due, canceled, …)
    subscribed_tier        text REFERENCES platform.tiers (name),
    current_period_start   timestamptz,
    current_period_end     timestamptz,
    cancel_at_period_end   boolean NOT NULL DEFAULT false,
    billing_status         text NOT NULL DEFAULT 'trial'
        CHECK (billing_status IN ('trial', 'pending_payment', 'active', 'past_due', 'suspended', 'cancelled')),
    grace_until            timestamptz,    -- past_due: the paid tier is kept until then
    -- `created` of the newest Stripe event applied to the subscription state: older events
    -- arriving later are recorded and ignored.
    state_event_at         timestamptz,
    state_event_id         text,
    updated_at             timestamptz NOT NULL
);

-- Every Stripe event processed, written in the same transaction as its effect: a redelivered
-- event finds its id here and changes nothing.
CREATE TABLE platform.stripe_events (
    event_id      text PRIMARY KEY,
    type          text NOT NULL,
    created       timestamptz NOT NULL,
    tenant_id     uuid,
    outcome       text NOT NULL,           -- what the event did (applied, stale, ignored: …)
    processed_at  timestamptz NOT NULL
);

-- Overage billed: one invoice item per (tenant, quota period), never two.
CREATE TABLE platform.billing_overage (
    tenant_id      uuid NOT NULL REFERENCES platform.tenants (id) ON DELETE CASCADE,
    period         text NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'),
    simulations    bigint NOT NULL CHECK (simulations >= 0),
    amount_cents   bigint NOT NULL CHECK (amount_cents >= 0),
    invoice_id     text NOT NULL,
    invoice_item_id text,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, period)
);

-- Billing transitions, platform-wide (the tenant's own audit_log lives in its schema).
CREATE TABLE platform.billing_audit (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES platform.tenants (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    from_status text NOT NULL,
    to_status   text NOT NULL,
    tier        text NOT NULL,
    from_tier   text,                      -- plan changes (from_status = to_status): the tier before
    event_id    text
);
