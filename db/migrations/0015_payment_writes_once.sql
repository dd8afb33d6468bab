-- A payment touches its reservation and its seats once each: the UPDATE that sells them takes
-- their locks, where 0011 first locked them (FOR UPDATE, FOR NO KEY UPDATE) and then updated
-- them, a second pass over the same rows, each lock itself a write of the row's header. The
-- UPDATE's conditions are the old checks (the holder's reservation, of the token's concert,
-- WAITING, not run out by the clock when its lock is held); when it finds nothing, a plain read
-- tells which refusal it is, so only a refusal pays for the diagnosis. Lock order unchanged:
-- reservation, its seats, the balance, the token's audit row. A refusal raised after a write
-- undoes it (the call is one transaction, or one savepoint inside the caller's).
CREATE OR REPLACE FUNCTION pay_reservation(p_user bigint, p_reservation bigint, p_key text,
                                           p_hash bytea, p_token uuid, p_concert bigint,
                                           p_token_refused boolean)
RETURNS TABLE (payment_id bigint, reservation_id bigint, amount bigint, balance_after bigint,
               replayed boolean, token_logged boolean)
LANGUAGE plpgsql
-- Planned once per connection, as since 0014 (a replaced function keeps no settings of its own).
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    prior record;
    held record;
    sold integer;
    new_balance bigint;
    new_id bigint;
    logged boolean;
BEGIN
    -- Held to commit: a second request with the same key meanwhile is told it is in progress
    -- (namespace 7302, booking.queries.LOCK_IDEMPOTENCY_KEY; the same key as TRY_LOCK_KEY).
    IF NOT pg_try_advisory_xact_lock(7302, hashtext(p_user::text || ':' || p_key)) THEN
        RAISE EXCEPTION 'idempotency_in_progress';
    END IF;
    SELECT p.id, p.reservation_id, p.amount, p.request_hash, l.balance_after INTO prior
    FROM payments p
    JOIN balance_ledger l ON l.payment_id = p.id AND l.kind = 'PAYMENT'
    WHERE p.user_id = p_user AND p.idempotency_key = p_key;
    IF FOUND THEN
        IF prior.request_hash <> p_hash THEN
            RAISE EXCEPTION 'idempotency_key_reused';
        END IF;
        RETURN QUERY SELECT prior.id, prior.reservation_id, prior.amount, prior.balance_after,
                            true, true;
        RETURN;
    END IF;
    -- Only a replay may use a token that is no longer AVAILABLE (its payment expired it).
    IF p_token_refused THEN
        RAISE EXCEPTION 'token_refused';
    END IF;

    -- Expiry is judged by the clock when the row is locked (clock_timestamp() is evaluated
    -- again when the UPDATE rechecks a row another transaction changed meanwhile).
    UPDATE reservations r SET status = 'RESERVED', updated_at = now()
    FROM concert_schedules sc
    WHERE r.id = p_reservation AND r.user_id = p_user AND sc.id = r.schedule_id
      AND sc.concert_id = p_concert AND r.status = 'WAITING'
      AND r.hold_expires_at > clock_timestamp()
    RETURNING r.seat_count, r.total_price INTO held;
    IF NOT FOUND THEN
        SELECT sc.concert_id, r.status INTO held
        FROM reservations r
        JOIN concert_schedules sc ON sc.id = r.schedule_id
        WHERE r.id = p_reservation AND r.user_id = p_user;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'reservation_not_found';
        END IF;
        IF held.concert_id <> p_concert THEN
            RAISE EXCEPTION 'wrong_concert' USING DETAIL = held.concert_id::text;
        END IF;
        IF held.status = 'RESERVED' THEN
            RAISE EXCEPTION 'already_paid';
        END IF;
        RAISE EXCEPTION 'hold_expired';
    END IF;
    UPDATE concert_seats SET status = 'RESERVED', hold_expires_at = NULL
    WHERE concert_seats.reservation_id = p_reservation AND status = 'PENDING';
    GET DIAGNOSTICS sold = ROW_COUNT;
    IF sold <> held.seat_count THEN
        RAISE EXCEPTION 'hold_expired';
    END IF;
    -- Takes the money only if it is there.
    UPDATE balances SET balance = balance - held.total_price, updated_at = now()
    WHERE user_id = p_user AND balance >= held.total_price
    RETURNING balance INTO new_balance;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insufficient_balance' USING DETAIL = held.total_price::text;
    END IF;
    -- Last, the token's audit row: its lock is held for the shortest time (the admitter's
    -- statements lock nothing else, so no order can deadlock with them).
    UPDATE waiting_token SET state = 'EXPIRED', reason = 'completed', expired_at = now()
    WHERE token = p_token AND state = 'AVAILABLE';
    logged := FOUND;
    IF NOT logged AND EXISTS (SELECT FROM waiting_token WHERE token = p_token) THEN
        RAISE EXCEPTION 'token_spent';
    END IF;

    WITH payment AS (
        INSERT INTO payments (reservation_id, user_id, amount, state, idempotency_key,
                              request_hash, token)
        VALUES (p_reservation, p_user, held.total_price, 'COMPLETED', p_key, p_hash, p_token)
        RETURNING id
    ), ledger AS (
        INSERT INTO balance_ledger (user_id, kind, amount, balance_after, payment_id)
        SELECT p_user, 'PAYMENT', -held.total_price, new_balance, payment.id FROM payment
    ), to_end AS (
        INSERT INTO payment_tokens_to_end (payment_id, token)
        SELECT payment.id, p_token FROM payment
    )
    SELECT payment.id INTO new_id FROM payment;
    RETURN QUERY SELECT new_id, p_reservation, held.total_price, new_balance, false, logged;
END
$$;
