-- sessions_by_device (customer_id, device_fingerprint) leads with customer_id: every lookup of
-- a customer's sessions (listing them, ending them all, a customer's removal) can use it, so
-- sessions_by_customer only cost each session written one more index entry
-- (src/store/index_overlap.rs keeps such pairs out). Dropping an index is quick whatever the
-- table's size; it waits only for the statements already reading sessions.
DROP INDEX sessions_by_customer;
