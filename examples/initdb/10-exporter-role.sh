#!/bin/sh
# Runs once when the compose PostgreSQL initialises its data directory (after
# 01-schema.sql and 02-sample-data.sql): a login role for the exporter that
# can only read the two tables the plans query needs. Its password comes from
# a secret file, never from the compose file.
set -eu
password=$(cat /run/secrets/exporter_db_password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v pw="$password" <<'SQL'
CREATE ROLE billing_exporter LOGIN PASSWORD :'pw';
GRANT SELECT ON plans, tenants TO billing_exporter;
SQL
