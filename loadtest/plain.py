"""The ceilings' SQL: plain tables and the plain statements that do each booking job in one go.

The stadium bench measures our holds, payments and dates list beside these, run by pgbench and by
a bare aiohttp + asyncpg handler (`loadtest.bare_booking`), on tables of their own in the same
database. They keep none of our rules (no user limits, no reservations, no ledger): they are the
least any implementation must do, so the ratio says what our rules and round trips cost.
"""

from __future__ import annotations

import re

SCHEMA = """
CREATE TABLE plain_seats (
    id               bigint PRIMARY KEY,
    schedule_id      bigint NOT NULL,
    seat_number      integer NOT NULL,
    price            bigint NOT NULL,
    status           text NOT NULL DEFAULT 'AVAILABLE',
    hold_expires_at  timestamptz,
    UNIQUE (schedule_id, seat_number)
);
CREATE INDEX plain_seats_free_idx ON plain_seats (schedule_id, seat_number)
    WHERE status = 'AVAILABLE';
CREATE TABLE plain_balances (
    user_id  bigint PRIMARY KEY,
    balance  bigint NOT NULL CHECK (balance >= 0)
);
CREATE TABLE plain_payments (
    id       bigserial PRIMARY KEY,
    seat_id  bigint NOT NULL UNIQUE,
    user_id  bigint NOT NULL,
    amount   bigint NOT NULL
);
CREATE TABLE plain_dates (
    id            bigint PRIMARY KEY,
    concert_id    bigint NOT NULL,
    concert_date  date NOT NULL,
    available     bigint NOT NULL
);
CREATE INDEX plain_dates_concert_idx ON plain_dates (concert_id, concert_date);
CREATE SEQUENCE plain_pay_seq;
"""

# Seats 1..$3 of schedule $1, ids from $2 + 1 on.
ADD_SEATS = """
INSERT INTO plain_seats (id, schedule_id, seat_number, price)
SELECT $2 + n, $1, n, $4 FROM generate_series(1, $3::int) n
"""

# Sold the way best-available sells: the lowest seat numbers first.
FILL = """
UPDATE plain_seats SET status = 'RESERVED'
WHERE schedule_id = $1 AND seat_number <= $2 AND status = 'AVAILABLE'
"""

# Every seat of the schedule on sale again.
RESET = """
UPDATE plain_seats SET status = 'AVAILABLE', hold_expires_at = NULL
WHERE schedule_id = $1 AND status <> 'AVAILABLE'
"""

# The plain best-available hold: the lowest $2 free seats, skipping others' locks.
HOLD = """
UPDATE plain_seats SET status = 'PENDING', hold_expires_at = now() + interval '5 minutes'
WHERE id IN (SELECT id FROM plain_seats
             WHERE schedule_id = $1 AND status = 'AVAILABLE'
             ORDER BY seat_number LIMIT $2
             FOR UPDATE SKIP LOCKED)
RETURNING id
"""

RELEASE = """
UPDATE plain_seats SET status = 'AVAILABLE', hold_expires_at = NULL
WHERE id = ANY($1::bigint[]) AND status = 'PENDING'
"""

# The payment workload: every seat of schedule $1 held, each for the user of the same id, who
# has the money.
HOLD_FOR_PAYMENT = """
WITH seats AS (
    UPDATE plain_seats SET status = 'PENDING', hold_expires_at = now() + interval '1 day'
    WHERE schedule_id = $1 RETURNING id
)
INSERT INTO plain_balances (user_id, balance) SELECT id, 1000000000 FROM seats
"""

# The plain payment: the money taken if it is there, the held seat sold, the payment recorded.
PAY = """
WITH debit AS (
    UPDATE plain_balances SET balance = balance - $3 WHERE user_id = $2 AND balance >= $3
    RETURNING balance
), sold AS (
    UPDATE plain_seats SET status = 'RESERVED', hold_expires_at = NULL
    WHERE id = $1 AND status = 'PENDING' AND EXISTS (SELECT FROM debit)
    RETURNING id
)
INSERT INTO plain_payments (seat_id, user_id, amount) SELECT id, $2, $3 FROM sold
RETURNING id
"""

# The dates list from a count kept beside each date.
DATES = """
SELECT id, concert_date, available FROM plain_dates
WHERE concert_id = $1 AND available > 0
ORDER BY concert_date, id
"""


def pgbench_sql(sql: str, names: dict[int, str]) -> str:
    """A statement with $n replaced by pgbench :variables, on one line."""
    text = re.sub(r"\$(\d+)", lambda m: ":" + names[int(m[1])], sql)
    return " ".join(text.split())


def hold_release_script(schedule_id: int, quantity: int) -> str:
    """pgbench: hold the lowest free seats, then put them back (the venue never runs dry)."""
    hold = pgbench_sql(HOLD, {1: "sid", 2: "qty"}).removesuffix(" RETURNING id")
    return "\n".join([
        f"\\set sid {schedule_id}",
        f"\\set qty {quantity}",
        f"WITH held AS ({hold} RETURNING id) SELECT array_agg(id) AS ids FROM held",
        "\\gset",
        pgbench_sql(RELEASE, {1: "ids"}) + ";", ""])


def hold_script(schedule_id: int) -> str:
    """pgbench: the plain one-seat hold alone."""
    return "\n".join([f"\\set sid {schedule_id}", "\\set qty 1",
                      pgbench_sql(HOLD, {1: "sid", 2: "qty"}) + ";", ""])


def pay_script(first_seat: int, price: int) -> str:
    """pgbench: pay for the next held seat, in one statement (a sequence hands each seat out
    once; seat and user share the id)."""
    pay = pgbench_sql(PAY, {1: "seat", 2: "seat", 3: "amount"}).replace(":seat", "(SELECT seat FROM k)")
    pay = pay.replace("WITH ", f"WITH k AS (SELECT {first_seat} + nextval('plain_pay_seq') AS seat), ", 1)
    return "\n".join([f"\\set amount {price}", pay + ";", ""])
