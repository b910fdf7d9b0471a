-- Second factors: one table, one row per factor a customer holds. Methods are the domain's
-- (`domain/credentials/factor.rs`): no CHECK list here or in the tables that name a method, so
-- a new method needs no change to them.
CREATE TABLE factors (
    id          TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    method      TEXT NOT NULL,
    address     TEXT,                   -- where codes go (a phone, a mailbox), for methods that send
    is_default  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL
);
CREATE INDEX factors_by_customer ON factors (customer_id);
-- The default factor is read with the customer on every signed-in request: one per customer.
CREATE UNIQUE INDEX factors_one_default ON factors (customer_id) WHERE is_default = TRUE;

-- Each customer's SMS or EMAIL setting becomes their factor, for the profile's phone or e-mail.
-- SMS without a phone could never send a code: such a customer keeps two-factor, by e-mail.
INSERT INTO factors (id, customer_id, method, address, is_default, created_at)
SELECT gen_random_uuid()::text, id,
       CASE WHEN two_factor_method = 'SMS' AND phone IS NOT NULL THEN 'SMS' ELSE 'EMAIL' END,
       CASE WHEN two_factor_method = 'SMS' AND phone IS NOT NULL THEN phone ELSE email END,
       TRUE, created_at
FROM customers
WHERE two_factor_method IN ('SMS', 'EMAIL');

-- The customers' column is no longer read; it is kept (and written for new customers) while an
-- instance of the previous version may run, and dropped by a later version.
ALTER TABLE customers DROP CONSTRAINT IF EXISTS customers_two_factor_method_check;
ALTER TABLE challenges DROP CONSTRAINT IF EXISTS challenges_method_check;
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_channel_check;
