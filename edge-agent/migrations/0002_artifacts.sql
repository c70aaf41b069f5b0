-- sha256 of each precompiled artifact the agent wrote (key: `{wasm sha256}-{engine hash}`), so
-- an artifact is deserialized only if its bytes are what was written. Kept here, not next to
-- the artifacts, so that whoever can write the cache dir cannot make the agent trust a file.
CREATE TABLE artifacts (
    key TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
