-- The SMTP sender claims a reply before talking to the server, so that several postroom
-- instances (PostgreSQL) never send the same reply twice at the same time.
-- `claimed_until`: a lease (Unix ms). While it lies in the future the row belongs to the
-- sender that set it; a crashed sender's claim simply runs out. NULL when nobody sends it.
-- `retried_at`: when staff last pressed "retry" on a failed reply; the give-up clock
-- (`smtp.give_up_after`) runs from it instead of `created_at`.
ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;
ALTER TABLE outbox ADD COLUMN retried_at BIGINT;
