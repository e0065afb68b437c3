#!/bin/bash
# Creates the application role and the five databases of the stack, the saga store and one
# per participant service, each owned by that role. The postgres image runs the scripts in
# /docker-entrypoint-initdb.d only when it initialises an empty data directory, so changing
# this file or the variables below has no effect on an existing volume.
set -euo pipefail

: "${APP_DB_USER:?APP_DB_USER must name the role the services log in as}"
: "${APP_DB_PASSWORD:?APP_DB_PASSWORD must set the password of that role}"

databases=(saga_store patient therapist matching communication)

# psql's :"name" and :'value' interpolation quotes the identifier and the literal, so user
# names and passwords with quotes or spaces cannot break the statements.
psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=app_user="$APP_DB_USER" --set=app_password="$APP_DB_PASSWORD" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
SQL

for database in "${databases[@]}"; do
    psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        --set=database="$database" --set=app_user="$APP_DB_USER" <<'SQL'
CREATE DATABASE :"database" OWNER :"app_user";
SQL
    echo "init-databases: created database ${database} owned by ${APP_DB_USER}"
done
