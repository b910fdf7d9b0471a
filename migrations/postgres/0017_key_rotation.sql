-- After a rotation of the audit key, a device is moved to its fingerprint's hash under the new
-- key on its next login. The hashes it was stored under before stay here, so that the audit
-- events that name them (which cannot change) still show the customer which device it was.
CREATE TABLE device_former_hashes (
    customer_id      TEXT NOT NULL,
    fingerprint_hash TEXT NOT NULL,
    device_id        TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    PRIMARY KEY (customer_id, fingerprint_hash)
);
CREATE INDEX device_former_hashes_by_device ON device_former_hashes (device_id);
