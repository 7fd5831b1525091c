-- Access requests, their reviews, the grants they produce and the audit chain.
-- Times are unix milliseconds (UTC). `target` is the JSON of `access_store::Target`.
CREATE TABLE access_requests (
    id          TEXT PRIMARY KEY,
    requester   TEXT NOT NULL,
    target      TEXT NOT NULL,
    entry       TEXT NOT NULL,
    duration_s  INTEGER NOT NULL CHECK (duration_s > 0),
    reason      TEXT NOT NULL,
    state       TEXT NOT NULL
                CHECK (state IN ('pending', 'approved', 'denied', 'cancelled', 'expired')),
    created_at  INTEGER NOT NULL,
    decided_at  INTEGER,
    version     INTEGER NOT NULL
);
CREATE INDEX access_requests_by_requester ON access_requests (requester, created_at);
CREATE INDEX access_requests_by_state ON access_requests (state, created_at);

CREATE TABLE access_reviews (
    request_id  TEXT NOT NULL REFERENCES access_requests (id),
    reviewer    TEXT NOT NULL,
    verdict     TEXT NOT NULL CHECK (verdict IN ('approve', 'deny')),
    comment     TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (request_id, reviewer)
);

-- One grant per request at most: the UNIQUE backs the conditional UPDATE of `decide`.
CREATE TABLE access_grants (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL UNIQUE REFERENCES access_requests (id),
    user_ref    TEXT NOT NULL,
    target      TEXT NOT NULL,
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    revoked_at  INTEGER,
    revoked_by  TEXT,
    expired_at  INTEGER
);
CREATE INDEX access_grants_by_end ON access_grants (not_after);

-- The audit chain, shared by every replica: `line` is the exact JSON line, `line_sha256` the
-- SHA-256 of its bytes (the next line's `prev`).
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    event       TEXT NOT NULL,
    line        TEXT NOT NULL,
    line_sha256 TEXT NOT NULL
);
