#!/usr/bin/env bash
# PostgreSQL container init (mounted into /docker-entrypoint-initdb.d/ by docker-compose.yml).
# Runs ONCE, when the container initialises an empty data volume; change passwords later with
# ALTER ROLE. Creates the service's two roles (see README, "Production settings"):
#   montecarlo_owner  owns the database; the service migrates, provisions tenants and grants
#                     as it (DATABASE_URL). Not a superuser, cannot create roles or databases.
#   montecarlo_app    owns nothing; every request runs as it (DATABASE_APP_URL). The service
#                     grants it, at start-up and per tenant, exactly what the request path needs.
# and keeps every other role (PUBLIC) out of the database.
set -euo pipefail
: "${POSTGRES_USER:?}" "${POSTGRES_DB:?}"
: "${DATABASE_OWNER_PASSWORD:?set DATABASE_OWNER_PASSWORD}"
: "${DATABASE_APP_PASSWORD:?set DATABASE_APP_PASSWORD}"

# Values travel as psql variables (:'x' quotes a literal, :"x" an identifier), never spliced.
psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=db="$POSTGRES_DB" \
  --set=owner_password="$DATABASE_OWNER_PASSWORD" \
  --set=app_password="$DATABASE_APP_PASSWORD" <<'SQL'
CREATE ROLE montecarlo_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';
CREATE ROLE montecarlo_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS
    PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO montecarlo_owner;
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO montecarlo_app;
SQL
