-- Background simulation jobs: a durable queue shared by every instance (FOR UPDATE SKIP LOCKED),
-- and batches of jobs. Rows carry their tenant and the principal that enqueued them, so a worker
-- runs a job in the same tenant context as the request would have.

CREATE TABLE platform.job_batches (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES platform.tenants (id) ON DELETE CASCADE,
    size        integer NOT NULL CHECK (size >= 1),
    created_at  timestamptz NOT NULL
);
CREATE INDEX job_batches_tenant ON platform.job_batches (tenant_id);

CREATE TABLE platform.jobs (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES platform.tenants (id) ON DELETE CASCADE,
    batch_id          uuid REFERENCES platform.job_batches (id) ON DELETE CASCADE,
    principal_kind    text NOT NULL CHECK (principal_kind IN ('api_key', 'user')),
    principal_id      uuid NOT NULL,
    principal_role    text,
    request           jsonb NOT NULL,          -- the stored SimulationInput, seed fixed at enqueue
    work              bigint NOT NULL CHECK (work >= 0),
    status            text NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      integer NOT NULL CHECK (max_attempts >= 1),
    not_before        timestamptz NOT NULL,    -- retry back-off
    lease_owner       uuid,                    -- the worker holding the job while running
    lease_until       timestamptz,             -- visibility timeout, extended by heartbeats
    progress          double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    cancel_requested  boolean NOT NULL DEFAULT false,
    charged_at        timestamptz,             -- the monthly quota was charged (once per job)
    charged_overage   boolean NOT NULL DEFAULT false,
    simulation_id     uuid,
    problem           jsonb,
    created_at        timestamptz NOT NULL,
    started_at        timestamptz,
    finished_at       timestamptz,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX jobs_queued ON platform.jobs (not_before, created_at, id) WHERE status = 'queued';
CREATE INDEX jobs_running ON platform.jobs (tenant_id, lease_until) WHERE status = 'running';
CREATE INDEX jobs_tenant_page ON platform.jobs (tenant_id, created_at DESC, id DESC);
CREATE INDEX jobs_tenant_started ON platform.jobs (tenant_id, started_at DESC);
CREATE INDEX jobs_batch ON platform.jobs (batch_id) WHERE batch_id IS NOT NULL;

-- A cancel request reaches the instance running the job at once.
CREATE FUNCTION platform.notify_job_cancel() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('job_cancel', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_cancel_requested
AFTER UPDATE OF cancel_requested ON platform.jobs
FOR EACH ROW WHEN (NEW.cancel_requested AND NOT OLD.cancel_requested AND NEW.status = 'running')
EXECUTE FUNCTION platform.notify_job_cancel();

-- Idle workers on every instance wake when a job is queued.
CREATE FUNCTION platform.notify_job_queued() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('job_queued', '');
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_queued
AFTER INSERT ON platform.jobs
FOR EACH STATEMENT EXECUTE FUNCTION platform.notify_job_queued();
