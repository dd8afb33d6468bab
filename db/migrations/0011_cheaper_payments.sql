-- A payment writes everything it has to say about its queue token inside its own transaction,
-- so that what follows its commit is the queue alone:
--   * the token's audit row turns EXPIRED (reason completed) with the payment, not in a
--     statement of its own afterwards; a token whose row is EXPIRED already cannot pay again
--     (refused as token_spent), even while the queue has not heard of the first payment yet;
--   * a paid token not yet ended in the queue is a row of a narrow table, deleted in batches
--     once the queue has ended it, instead of an UPDATE of the wide payments row (every one of
--     its indexes written again: token_expired_at is in a partial index's predicate).

-- Paid tokens the queue may not have ended yet: the admitter's sweeper ends them (it reads this
-- table), and whoever ended one deletes its row. No foreign key: the row lives for a moment,
-- and checking payments for it would cost every payment a lookup more.
CREATE TABLE payment_tokens_to_end (
    payment_id  bigint CONSTRAINT payment_tokens_to_end_pkey PRIMARY KEY,
    token       uuid NOT NULL
);
INSERT INTO payment_tokens_to_end (payment_id, token)
SELECT id, token FROM payments WHERE state = 'COMPLETED' AND token_expired_at IS NULL;
DROP INDEX payments_token_pending_idx;
ALTER TABLE payments DROP COLUMN token_expired_at;

-- As in 0008, with the token's audit row and its row in payment_tokens_to_end written in the
-- same transaction; token_logged is false when the token has no audit row yet (the admitter
-- has not written it: PostgreSQL was away when it was admitted), and the caller writes the
-- expiry once the queue has ended the token. One more refusal:
--   token_spent              the token's audit row says it has ended (paid with already)
DROP FUNCTION pay_reservation(bigint, bigint, text, bytea, uuid, bigint, boolean);
CREATE FUNCTION pay_reservation(p_user bigint, p_reservation bigint, p_key text, p_hash bytea,
                                p_token uuid, p_concert bigint, p_token_refused boolean)
RETURNS TABLE (payment_id bigint, reservation_id bigint, amount bigint, balance_after bigint,
               replayed boolean, token_logged boolean)
LANGUAGE plpgsql AS $$
DECLARE
    prior record;
    held record;
    locked integer;
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

    -- Expiry is judged by the clock at the moment the lock is held, not when the call began.
    SELECT r.id, sc.concert_id, r.status, r.seat_count, r.total_price,
           r.hold_expires_at <= clock_timestamp() AS ran_out
    INTO held
    FROM reservations r
    JOIN concert_schedules sc ON sc.id = r.schedule_id
    WHERE r.id = p_reservation AND r.user_id = p_user
    FOR UPDATE OF r;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'reservation_not_found';
    END IF;
    IF held.concert_id <> p_concert THEN
        RAISE EXCEPTION 'wrong_concert' USING DETAIL = held.concert_id::text;
    END IF;
    IF held.status = 'RESERVED' THEN
        RAISE EXCEPTION 'already_paid';
    END IF;
    IF held.status <> 'WAITING' OR held.ran_out THEN
        RAISE EXCEPTION 'hold_expired';
    END IF;
    -- Fixed lock order everywhere: reservation, then its seats, then the balance.
    SELECT count(*) INTO locked
    FROM (SELECT c.id FROM concert_seats c
          WHERE c.reservation_id = p_reservation AND c.status = 'PENDING'
          ORDER BY c.id
          FOR NO KEY UPDATE) AS s;
    IF locked <> held.seat_count THEN
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
    ), seats AS (
        UPDATE concert_seats SET status = 'RESERVED', hold_expires_at = NULL
        WHERE concert_seats.reservation_id = p_reservation AND status = 'PENDING'
    ), reservation AS (
        UPDATE reservations SET status = 'RESERVED', updated_at = now()
        WHERE id = p_reservation
    )
    SELECT payment.id INTO new_id FROM payment;
    RETURN QUERY SELECT new_id, p_reservation, held.total_price, new_balance, false, logged;
END
$$;
