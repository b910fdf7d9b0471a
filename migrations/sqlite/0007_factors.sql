-- Second factors: one table, one row per factor a customer holds. Methods are the domain's
-- (`domain/credentials/factor.rs`): no CHECK list here or in the tables that name a method, so
-- a new method needs no change to them.
CREATE TABLE factors (
    id          TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    method      TEXT NOT NULL,
    address     TEXT,                   -- where codes go (a phone, a mailbox), for methods that send
    is_default  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX factors_by_customer ON factors (customer_id);
-- The default factor is read with the customer on every signed-in request: one per customer.
CREATE UNIQUE INDEX factors_one_default ON factors (customer_id) WHERE is_default = TRUE;

-- Each customer's SMS or EMAIL setting becomes their factor, for the profile's phone or e-mail.
-- SMS without a phone could never send a code: such a customer keeps two-factor, by e-mail.
INSERT INTO factors (id, customer_id, method, address, is_default, created_at)
SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
           || substr(lower(hex(randomblob(2))), 2) || '-'
           || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2)
           || '-' || lower(hex(randomblob(6))),
       id,
       CASE WHEN two_factor_method = 'SMS' AND phone IS NOT NULL THEN 'SMS' ELSE 'EMAIL' END,
       CASE WHEN two_factor_method = 'SMS' AND phone IS NOT NULL THEN phone ELSE email END,
       1, created_at
FROM customers
WHERE two_factor_method IN ('SMS', 'EMAIL');

-- SQLite cannot drop a CHECK constraint: each column is replaced by one without it. The
-- customers' column is no longer read; it is kept (and written for new customers) while an
-- instance of the previous version may run, and dropped by a later version.
ALTER TABLE customers ADD COLUMN two_factor_method_unchecked TEXT;
UPDATE customers SET two_factor_method_unchecked = two_factor_method;
ALTER TABLE customers DROP COLUMN two_factor_method;
ALTER TABLE customers RENAME COLUMN two_factor_method_unchecked TO two_factor_method;

ALTER TABLE challenges ADD COLUMN method_unchecked TEXT NOT NULL DEFAULT '';
UPDATE challenges SET method_unchecked = method;
ALTER TABLE challenges DROP COLUMN method;
ALTER TABLE challenges RENAME COLUMN method_unchecked TO method;

ALTER TABLE outbox ADD COLUMN channel_unchecked TEXT NOT NULL DEFAULT '';
UPDATE outbox SET channel_unchecked = channel;
ALTER TABLE outbox DROP COLUMN channel;
ALTER TABLE outbox RENAME COLUMN channel_unchecked TO channel;
