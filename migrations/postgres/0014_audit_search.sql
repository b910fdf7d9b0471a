-- Operators search the trail (`audit search`) by kind, and by client address: an exact
-- address, or an IPv4 range on octet boundaries as a range of the address's text, compared
-- byte by byte (COLLATE "C") whatever the database's collation.
CREATE INDEX audit_events_by_kind ON audit_events (kind, seq);
CREATE INDEX audit_events_by_ip ON audit_events ((ip COLLATE "C"), seq);
