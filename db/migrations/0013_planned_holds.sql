-- A hold planned once per connection, and its usual pick in one statement.
--
-- hold_seats (0012) was planned again on every call: PL/pgSQL's statements take its variables
-- as parameters, and PostgreSQL keeps replanning a statement whose plan for the values at hand
-- looks cheaper than its generic plan. The write (seats `= ANY (ids)`, costed as ten seats in
-- the generic plan, one in a custom one) and the pick (LIMIT p_quantity) always looked so:
-- under pgbench, a fifth of the PostgreSQL CPU of a hold went to planning them. Every statement
-- here has one sensible plan (its keys are the ids, the date and seat number, or the user), so
-- the function takes the generic plans, made once per connection.
--
-- The pick starts with the lowest p_quantity AVAILABLE seats in one statement, as the plain
-- hold takes them. When they are a run (always, for one seat) they are what the walk of 0012
-- finds first, so the walk, a cursor fetched one row at a time, now runs only when they are
-- not. The write is two plain statements instead of a statement of data-modifying CTEs.

CREATE OR REPLACE FUNCTION hold_seats(p_user bigint, p_schedule bigint, p_numbers integer[],
                                      p_quantity integer, p_ttl_seconds double precision,
                                      p_max_seats integer)
RETURNS TABLE (hold_id bigint, expires_at timestamptz, total bigint, held_numbers integer[],
               held_prices bigint[])
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
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
        -- The lowest p_quantity on sale, skipping other requests' locks. Seat numbers are
        -- unique on a date and come in order: p_quantity of them whose ends are p_quantity - 1
        -- apart are a run, the pick. Otherwise the walk below (its first pass sees these
        -- seats again: this transaction's own locks do not skip them).
        SELECT array_agg(s.id ORDER BY s.seat_number), array_agg(s.seat_number ORDER BY s.seat_number),
               array_agg(s.price ORDER BY s.seat_number)
        INTO ids, numbers, costs
        FROM (SELECT c.id, c.seat_number, c.price FROM concert_seats c
              WHERE c.schedule_id = p_schedule AND c.status = 'AVAILABLE'
              ORDER BY c.seat_number LIMIT p_quantity
              FOR NO KEY UPDATE SKIP LOCKED) AS s;
        n := coalesce(cardinality(ids), 0);
        IF n < p_quantity OR numbers[n] - numbers[1] <> p_quantity - 1 THEN
            -- The best p_quantity, as pick_free_seats (0005) chooses them: the lowest run of
            -- p_quantity adjacent seats among those AVAILABLE (through concert_seats_free_idx),
            -- else the lowest p_quantity of them; only when fewer than p_quantity are
            -- AVAILABLE, a second walk that also takes holds that ran out but are not swept
            -- yet. One row at a time (a FOR loop would fetch, and lock, ten), skipping other
            -- requests' locks; never waits; stops at the end of the first run.
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

    INSERT INTO reservations (user_id, schedule_id, status, seat_count, total_price,
                              hold_expires_at, seat_numbers, seat_prices)
    VALUES (p_user, p_schedule, 'WAITING', cardinality(ids),
            (SELECT sum(c) FROM unnest(costs) AS c),
            now() + make_interval(secs => p_ttl_seconds), numbers, costs)
    RETURNING reservations.id, reservations.hold_expires_at, reservations.total_price
    INTO hold_id, expires_at, total;
    -- Each seat checked again to be on sale (the last line of defence): one that is not
    -- refuses the hold.
    UPDATE concert_seats c
    SET status = 'PENDING', reservation_id = hold_id, hold_expires_at = expires_at
    WHERE c.id = ANY (ids)
      AND (c.status = 'AVAILABLE' OR (c.status = 'PENDING' AND c.hold_expires_at <= now()));
    GET DIAGNOSTICS written = ROW_COUNT;
    IF written <> cardinality(ids) THEN
        RAISE EXCEPTION 'seat_unavailable' USING DETAIL = '';
    END IF;
    held_numbers := numbers;
    held_prices := costs;
    RETURN NEXT;
END
$$;
