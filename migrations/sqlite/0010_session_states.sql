-- Session states are the domain's (`domain/sessions/mod.rs`): ENROLMENT_REQUIRED joins them
-- (and PASSWORD_RESET will), so the CHECK list goes, as the method lists went in 0007. SQLite
-- cannot drop a CHECK: the column is replaced by an unchecked one.
ALTER TABLE sessions ADD COLUMN state_unchecked TEXT NOT NULL DEFAULT 'ACTIVE';
UPDATE sessions SET state_unchecked = state;
ALTER TABLE sessions DROP COLUMN state;
ALTER TABLE sessions RENAME COLUMN state_unchecked TO state;
