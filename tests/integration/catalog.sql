-- What test_db_schema.py compares between two databases: schema ganfriends as the catalog
-- describes it, one row per fact, in a form that does not depend on the order objects were
-- created in (no oids, no column numbers; dropped columns left out).

-- name: relations
SELECT relname AS name, relkind AS kind, reloptions AS options
FROM pg_class
WHERE relnamespace = 'ganfriends'::regnamespace AND relkind IN ('r', 'p', 'v', 'm', 'S')
ORDER BY 1;

-- name: columns
SELECT c.relname AS relation, a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
       a.attidentity AS identity, pg_get_expr(d.adbin, d.adrelid) AS default_value,
       a.attstorage AS storage
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = 'ganfriends'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY 1, 2;

-- name: constraints
SELECT conrelid::regclass::text AS relation, conname AS name, contype AS kind,
       pg_get_constraintdef(oid) AS definition
FROM pg_constraint WHERE connamespace = 'ganfriends'::regnamespace
ORDER BY 1, 2;

-- name: indexes
SELECT tablename AS relation, indexname AS name, indexdef AS definition
FROM pg_indexes WHERE schemaname = 'ganfriends'
ORDER BY 1, 2;

-- name: views
SELECT viewname AS name, definition FROM pg_views WHERE schemaname = 'ganfriends'
ORDER BY 1;

-- name: functions
SELECT proname AS name, pg_get_function_identity_arguments(oid) AS arguments,
       pg_get_functiondef(oid) AS definition
FROM pg_proc WHERE pronamespace = 'ganfriends'::regnamespace
ORDER BY 1, 2;

-- name: triggers
SELECT tgrelid::regclass::text AS relation, tgname AS name, pg_get_triggerdef(oid) AS definition
FROM pg_trigger
WHERE NOT tgisinternal
  AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'ganfriends'::regnamespace)
ORDER BY 1, 2;

-- name: sequences
SELECT c.relname AS name, format_type(s.seqtypid, NULL) AS type, s.seqincrement AS increment,
       s.seqstart AS start
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
WHERE c.relnamespace = 'ganfriends'::regnamespace
ORDER BY 1;

-- name: grants
-- Every privilege on the schema and its relations and functions, NULL (default) ACLs spelled
-- out, so that "never granted" and "granted the defaults" compare equal.
WITH objects AS (
    SELECT 'schema' AS kind, nspname AS name,
           coalesce(nspacl, acldefault('n', nspowner)) AS acl
    FROM pg_namespace WHERE nspname = 'ganfriends'
    UNION ALL
    SELECT 'relation', relname,
           coalesce(relacl, acldefault((CASE WHEN relkind = 'S' THEN 's' ELSE 'r' END)::"char", relowner))
    FROM pg_class
    WHERE relnamespace = 'ganfriends'::regnamespace AND relkind IN ('r', 'p', 'v', 'm', 'S')
    UNION ALL
    SELECT 'function', proname || '(' || pg_get_function_identity_arguments(oid) || ')',
           coalesce(proacl, acldefault('f', proowner))
    FROM pg_proc WHERE pronamespace = 'ganfriends'::regnamespace
)
SELECT o.kind, o.name, coalesce(r.rolname, 'PUBLIC') AS grantee, a.privilege_type,
       a.is_grantable
FROM objects o
CROSS JOIN LATERAL aclexplode(o.acl) a
LEFT JOIN pg_roles r ON r.oid = a.grantee
ORDER BY 1, 2, 3, 4;
