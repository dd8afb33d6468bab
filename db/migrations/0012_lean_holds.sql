-- A hold writes less: the reservation row carries its seats, and the seat row is the only
-- record of which live reservation holds a seat.
--
-- The seat links (reservation_seats) made every hold write a second table with two indexes and
-- two foreign-key checks, and every status change of a reservation cascade into them. Their one
-- rule, "a seat in at most one live reservation", is the seat row's own: a seat names a single
-- reservation, and hold_seats changes it only under the seat's row lock, after checking that
-- the seat is on sale. What the links also kept, a reservation's seat numbers and prices once
-- it has ended, is now on the reservation itself.
ALTER TABLE reservations ADD COLUMN seat_numbers integer[], ADD COLUMN seat_prices bigint[];
UPDATE reservations r SET seat_numbers = l.numbers, seat_prices = l.prices
FROM (SELECT reservation_id, array_agg(seat_number ORDER BY seat_number) AS numbers,
             array_agg(price ORDER BY seat_number) AS prices
      FROM reservation_seats GROUP BY reservation_id) AS l
WHERE l.reservation_id = r.id;
-- A reservation written without links (by hand, or by an old bench) takes the seats that name it.
UPDATE reservations r SET seat_numbers = s.numbers, seat_prices = s.prices
FROM (SELECT reservation_id, array_agg(seat_number ORDER BY seat_number) AS numbers,
             array_agg(price ORDER BY seat_number) AS prices
      FROM concert_seats WHERE reservation_id IS NOT NULL GROUP BY reservation_id) AS s
WHERE s.reservation_id = r.id AND r.seat_numbers IS NULL;
ALTER TABLE reservations
    ALTER COLUMN seat_numbers SET NOT NULL,
    ALTER COLUMN seat_prices SET NOT NULL,
    ADD CONSTRAINT reservations_seats_check CHECK (
        cardinality(seat_numbers) = seat_count AND cardinality(seat_prices) = seat_count);
DROP TABLE reservation_seats;
-- Only the links' foreign key used it.
ALTER TABLE reservations DROP CONSTRAINT reservations_id_status_key;

-- Seat maps count the holds that ran out but are not swept yet through the sweeper's index
-- (every PENDING seat past its end, of any date: the sweeper frees them within a tick), so a
-- hold no longer writes a second PENDING index beside it.
DROP INDEX concert_seats_pending_schedule_idx;

-- Walked inside hold_seats now.
DROP FUNCTION pick_free_seats(bigint, integer);

-- A hold in one round trip, as in 0007, with fewer statements: the user's limit counted in
-- place, the pick walked here rather than through a set-returning function, and one statement
-- that writes the reservation and its seats. The write checks again that each seat is on sale
-- (the last line of defence the links' unique index was): a seat that is not refuses the hold.
CREATE OR REPLACE FUNCTION hold_seats(p_user bigint, p_schedule bigint, p_numbers integer[],
                                      p_quantity integer, p_ttl_seconds double precision,
                                      p_max_seats integer)
RETURNS TABLE (hold_id bigint, expires_at timestamptz, total bigint, held_numbers integer[],
               held_prices bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    wanted integer := coalesce(cardinality(p_numbers), p_quantity);
    taken integer;
    ids bigint[];
    numbers integer[];
    costs bigint[];
    holders bigint[];
    blocked bigint[];
    unknown integer[];
    freed bigint;
    walk refcursor;
    seat record;
    n integer;
    run_start integer;
    pass integer;
    written integer;
BEGIN
    -- The user row when the admitter has not made it yet; then this user's holds one at a time
    -- (namespace 7301, booking.queries.LOCK_USER_HOLDS), so that two at once cannot both pass
    -- the limit. Only the same user's requests ever wait here.
    INSERT INTO users (id) VALUES (p_user) ON CONFLICT DO NOTHING;
    PERFORM pg_advisory_xact_lock(7301, hashint8(p_user));
    -- seats_taken (0003), in place: a call of the SQL function is planned again in every
    -- transaction (about 0.1 ms of PostgreSQL CPU per hold), this statement once per connection.
    SELECT coalesce(sum(r.seat_count), 0) INTO taken FROM reservations r
    WHERE r.user_id = p_user AND r.schedule_id = p_schedule
      AND r.status IN ('WAITING', 'RESERVED')
      AND (r.status = 'RESERVED' OR r.hold_expires_at > now());
    IF taken + wanted > p_max_seats THEN
        RAISE EXCEPTION 'seat_limit' USING DETAIL = taken::text;
    END IF;

    IF p_numbers IS NOT NULL THEN
        -- These seat numbers: on sale and not locked by anyone else.
        SELECT array_agg(s.id ORDER BY s.seat_number), array_agg(s.seat_number ORDER BY s.seat_number),
               array_agg(s.price ORDER BY s.seat_number),
               array_agg(s.reservation_id ORDER BY s.seat_number)
        INTO ids, numbers, costs, holders
        FROM (SELECT c.id, c.seat_number, c.price, c.reservation_id FROM concert_seats c
              WHERE c.schedule_id = p_schedule AND c.seat_number = ANY (p_numbers)
                AND (c.status = 'AVAILABLE' OR (c.status = 'PENDING' AND c.hold_expires_at <= now()))
              ORDER BY c.seat_number
              FOR NO KEY UPDATE SKIP LOCKED) AS s;
    ELSE
        -- The best p_quantity, as pick_free_seats (0005) chooses them, walked here: the lowest
        -- run of p_quantity adjacent seats among those AVAILABLE (through concert_seats_free_idx),
        -- else the lowest p_quantity of them; only when fewer than p_quantity are AVAILABLE, a
        -- second walk that also takes holds that ran out but are not swept yet. One row at a
        -- time (a FOR loop would fetch, and lock, ten), skipping other requests' locks; never
        -- waits; stops at the end of the first run.
        FOR pass IN 1..2 LOOP
            IF pass = 1 THEN
                OPEN walk FOR
                    SELECT c.id, c.seat_number, c.price, c.reservation_id FROM concert_seats c
                    WHERE c.schedule_id = p_schedule AND c.status = 'AVAILABLE'
                    ORDER BY c.seat_number
                    FOR NO KEY UPDATE SKIP LOCKED;
            ELSE
                OPEN walk FOR
                    SELECT c.id, c.seat_number, c.price, c.reservation_id FROM concert_seats c
                    WHERE c.schedule_id = p_schedule
                      AND (c.status = 'AVAILABLE'
                           OR (c.status = 'PENDING' AND c.hold_expires_at <= now()))
                    ORDER BY c.seat_number
                    FOR NO KEY UPDATE SKIP LOCKED;
            END IF;
            ids := '{}'; numbers := '{}'; costs := '{}'; holders := '{}';
            n := 0; run_start := 1;
            LOOP
                FETCH walk INTO seat;
                EXIT WHEN NOT FOUND;
                n := n + 1;
                ids[n] := seat.id; numbers[n] := seat.seat_number;
                costs[n] := seat.price; holders[n] := seat.reservation_id;
                IF n > 1 AND numbers[n] <> numbers[n - 1] + 1 THEN
                    run_start := n;
                END IF;
                EXIT WHEN n - run_start + 1 = p_quantity;
            END LOOP;
            CLOSE walk;
            -- A run, or enough seats without one: no second walk.
            EXIT WHEN n >= p_quantity;
        END LOOP;
        IF n - run_start + 1 < p_quantity THEN
            run_start := 1;  -- no run: the lowest of them (fewer when fewer are left)
        END IF;
        ids := ids[run_start:run_start + p_quantity - 1];
        numbers := numbers[run_start:run_start + p_quantity - 1];
        costs := costs[run_start:run_start + p_quantity - 1];
        holders := holders[run_start:run_start + p_quantity - 1];
    END IF;

    -- Picked seats whose earlier hold ran out still name that reservation: end it (EXPIRED) and
    -- free its other seats. A reservation locked by someone else (being paid or swept) is
    -- skipped, never waited for, and its seats are not taken.
    IF array_remove(holders, NULL) <> '{}' THEN
        WITH locked AS (
            SELECT r.id FROM reservations r
            WHERE r.id = ANY (holders) AND r.status = 'WAITING' AND r.hold_expires_at <= now()
            FOR UPDATE SKIP LOCKED
        ), expired AS (
            UPDATE reservations r SET status = 'EXPIRED', updated_at = now()
            FROM locked WHERE r.id = locked.id
            RETURNING r.id
        ), released AS (
            SELECT put_back_on_sale(array(
                SELECT c.id FROM concert_seats c
                WHERE c.reservation_id IN (SELECT locked.id FROM locked) AND c.status = 'PENDING'
                  AND c.id <> ALL (ids)
                FOR NO KEY UPDATE SKIP LOCKED)) AS id
        )
        SELECT array(SELECT r.id FROM reservations r
                     WHERE r.id = ANY (holders) AND r.status = 'WAITING'
                       AND r.id NOT IN (SELECT expired.id FROM expired)),
               (SELECT count(*) FROM released)
        INTO blocked, freed;
        IF cardinality(blocked) > 0 THEN
            SELECT array_agg(p.i ORDER BY p.n), array_agg(p.n ORDER BY p.n),
                   array_agg(p.c ORDER BY p.n)
            INTO ids, numbers, costs
            FROM unnest(ids, numbers, costs, holders) AS p(i, n, c, h)
            WHERE p.h IS NULL OR p.h <> ALL (blocked);
        END IF;
    END IF;

    IF coalesce(cardinality(ids), 0) < wanted THEN
        IF p_numbers IS NULL THEN
            RAISE EXCEPTION 'seat_unavailable' USING DETAIL = '';
        END IF;
        unknown := array(SELECT DISTINCT w.n FROM unnest(p_numbers) AS w(n)
                         WHERE NOT EXISTS (SELECT FROM concert_seats c
                                           WHERE c.schedule_id = p_schedule AND c.seat_number = w.n)
                         ORDER BY w.n);
        IF cardinality(unknown) > 0 THEN
            RAISE EXCEPTION 'no_such_seats' USING DETAIL = array_to_string(unknown, ',');
        END IF;
        RAISE EXCEPTION 'seat_unavailable' USING DETAIL = array_to_string(array(
            SELECT DISTINCT w.n FROM unnest(p_numbers) AS w(n)
            WHERE w.n <> ALL (coalesce(numbers, '{}')) ORDER BY w.n), ',');
    END IF;

    WITH reservation AS (
        INSERT INTO reservations (user_id, schedule_id, status, seat_count, total_price,
                                  hold_expires_at, seat_numbers, seat_prices)
        VALUES (p_user, p_schedule, 'WAITING', cardinality(ids),
                (SELECT sum(c) FROM unnest(costs) AS c),
                now() + make_interval(secs => p_ttl_seconds), numbers, costs)
        RETURNING reservations.id, reservations.hold_expires_at, reservations.total_price
    ), pending AS (
        UPDATE concert_seats c
        SET status = 'PENDING', reservation_id = r.id, hold_expires_at = r.hold_expires_at
        FROM reservation r
        WHERE c.id = ANY (ids)
          AND (c.status = 'AVAILABLE' OR (c.status = 'PENDING' AND c.hold_expires_at <= now()))
        RETURNING c.id
    )
    SELECT r.id, r.hold_expires_at, r.total_price, (SELECT count(*) FROM pending)
    INTO hold_id, expires_at, total, written
    FROM reservation r;
    IF written <> cardinality(ids) THEN
        RAISE EXCEPTION 'seat_unavailable' USING DETAIL = '';
    END IF;
    held_numbers := numbers;
    held_prices := costs;
    RETURN NEXT;
END
$$;
