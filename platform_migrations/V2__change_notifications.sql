-- Every change of a tenant or a tier is announced to every instance (LISTEN in each), whoever
-- made it: the admin API, a billing webhook, or an operator with psql. Delivered on commit.

CREATE FUNCTION platform.notify_tenant_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tenant_changed', OLD.id::text);
    ELSE
        PERFORM pg_notify('tenant_changed', NEW.id::text);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tenants_changed
AFTER INSERT OR UPDATE OR DELETE ON platform.tenants
FOR EACH ROW EXECUTE FUNCTION platform.notify_tenant_changed();

CREATE FUNCTION platform.notify_tiers_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tiers_changed', '');
    RETURN NULL;
END $$;

CREATE TRIGGER tiers_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON platform.tiers
FOR EACH STATEMENT EXECUTE FUNCTION platform.notify_tiers_changed();
