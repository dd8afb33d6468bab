-- Users, concerts and the audit trail of admitted queue tokens.
CREATE TABLE users (
    id          bigint PRIMARY KEY CONSTRAINT users_id_positive CHECK (id > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE concerts (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL CONSTRAINT concerts_name_not_blank CHECK (name <> ''),
    host        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT concerts_name_host_key UNIQUE (name, host)
);

-- One row per token that was admitted; a join alone writes nothing here (it touches only Redis).
CREATE TABLE waiting_token (
    id           bigserial PRIMARY KEY,
    token        uuid NOT NULL CONSTRAINT waiting_token_token_key UNIQUE,
    user_id      bigint NOT NULL CONSTRAINT waiting_token_user_fkey REFERENCES users (id),
    concert_id   bigint NOT NULL CONSTRAINT waiting_token_concert_fkey REFERENCES concerts (id),
    ticket       bigint NOT NULL,
    state        text NOT NULL
                 CONSTRAINT waiting_token_state_check CHECK (state IN ('AVAILABLE', 'EXPIRED')),
    reason       text CONSTRAINT waiting_token_reason_check
                 CHECK (reason IN ('timeout', 'left', 'completed', 'dropped')),
    admitted_at  timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    expired_at   timestamptz,
    CONSTRAINT waiting_token_expired_has_reason CHECK ((state = 'EXPIRED') = (reason IS NOT NULL))
);
CREATE INDEX waiting_token_user_idx ON waiting_token (user_id, concert_id);
