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

-- name: grant_instructor_powers
-- The embedded server's app role (the instructor's): it may see every session's state and end a
-- student's session that holds the run up (the coordinator's watchdog, queries.sql
-- end_stuck_student_sessions), and it may use the connection slots kept from students
-- (reserved_connections).
GRANT pg_read_all_stats, pg_signal_backend, pg_use_reserved_connections TO {role};

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

-- ===================================================================== students
-- Run by the instructor's role (it needs CREATEROLE) or, on the embedded server, its superuser.
-- {group} is the class's group role, "<database>_students": every student role is a member.

-- name: group_exists
SELECT 1 AS present FROM pg_roles WHERE rolname = %(group)s;

-- name: create_group
CREATE ROLE {group} NOLOGIN;

-- name: grant_class_access
-- What a worker needs and nothing more, re-applied on every `students add` (idempotent; a newer
-- migration's functions get their grant the next time). PUBLIC loses its defaults: connecting,
-- temporary tables, the public schema. The owner keeps its own rights.
REVOKE ALL ON DATABASE {database} FROM PUBLIC;
GRANT CONNECT ON DATABASE {database} TO {group};
REVOKE ALL ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON SCHEMA ganfriends FROM PUBLIC;
GRANT USAGE ON SCHEMA ganfriends TO {group};
REVOKE ALL ON ALL TABLES IN SCHEMA ganfriends FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA ganfriends FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ganfriends FROM PUBLIC;
-- Read: what a worker downloads and what `status` and the dashboard show. Never leases (their
-- tokens), results (others' uploads) or optimizer_states.
GRANT SELECT ON ganfriends.runs, ganfriends.weights, ganfriends.version_inputs,
    ganfriends.device_states, ganfriends.workers, ganfriends.work_units, ganfriends.updates,
    ganfriends.samples, ganfriends.evaluations, ganfriends.rejections,
    ganfriends.pending_credit, ganfriends.student_standing TO {group};
-- Write: only through the worker functions (migration 0007), each acting as the caller.
GRANT EXECUTE ON FUNCTION
    ganfriends.worker_register(bigint, text, text, text, text, real, int, real),
    ganfriends.worker_heartbeat(bigint), ganfriends.worker_extend_leases(bigint),
    ganfriends.worker_claim_unit(bigint, bigint), ganfriends.worker_claim_backup_unit(bigint, bigint),
    ganfriends.worker_submit_result(bigint, bigint, uuid, int, bytea, bytea, real),
    ganfriends.worker_release_lease(uuid, bigint), ganfriends.worker_stop(bigint),
    ganfriends.worker_claim_units(bigint, bigint, int),
    ganfriends.student_rejections(bigint, text)
TO {group};

-- name: create_student
-- {password} is a SCRAM verifier computed by the client (see create_role).
CREATE ROLE {role} LOGIN PASSWORD {password} CONNECTION LIMIT {limit} IN ROLE {group}
    INHERIT NOCREATEDB NOCREATEROLE NOREPLICATION;
-- On any server (not only the embedded one): a vanished laptop is cut off in seconds, a session
-- idle inside a transaction cannot hold locks, and a worker statement waits at most 10 s for a
-- lock (a claim or an upload never waits that long behind honest sessions). A student can SET
-- these back in their own session: the limits in the worker functions do not depend on them,
-- and the coordinator's watchdog ends transactions held open on purpose.
ALTER ROLE {role} SET idle_in_transaction_session_timeout = '30s';
ALTER ROLE {role} SET lock_timeout = '10s';
ALTER ROLE {role} SET tcp_keepalives_idle = 10;
ALTER ROLE {role} SET tcp_keepalives_interval = 5;
ALTER ROLE {role} SET tcp_keepalives_count = 3;

-- name: reach_student
-- On a server where the instructor's role is no superuser and lacks pg_read_all_stats and
-- pg_signal_backend (a managed PostgreSQL), membership in a student's role is what lets it see
-- that student's sessions in full and end them: the watchdog and `students revoke`. A CREATEROLE
-- role may grant itself a role it created (PostgreSQL 15: any non-superuser role; 16 and later:
-- the creator holds ADMIN OPTION on it). The student gains nothing: membership goes one way.
GRANT {role} TO CURRENT_USER;

-- name: server_limits
-- What this server does not give the class, seen by the instructor's role after adding the
-- student %(role)s: connection slots only this role may use (PostgreSQL 16's
-- reserved_connections with pg_use_reserved_connections, or a superuser's), the connections the
-- students may open (-1: a role without limit), the other databases the student may connect to,
-- and whether this session is encrypted.
SELECT
    CASE WHEN me.rolsuper THEN current_setting('superuser_reserved_connections')::int
         WHEN EXISTS (SELECT 1 FROM pg_roles p WHERE p.rolname = 'pg_use_reserved_connections'
                        AND pg_has_role(current_user, p.oid, 'USAGE'))
         THEN coalesce(current_setting('reserved_connections', true), '0')::int
         ELSE 0 END AS reserved_slots,
    current_setting('max_connections')::int AS max_connections,
    current_setting('superuser_reserved_connections')::int AS superuser_slots,
    (SELECT CASE WHEN bool_or(s.rolconnlimit < 0) THEN -1
                 ELSE coalesce(sum(s.rolconnlimit), 0) END
     FROM pg_roles s
     JOIN pg_auth_members m ON m.member = s.oid
     JOIN pg_roles g ON g.oid = m.roleid AND g.rolname = %(group)s
     WHERE s.rolcanlogin) AS student_connections,
    (SELECT coalesce(array_agg(d.datname::text ORDER BY d.datname), '{}')
     FROM pg_database d
     WHERE d.datallowconn AND d.datname <> current_database()
       AND has_database_privilege(%(role)s, d.oid, 'CONNECT')) AS open_databases,
    coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS tls
FROM pg_roles me
WHERE me.rolname = current_user;

-- name: student_roles
-- Each student of the class, whether they may log in, and their open sessions.
SELECT r.rolname AS name, r.rolcanlogin AS can_login, r.rolconnlimit AS connection_limit,
       (SELECT count(*) FROM pg_stat_activity a WHERE a.usename = r.rolname) AS sessions
FROM pg_roles r
JOIN pg_auth_members m ON m.member = r.oid
JOIN pg_roles g ON g.oid = m.roleid AND g.rolname = %(group)s
ORDER BY r.rolname;

-- name: student_workers
-- The workers each role registered (in the class database).
SELECT role_name, count(*) AS workers, coalesce(sum(units_done), 0) AS units,
       max(last_heartbeat) AS last_seen
FROM ganfriends.workers GROUP BY role_name;

-- name: disable_student
ALTER ROLE {role} NOLOGIN;

-- name: end_student_sessions
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %(role)s;

-- name: release_student_leases
-- A revoked student's units go back to the queue at once instead of waiting out their leases.
WITH released AS (
    UPDATE ganfriends.leases l SET state = 'released', finished_at = now()
    FROM ganfriends.workers w
    WHERE w.id = l.worker_id AND w.role_name = %(role)s AND l.state = 'active'
    RETURNING l.unit_id
)
UPDATE ganfriends.work_units u SET state = 'pending', lease_expires_at = NULL
FROM released
WHERE u.id = released.unit_id AND u.state = 'claimed'
  -- (the statement sees the leases as they were: the student's own still look active)
  AND NOT EXISTS (SELECT 1 FROM ganfriends.leases l JOIN ganfriends.workers w ON w.id = l.worker_id
                  WHERE l.unit_id = u.id AND l.state = 'active' AND l.expires_at > now()
                    AND w.role_name <> %(role)s);

-- name: revoke_connect
-- The embedded server's other databases (postgres, template1): no student connects there.
REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC;

-- ===================================================================== roster

-- name: class_lock
-- Taken first in the transaction of every `students add` (one name or a roster) and held to its
-- end: two runs at once take turns, so the second finds the first's students created instead of
-- failing on a duplicate name or on two GRANTs to one object ("tuple concurrently updated").
-- The table is the migrations lock's (queries.sql: migrations_lock): no student has a privilege
-- on it, so no student can take or hold a lock that conflicts with it (any role may take any
-- advisory lock).
SET LOCAL lock_timeout = '30s';
LOCK TABLE ganfriends.schema_migrations IN EXCLUSIVE MODE;

-- name: reissue_student
-- {password} is a SCRAM verifier computed by the client (see create_role). A revoked student
-- may log in again.
ALTER ROLE {role} LOGIN PASSWORD {password};
