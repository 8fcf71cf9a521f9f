-- The roles gamenight's services connect as, so that none of them holds the
-- superuser the postgres image creates (POSTGRES_USER, which owns the
-- schema and runs the migrations):
--   gamenight_app      api, worker, bot: reads and writes rows, nothing else
--                      (no CREATE, ALTER or DROP, not even of its own);
--   gamenight_monitor  Alloy's postgres exporter: pg_monitor, no table data.
--
-- docker-compose.base.yml mounts it into /docker-entrypoint-initdb.d, which
-- the postgres image runs once, as POSTGRES_USER on POSTGRES_DB, when it
-- initialises an empty data directory. On a volume initialised before, run
-- it by hand once (README, "Quick start with Docker"):
--   docker compose exec postgres psql -U gamenight -d gamenight -f /docker-entrypoint-initdb.d/10-roles.sql
--
-- Passwords come from the container's environment (psql's \getenv), never
-- from this file. The role names can be changed with psql variables
-- (-v app_role=… -v monitor_role=…), as the tests do.

\set ON_ERROR_STOP on

\getenv app_password POSTGRES_APP_PASSWORD
\getenv monitor_password POSTGRES_MONITOR_PASSWORD
\if :{?app_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'POSTGRES_APP_PASSWORD is not set'; END $$;
\endif
\if :{?monitor_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'POSTGRES_MONITOR_PASSWORD is not set'; END $$;
\endif
\if :{?app_role}
\else
  \set app_role gamenight_app
\endif
\if :{?monitor_role}
\else
  \set monitor_role gamenight_monitor
\endif

SELECT current_database() AS database \gset

CREATE ROLE :"app_role" LOGIN PASSWORD :'app_password';
CREATE ROLE :"monitor_role" LOGIN PASSWORD :'monitor_password';

GRANT CONNECT ON DATABASE :"database" TO :"app_role", :"monitor_role";
GRANT USAGE ON SCHEMA public TO :"app_role";
-- The tables and sequences the migrations will create (they run as the
-- role running this script): rows only.
ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";

-- Statistics views and functions, no table data.
GRANT pg_monitor TO :"monitor_role";
