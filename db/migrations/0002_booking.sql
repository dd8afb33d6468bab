-- Booking: dates, numbered seats, holds (reservations of one or more seats), payments, balances
-- with an append-only ledger. The database itself keeps the rules that must never break: a seat
-- in at most one live reservation, no negative balance, one completed payment per reservation,
-- an idempotency key used once per user.

CREATE TABLE concert_schedules (
    id            bigserial PRIMARY KEY,
    concert_id    bigint NOT NULL CONSTRAINT concert_schedules_concert_fkey REFERENCES concerts (id),
    concert_date  date NOT NULL,
    CONSTRAINT concert_schedules_concert_date_key UNIQUE (concert_id, concert_date)
);

CREATE TABLE reservations (
    id               bigserial PRIMARY KEY,
    user_id          bigint NOT NULL CONSTRAINT reservations_user_fkey REFERENCES users (id),
    schedule_id      bigint NOT NULL
                     CONSTRAINT reservations_schedule_fkey REFERENCES concert_schedules (id),
    status           text NOT NULL CONSTRAINT reservations_status_check
                     CHECK (status IN ('WAITING', 'RESERVED', 'CANCELED', 'EXPIRED')),
    seat_count       integer NOT NULL CONSTRAINT reservations_seat_count_check CHECK (seat_count > 0),
    total_price      bigint NOT NULL CONSTRAINT reservations_total_price_check CHECK (total_price > 0),
    hold_expires_at  timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- Target of reservation_seats' (reservation_id, reservation_status) key: a status change
    -- cascades to the seat links, so the live-seat index below always sees the true status.
    CONSTRAINT reservations_id_status_key UNIQUE (id, status)
);
-- MAX_SEATS_PER_USER: the seats a user holds or bought on one date.
CREATE INDEX reservations_user_schedule_idx ON reservations (user_id, schedule_id)
    WHERE status IN ('WAITING', 'RESERVED');
-- The sweeper: holds that ran out, oldest first.
CREATE INDEX reservations_waiting_expiry_idx ON reservations (hold_expires_at)
    WHERE status = 'WAITING';

CREATE TABLE concert_seats (
    id               bigserial PRIMARY KEY,
    schedule_id      bigint NOT NULL
                     CONSTRAINT concert_seats_schedule_fkey REFERENCES concert_schedules (id),
    seat_number      integer NOT NULL CONSTRAINT concert_seats_seat_number_check CHECK (seat_number > 0),
    price            bigint NOT NULL CONSTRAINT concert_seats_price_check CHECK (price > 0),
    status           text NOT NULL DEFAULT 'AVAILABLE' CONSTRAINT concert_seats_status_check
                     CHECK (status IN ('AVAILABLE', 'PENDING', 'RESERVED')),
    reservation_id   bigint CONSTRAINT concert_seats_reservation_fkey REFERENCES reservations (id),
    hold_expires_at  timestamptz,
    CONSTRAINT concert_seats_state_check CHECK (
        (status = 'AVAILABLE' AND reservation_id IS NULL AND hold_expires_at IS NULL)
        OR (status = 'PENDING' AND reservation_id IS NOT NULL AND hold_expires_at IS NOT NULL)
        OR (status = 'RESERVED' AND reservation_id IS NOT NULL AND hold_expires_at IS NULL)),
    -- The only index on (schedule_id, ...): it serves both "these seat numbers" and "the lowest
    -- free seats" in seat order. A second, partial index on free seats beside it made the planner
    -- pick the wrong one in some runs and cut any-seat holds to a third.
    CONSTRAINT concert_seats_schedule_seat_key UNIQUE (schedule_id, seat_number)
);
CREATE INDEX concert_seats_reservation_idx ON concert_seats (reservation_id)
    WHERE reservation_id IS NOT NULL;
-- The sweeper: seats left PENDING after their hold ended. Cannot serve a hold's free-seat
-- search (AVAILABLE rows are not in it), so it never competes with the unique index above.
CREATE INDEX concert_seats_pending_expiry_idx ON concert_seats (hold_expires_at)
    WHERE status = 'PENDING';

-- Which seats a reservation holds (kept after it ends, for its history and price).
CREATE TABLE reservation_seats (
    reservation_id      bigint NOT NULL,
    reservation_status  text NOT NULL,
    seat_id             bigint NOT NULL
                        CONSTRAINT reservation_seats_seat_fkey REFERENCES concert_seats (id),
    seat_number         integer NOT NULL,
    price               bigint NOT NULL CONSTRAINT reservation_seats_price_check CHECK (price > 0),
    CONSTRAINT reservation_seats_pkey PRIMARY KEY (reservation_id, seat_id),
    CONSTRAINT reservation_seats_reservation_fkey FOREIGN KEY (reservation_id, reservation_status)
        REFERENCES reservations (id, status) ON UPDATE CASCADE
);
-- A seat belongs to at most one live (WAITING or RESERVED) reservation.
CREATE UNIQUE INDEX reservation_seats_live_seat_key ON reservation_seats (seat_id)
    WHERE reservation_status IN ('WAITING', 'RESERVED');

CREATE TABLE balances (
    user_id     bigint PRIMARY KEY CONSTRAINT balances_user_fkey REFERENCES users (id),
    balance     bigint NOT NULL DEFAULT 0 CONSTRAINT balances_balance_nonnegative CHECK (balance >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payments (
    id                bigserial PRIMARY KEY,
    reservation_id    bigint NOT NULL CONSTRAINT payments_reservation_fkey REFERENCES reservations (id),
    user_id           bigint NOT NULL CONSTRAINT payments_user_fkey REFERENCES users (id),
    amount            bigint NOT NULL CONSTRAINT payments_amount_check CHECK (amount > 0),
    state             text NOT NULL CONSTRAINT payments_state_check
                      CHECK (state IN ('WAITING', 'COMPLETED', 'CANCELED')),
    idempotency_key   text NOT NULL CONSTRAINT payments_idempotency_key_check
                      CHECK (length(idempotency_key) BETWEEN 1 AND 64),
    -- SHA-256 of the request body: the same key with another body is refused.
    request_hash      bytea NOT NULL,
    -- The queue token that paid; expired after commit (token_expired_at), or by the admitter's
    -- sweeper when Redis did not answer at that moment.
    token             uuid NOT NULL,
    token_expired_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_user_idempotency_key UNIQUE (user_id, idempotency_key)
);
CREATE UNIQUE INDEX payments_one_completed_key ON payments (reservation_id) WHERE state = 'COMPLETED';
CREATE INDEX payments_token_pending_idx ON payments (id)
    WHERE state = 'COMPLETED' AND token_expired_at IS NULL;

-- Every change of a balance, never updated or deleted: the balance is the sum of its amounts.
CREATE TABLE balance_ledger (
    id             bigserial PRIMARY KEY,
    user_id        bigint NOT NULL CONSTRAINT balance_ledger_user_fkey REFERENCES users (id),
    kind           text NOT NULL CONSTRAINT balance_ledger_kind_check CHECK (kind IN ('CHARGE', 'PAYMENT')),
    amount         bigint NOT NULL CONSTRAINT balance_ledger_amount_check CHECK (amount <> 0),
    balance_after  bigint NOT NULL CONSTRAINT balance_ledger_balance_after_check CHECK (balance_after >= 0),
    payment_id     bigint CONSTRAINT balance_ledger_payment_fkey REFERENCES payments (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT balance_ledger_kind_payment_check CHECK ((kind = 'PAYMENT') = (payment_id IS NOT NULL))
);
CREATE INDEX balance_ledger_user_idx ON balance_ledger (user_id, id);
CREATE UNIQUE INDEX balance_ledger_payment_key ON balance_ledger (payment_id) WHERE payment_id IS NOT NULL;

CREATE FUNCTION balance_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'balance_ledger is append-only' USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER balance_ledger_append_only BEFORE UPDATE OR DELETE ON balance_ledger
    FOR EACH ROW EXECUTE FUNCTION balance_ledger_append_only();

-- The seats a quantity hold takes: the lowest run of p_quantity adjacent seats on sale, else the
-- lowest p_quantity on sale (fewer when fewer are left). Walks the schedule in seat order one row
-- at a time, locking as it goes and skipping other requests' locks, and stops at the end of the
-- first run: it never waits, and locks nothing past the seats it takes. A cursor, so that the
-- plan is the ordered index scan whatever the statistics say.
CREATE FUNCTION pick_free_seats(p_schedule bigint, p_quantity integer)
RETURNS TABLE (id bigint, seat_number integer, price bigint, reservation_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    free CURSOR FOR
        SELECT s.id, s.seat_number, s.price, s.reservation_id FROM concert_seats s
        WHERE s.schedule_id = p_schedule
          AND (s.status = 'AVAILABLE' OR (s.status = 'PENDING' AND s.hold_expires_at <= now()))
        ORDER BY s.seat_number
        FOR NO KEY UPDATE SKIP LOCKED;
    seat record;
    run_start integer := 1;       -- index in the arrays where the current run begins
    ids bigint[] := '{}';
    numbers integer[] := '{}';
    prices bigint[] := '{}';
    holders bigint[] := '{}';
    n integer := 0;
BEGIN
    OPEN free;
    LOOP
        FETCH free INTO seat;
        EXIT WHEN NOT FOUND;
        n := n + 1;
        ids[n] := seat.id;
        numbers[n] := seat.seat_number;
        prices[n] := seat.price;
        holders[n] := seat.reservation_id;
        IF n > 1 AND numbers[n] <> numbers[n - 1] + 1 THEN
            run_start := n;
        END IF;
        IF n - run_start + 1 = p_quantity THEN
            RETURN QUERY SELECT ids[i], numbers[i], prices[i], holders[i]
                         FROM generate_series(run_start, n) AS i;
            CLOSE free;
            RETURN;
        END IF;
    END LOOP;
    CLOSE free;
    RETURN QUERY SELECT ids[i], numbers[i], prices[i], holders[i]
                 FROM generate_series(1, least(n, p_quantity)) AS i;
END
$$;
