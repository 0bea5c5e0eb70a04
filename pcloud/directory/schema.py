"""The directory's SQLite schema, one migration per version (see pcloud.store.sqlite)."""

MIGRATIONS: tuple[str, ...] = (
    # 1: domains, users, app passwords, SSH keys, aliases.
    """
    CREATE TABLE domains (
        name TEXT PRIMARY KEY,
        created INTEGER NOT NULL
    );
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL UNIQUE,
        domain TEXT NOT NULL REFERENCES domains(name),
        display_name TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL,
        is_admin INTEGER NOT NULL DEFAULT 0,
        quota_bytes INTEGER NOT NULL DEFAULT 0,  -- 0: no limit
        created INTEGER NOT NULL
    );
    CREATE TABLE app_passwords (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        created INTEGER NOT NULL,
        last_used INTEGER,
        UNIQUE (user_id, label)
    );
    CREATE TABLE ssh_keys (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        public_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        comment TEXT NOT NULL DEFAULT '',
        created INTEGER NOT NULL,
        UNIQUE (user_id, fingerprint)
    );
    -- An alias delivers to each of its targets: local users or external addresses.
    -- The address "@domain" is that domain's catch-all.
    CREATE TABLE aliases (
        address TEXT NOT NULL,
        domain TEXT NOT NULL REFERENCES domains(name),
        target TEXT NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (address, target)
    );
    """,
    # 2: calendars and address books shared with other users (see pcloud/dav/).
    """
    CREATE TABLE dav_shares (
        owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        collection TEXT NOT NULL,           -- its name in the owner's home: "calendar"
        grantee_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        writable INTEGER NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (owner_id, collection, grantee_id)
    );
    """,
    # 3: the user's own contact card, published at /contact/<address>.vcf when they choose.
    """
    ALTER TABLE users ADD COLUMN publish_card INTEGER NOT NULL DEFAULT 0;
    """,
    # 4: SCRAM keys of each user's password (RFC 5802), one row per mechanism: written whenever
    # the password is set, and at the first password login of a user whose password is older.
    """
    CREATE TABLE scram_keys (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        mechanism TEXT NOT NULL,            -- "SCRAM-SHA-1", "SCRAM-SHA-256"
        salt BLOB NOT NULL,
        iterations INTEGER NOT NULL,
        stored_key BLOB NOT NULL,
        server_key BLOB NOT NULL,
        PRIMARY KEY (user_id, mechanism)
    );
    """,
)
