-- Bootstrap statements run by the embedded server manager and the test fixtures as a role that
-- may create roles/databases. Utility statements take no bind parameters, so {name}
-- placeholders are filled by psycopg.sql.Identifier / psycopg.sql.Literal (never by string
-- formatting); %(name)s placeholders are ordinary bind parameters.

-- name: role_exists
SELECT 1 AS present FROM pg_roles WHERE rolname = %(role)s;

-- name: create_role
-- {password} is a SCRAM-SHA-256 verifier computed by the client: the plaintext password never
-- reaches the server, so it cannot show up in the server log.
CREATE ROLE {role} LOGIN PASSWORD {password};

-- name: set_role_password
ALTER ROLE {role} PASSWORD {password};

-- name: database_exists
SELECT 1 AS present FROM pg_database WHERE datname = %(name)s;

-- name: create_database
CREATE DATABASE {name} OWNER {owner};

-- name: create_database_from_template
CREATE DATABASE {name} TEMPLATE {template} OWNER {owner};

-- name: drop_database
DROP DATABASE IF EXISTS {name} WITH (FORCE);

-- name: current_user
SELECT current_user AS name;
