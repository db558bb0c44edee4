-- Keys the staff page signs with (issue 13): today the sign-in form's token, an HMAC over a
-- pre-session id and an expiry, so that a token is valid only if this server minted it. Kept
-- in the database so that every instance serving the page shares it and it survives restarts;
-- made on first use (random, from the operating system).
CREATE TABLE web_keys (
    name        TEXT    PRIMARY KEY,
    key         TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

-- Sign-in tries are reserved here before the password is checked (a row is a failure until
-- the try succeeds); the throttle reads the latest try per address and per name.
CREATE INDEX staff_login_failures_name_ip ON staff_login_failures(name, ip, at);
