-- A payment planned once per connection, as a hold is since 0013: pay_reservation's statements
-- each have one sensible plan (keyed by the user and key, the reservation, the user or the
-- token), and replanning them on every call was about a sixth of a payment's PostgreSQL CPU.
-- A plan made while a table was small is made again when its statistics change (autovacuum's
-- ANALYZE), as every cached plan is.
ALTER FUNCTION pay_reservation(bigint, bigint, text, bytea, uuid, bigint, boolean)
    SET plan_cache_mode = force_generic_plan;
