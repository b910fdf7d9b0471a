-- Session states are the domain's (`domain/sessions/mod.rs`): ENROLMENT_REQUIRED joins them
-- (and PASSWORD_RESET will), so the CHECK list goes, as the method lists went in 0007.
ALTER TABLE sessions DROP CONSTRAINT IF EXISTS sessions_state_check;
