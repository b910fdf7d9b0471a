-- Failure counters expire (usernames that exist or not alike): housekeeping finds the stale ones
-- through this index instead of reading the whole table.
CREATE INDEX lockouts_by_update ON lockouts (updated_at);
