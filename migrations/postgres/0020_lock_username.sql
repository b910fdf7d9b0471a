-- A username's failure counters, read after taking the transaction's lock on the username:
-- one round trip where the lock and the read were two. The read must come after the lock is
-- granted: in READ COMMITTED (PostgreSQL's default, which the service relies on) a volatile
-- function takes a fresh snapshot for each statement it runs, whereas a single statement's
-- snapshot is taken before it waits for its lock, and would miss what the transaction that
-- held the lock committed meanwhile. The lock's key is the one earlier versions take with
-- `pg_advisory_xact_lock(hashtextextended(username, 0))`, so instances of both versions
-- exclude each other during an upgrade. Every later version calls this function as it is
-- here: never replace it with another key or other columns (instances of the version before
-- would change behaviour mid-upgrade); add a function of another name instead.
CREATE FUNCTION lock_username(asked TEXT) RETURNS SETOF lockouts
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(asked, 0));
    RETURN QUERY SELECT * FROM lockouts WHERE username = asked;
END
$$;
