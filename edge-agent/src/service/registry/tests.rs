//! The registry on a real SQLite store and blob dir, with hooks that load text: what the
//! model and function repositories share, without ONNX Runtime or wasmtime.

use std::sync::Mutex;

use serde::Deserialize;

use super::*;
use crate::storage::open_function_db;

/// A config: a serving `group` that two entries may not share, like a function route.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Cfg {
    group: Option<String>,
}

#[derive(Debug)]
struct Text {
    version: u64,
    config: Cfg,
}

/// Records what the registry tells it; refuses to load `refuse`d versions and empty bytes.
#[derive(Default)]
struct Fake {
    refuse: Option<u64>,
    removed: Mutex<Vec<String>>,
    counts: Mutex<Vec<usize>>,
    loaded: Mutex<Vec<(String, u64)>>,
}

impl Hooks for Fake {
    type Loaded = Text;
    type Config = Cfg;
    const KIND: Kind = Kind::Function;

    fn config(loaded: &Text) -> &Cfg {
        &loaded.config
    }

    async fn load(
        &self,
        _name: &str,
        version: u64,
        bytes: Vec<u8>,
        config: Cfg,
    ) -> Result<Arc<Text>, RepositoryError> {
        if bytes.is_empty() || self.refuse == Some(version) {
            return Err(Rejection::Config {
                kind: Kind::Function,
                reason: "refused".into(),
            }
            .into());
        }
        Ok(Arc::new(Text { version, config }))
    }

    fn check_serving(
        &self,
        _name: &str,
        config: &Cfg,
        serving: &mut dyn Iterator<Item = (&str, &Text)>,
    ) -> Result<(), RepositoryError> {
        for (other, t) in serving {
            if config.group.is_some() && t.config.group == config.group {
                return Err(RepositoryError::Conflict {
                    kind: Kind::Function,
                    name: other.to_owned(),
                    conflict: Conflict::NoEarlierVersion,
                });
            }
        }
        Ok(())
    }

    fn loaded(&self, name: &str, loaded: &Text) {
        self.loaded
            .lock()
            .unwrap()
            .push((name.to_owned(), loaded.version));
    }

    fn blob_removed(&self, sha256: &str) {
        self.removed.lock().unwrap().push(sha256.to_owned());
    }

    fn loaded_changed(&self, count: usize) {
        self.counts.lock().unwrap().push(count);
    }
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    async fn open(&self, hooks: Fake) -> Registry<Fake> {
        let (store, _) = open_function_db(&self.dir.path().join("db.sqlite3")).unwrap();
        let blobs = BlobStore::open(self.dir.path().join("blobs")).unwrap();
        Registry::open(Arc::new(store), blobs, hooks).await.unwrap()
    }

    fn blobs(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("blobs"))
            .unwrap()
            .count()
    }
}

fn new(name: &str, version: Option<u64>, bytes: &[u8], group: Option<&str>) -> NewVersion<Cfg> {
    NewVersion {
        name: name.into(),
        version,
        bytes: bytes.to_vec(),
        config: Cfg {
            group: group.map(Into::into),
        },
        expected_sha256: None,
        activate: true,
    }
}

fn sha(bytes: &[u8]) -> String {
    crate::storage::sha256_hex(bytes)
}

fn serving(r: &Registry<Fake>, name: &str) -> u64 {
    r.resolve(name, None).unwrap().version
}

#[tokio::test]
async fn versions_activate_roll_back_and_delete_with_their_blobs() {
    let setup = Setup::new();
    let r = setup.open(Fake::default()).await;
    assert_eq!(r.add(new("a", None, b"one", None)).await.unwrap(), 1);
    let quiet = NewVersion {
        activate: false,
        ..new("a", None, b"two", None)
    };
    assert_eq!(r.add(quiet).await.unwrap(), 2);
    assert_eq!(
        serving(&r, "a"),
        1,
        "a first version is active, a quiet one is not"
    );
    r.activate("a", 2).await.unwrap();
    assert_eq!(serving(&r, "a"), 2);
    assert_eq!(r.rollback("a").await.unwrap(), 1);
    assert_eq!(serving(&r, "a"), 1);
    assert!(matches!(
        r.rollback("a").await,
        Err(RepositoryError::Conflict {
            conflict: Conflict::NoEarlierVersion,
            ..
        })
    ));
    assert!(matches!(
        r.delete_version("a", 1).await,
        Err(RepositoryError::Conflict {
            conflict: Conflict::ActiveVersion(1),
            ..
        })
    ));
    r.delete_version("a", 2).await.unwrap();
    assert!(r.loaded("a", 2).is_none());
    assert_eq!(*r.hooks().removed.lock().unwrap(), [sha(b"two")]);
    assert_eq!(setup.blobs(), 1);
    r.delete("a").await.unwrap();
    assert_eq!(setup.blobs(), 0);
    assert!(matches!(
        r.listing("a"),
        Err(RepositoryError::NotFound { version: None, .. })
    ));
    assert!(matches!(
        r.resolve("a", None),
        Err(RepositoryError::NotFound { .. })
    ));
    assert_eq!(*r.hooks().counts.lock().unwrap(), [0, 1, 2, 1, 0]);
    assert_eq!(
        *r.hooks().loaded.lock().unwrap(),
        [("a".to_owned(), 1), ("a".to_owned(), 2)]
    );
}

#[tokio::test]
async fn a_blob_two_versions_share_goes_with_the_last_of_them() {
    let setup = Setup::new();
    let r = setup.open(Fake::default()).await;
    for _ in 0..3 {
        r.add(new("a", None, b"same", None)).await.unwrap();
    }
    r.delete_version("a", 1).await.unwrap();
    r.delete_version("a", 2).await.unwrap();
    assert!(r.hooks().removed.lock().unwrap().is_empty());
    assert_eq!(setup.blobs(), 1);
    r.delete("a").await.unwrap();
    assert_eq!(*r.hooks().removed.lock().unwrap(), [sha(b"same")]);
    assert_eq!(setup.blobs(), 0);
}

#[tokio::test]
async fn refused_uploads_change_nothing() {
    let setup = Setup::new();
    let r = setup.open(Fake::default()).await;
    r.add(new("a", Some(2), b"one", Some("g"))).await.unwrap();
    let refusals = [
        new("-a", None, b"x", None),
        new("b", Some(0), b"x", None),
        new("a", Some(2), b"x", None),
        new("b", None, b"", None),
        new("b", None, b"x", Some("g")),
        NewVersion {
            expected_sha256: Some(sha(b"y")),
            ..new("b", None, b"x", None)
        },
    ];
    let mut errors = Vec::new();
    for refused in refusals {
        errors.push(r.add(refused).await.unwrap_err());
    }
    assert!(
        matches!(
            &errors[..],
            [
                RepositoryError::Rejected(Rejection::InvalidName { .. }),
                RepositoryError::Rejected(Rejection::VersionZero),
                RepositoryError::Conflict {
                    conflict: Conflict::VersionExists(2),
                    ..
                },
                RepositoryError::Rejected(Rejection::Config { .. }),
                RepositoryError::Conflict { .. },
                RepositoryError::Rejected(Rejection::ShaMismatch { .. }),
            ]
        ),
        "{errors:?}"
    );
    assert_eq!(setup.blobs(), 1);
    assert_eq!(r.listings().unwrap().len(), 1);
    assert!(r.listing("b").is_err());
    assert!(r.hooks().removed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn activation_and_rollback_check_what_serves_beside_them() {
    let setup = Setup::new();
    let r = setup.open(Fake::default()).await;
    r.add(new("a", None, b"a1", Some("g"))).await.unwrap();
    r.add(new("a", None, b"a2", Some("h"))).await.unwrap();
    r.activate("a", 1).await.unwrap();
    r.add(new("b", None, b"b1", Some("h"))).await.unwrap();
    assert!(matches!(
        r.activate("a", 2).await,
        Err(RepositoryError::Conflict { .. })
    ));
    assert!(
        matches!(r.rollback("a").await, Err(RepositoryError::Conflict { .. })),
        "rolling back to version 2 would share group h with b"
    );
    assert_eq!(serving(&r, "a"), 1);
}

#[tokio::test]
async fn a_reopen_reloads_what_loads_and_lists_the_rest() {
    let setup = Setup::new();
    {
        let r = setup.open(Fake::default()).await;
        r.add(new("a", None, b"one", None)).await.unwrap();
        r.add(new("a", None, b"two", None)).await.unwrap();
        r.rollback("a").await.unwrap();
    }
    let r = setup
        .open(Fake {
            refuse: Some(2),
            ..Fake::default()
        })
        .await;
    assert_eq!(serving(&r, "a"), 1);
    let err = r.resolve("a", Some(2)).unwrap_err();
    assert!(matches!(
        err,
        RepositoryError::NotReady {
            version: Some(2),
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "function `a` has no ready version 2: refused"
    );
    let listing = r.listing("a").unwrap();
    assert_eq!(
        listing
            .versions
            .iter()
            .map(|v| (v.record.version, v.ready))
            .collect::<Vec<_>>(),
        [(1, true), (2, false)]
    );
    assert_eq!(*r.hooks().counts.lock().unwrap(), [1]);
}

#[tokio::test]
async fn read_only_entries_serve_and_refuse_every_change() {
    let setup = Setup::new();
    let r = setup.open(Fake::default()).await;
    let record = VersionRecord {
        version: 3,
        sha256: "x".into(),
        size: 1,
        config_json: "{}".into(),
        created_at: 0,
    };
    let text = Arc::new(Text {
        version: 3,
        config: Cfg::default(),
    });
    r.insert_read_only(
        "m".into(),
        ReadOnly {
            active: Some(3),
            versions: vec![(record, Cfg::default())],
            loaded: [(3, text)].into(),
            failed: BTreeMap::new(),
            problem: None,
        },
    );
    assert_eq!(serving(&r, "m"), 3);
    let listing = r.listing("m").unwrap();
    assert!(listing.read_only && listing.versions[0].ready);
    let read_only = |e: RepositoryError| {
        matches!(
            e,
            RepositoryError::Conflict {
                conflict: Conflict::ReadOnly,
                ..
            }
        )
    };
    assert!(read_only(
        r.add(new("m", Some(4), b"x", None)).await.unwrap_err()
    ));
    assert!(read_only(r.activate("m", 3).await.unwrap_err()));
    assert!(read_only(r.rollback("m").await.unwrap_err()));
    assert!(read_only(r.delete_version("m", 3).await.unwrap_err()));
    assert!(read_only(r.delete("m").await.unwrap_err()));
    assert_eq!(serving(&r, "m"), 3);
}

/// A stored version that fails to load at start is listed with its reason; it makes the entry
/// unready only while it is active, and activating another version, or deleting it, clears
/// that.
#[tokio::test]
async fn a_version_that_failed_to_load_is_unready_while_active_until_replaced_or_deleted() {
    let setup = Setup::new();
    {
        let r = setup.open(Fake::default()).await;
        r.add(new("a", None, b"one", None)).await.unwrap();
        r.add(new("a", None, b"two", None)).await.unwrap();
        r.add(new("b", None, b"b1", None)).await.unwrap();
    }
    let r = setup
        .open(Fake {
            refuse: Some(2),
            ..Fake::default()
        })
        .await;
    let failed = Unready {
        name: "a".into(),
        version: Some(2),
        reason: "refused".into(),
    };
    assert_eq!(r.unready(), std::slice::from_ref(&failed));
    let listing = r.listing("a").unwrap();
    assert_eq!(listing.reason.as_deref(), Some("refused"));
    let reasons: Vec<_> = listing
        .versions
        .iter()
        .map(|v| (v.record.version, v.ready, v.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        [(1, true, None), (2, false, Some("refused".to_owned()))]
    );
    let err = r.resolve("a", None).unwrap_err();
    assert!(err.to_string().ends_with("version 2: refused"), "{err}");

    r.activate("a", 1).await.unwrap();
    assert_eq!(r.unready(), [], "the failed version no longer serves");
    assert_eq!(r.listing("a").unwrap().reason, None);
    assert_eq!(
        r.listing("a").unwrap().versions[1].reason.as_deref(),
        Some("refused"),
        "it is still listed as failed"
    );
    r.activate("a", 2).await.unwrap();
    assert_eq!(r.unready(), [failed]);
    r.rollback("a").await.unwrap();
    r.delete_version("a", 2).await.unwrap();
    assert_eq!(r.unready(), []);
    assert!(r.listing("a").unwrap().versions.iter().all(|v| v.ready));
}

#[tokio::test]
async fn a_read_only_entry_with_a_problem_is_unready_with_it() {
    let setup = Setup::new();
    let r = setup.open(Fake::default()).await;
    r.insert_read_only(
        "m".into(),
        ReadOnly {
            active: None,
            versions: Vec::new(),
            loaded: BTreeMap::new(),
            failed: BTreeMap::new(),
            problem: Some("no version".into()),
        },
    );
    assert_eq!(
        r.unready(),
        [Unready {
            name: "m".into(),
            version: None,
            reason: "no version".into(),
        }]
    );
    let err = r.resolve("m", None).unwrap_err().to_string();
    assert_eq!(err, "function `m` has no active version: no version");
}
