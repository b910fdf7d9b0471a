-- An approximation of a password login's statements on PostgreSQL (docs/performance.md, "What
-- pipelining would buy, and where the rest goes"): the first read, narrower than the
-- service's, then the write transaction, with literals where the service binds values.
-- Run with `-D pipelined=0` (one statement at a time) or `-D pipelined=1` (the transaction
-- sent at once and its answers read together), on a schema made by `finhub-auth migrate`
-- with a customer alice@example.com in it.
\set n random(1, 1000000000000)
SELECT l.failures, c.id, c.password_hash, c.last_login_at, (SELECT CAST(COUNT(*) AS BIGINT) FROM devices d WHERE d.customer_id = c.id AND d.verified_at IS NOT NULL) AS devices_known FROM (SELECT CAST('alice@example.com' AS TEXT) AS username) asked LEFT JOIN lockouts l ON l.username = asked.username LEFT JOIN customers c ON c.username = asked.username LEFT JOIN factors f ON f.customer_id = c.id AND f.is_default = TRUE;
\if :pipelined
\startpipeline
\endif
BEGIN;
SELECT failures, lock_count, locked_until, operator_locked, locked_down FROM lock_username('alice@example.com');
UPDATE customers SET last_login_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM customers AS before WHERE customers.username = 'alice@example.com' AND before.id = customers.id RETURNING before.last_login_at;
INSERT INTO sessions (id, customer_id, state, access_hash, refresh_hash, created_at, expires_at, absolute_expires_at, last_seen_at, login_at, previous_login_at, ip, user_agent, device_fingerprint, device_name, country, asn, latitude, longitude, recent_auth_at, two_factor_verified) SELECT 'pgbench-' || :client_id || '-' || :n, c.id, 'ACTIVE', sha256(('a' || :n || '-' || :client_id)::bytea), sha256(('r' || :n || '-' || :client_id)::bytea), t, t + 3600000, t + 43200000, t, t, t - 1000, '127.0.0.1', 'pgbench', NULL, NULL, NULL, NULL, NULL, NULL, t, FALSE FROM customers c, (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS t) now WHERE c.username = 'alice@example.com';
UPDATE sessions SET revoked_at = x.t, revoke_reason = 'session_limit' FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS t, (SELECT id FROM customers WHERE username = 'alice@example.com') AS customer) x WHERE customer_id = x.customer AND id <> 'pgbench-' || :client_id || '-' || :n AND state = 'ACTIVE' AND revoked_at IS NULL AND absolute_expires_at > x.t AND last_seen_at > x.t - 900000 AND id NOT IN (SELECT id FROM sessions WHERE customer_id = x.customer AND id <> 'pgbench-' || :client_id || '-' || :n AND state = 'ACTIVE' AND revoked_at IS NULL AND absolute_expires_at > x.t AND last_seen_at > x.t - 900000 ORDER BY login_at DESC, id DESC LIMIT 9) RETURNING id;
SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE;
WITH moved AS (UPDATE audit_head SET seq = seq + 2, hash = md5(:n::text) WHERE id = 1 RETURNING seq) INSERT INTO audit_events (seq, id, at, kind, outcome, reason, username, customer_id, session_id, ip, user_agent, device_fingerprint, device_name, details, prev_hash, hash) SELECT moved.seq - k, 'pgbench-' || :client_id || '-' || :n || '-' || k, 0, 'login.succeeded', 'success', NULL, 'alice@example.com', NULL, 'pgbench-' || :client_id || '-' || :n, '127.0.0.1', 'pgbench', NULL, NULL, '{"flags":[]}', md5(k::text), md5(:n::text) FROM moved, (VALUES (0), (1)) AS e(k);
COMMIT;
\if :pipelined
\endpipeline
\endif
