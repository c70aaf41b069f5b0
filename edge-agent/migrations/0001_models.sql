-- Models, their versions (blobs are files named by sha256), and the activation history that
-- rollback walks back through.
CREATE TABLE models (
    name           TEXT PRIMARY KEY NOT NULL,
    created_at     INTEGER NOT NULL
);

CREATE TABLE versions (
    name        TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    config      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);

-- The active version is the newest row for a model; rollback deletes that row.
CREATE TABLE activations (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    name     TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    version  INTEGER NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX activations_by_name ON activations(name, id);
