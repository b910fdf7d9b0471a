-- A customer's sessions that have not been ended, in login order. A login ends those past the
-- session limit: it reads only these, however many ended sessions the customer's history holds
-- until housekeeping purges them (before, every login walked the customer's whole history
-- through sessions_by_customer).
--
-- Not CONCURRENTLY: a concurrent build waits for every open transaction, among them an
-- instance starting beside this one and waiting for the migrator's advisory lock, which this
-- migration holds: a deadlock. The build blocks writes to sessions while it runs.
CREATE INDEX sessions_live_by_customer ON sessions (customer_id, login_at DESC, id DESC)
    WHERE revoked_at IS NULL;
