//! Security review finding 18: the SQLite database holds password hashes and email addresses,
//! so it is created readable by its owner only, like `valet.db.secret` beside it: the
//! database, its `-wal` and `-shm` files (and the `.lock` file) are 0600 whatever the umask.
//! SQLite only: PostgreSQL keeps no files of ours, so there is no PostgreSQL variant.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::{self, Backend, TEST_SECRET, clean_command, run_cli};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_sqlite_store_and_its_wal_files_are_private() {
    let app = harness::spawn(Backend::Sqlite).await;
    // A write through the server, so that the WAL and its index are in use.
    app.create_contacts_api().await;
    let service = app.create_service_client("read:contacts").await;
    app.service_token(&service, harness::CONTACTS).await;
    let db = app.dir.path().join("valet.db");
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        assert_eq!(
            mode(Path::new(&name)),
            0o600,
            "valet.db{suffix} must be readable by its owner only"
        );
    }
}

#[test]
fn the_cli_creates_the_database_private_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = clean_command();
    cmd.current_dir(dir.path())
        .env("VALET_SECRET", TEST_SECRET)
        .env("VALET_DATABASE_URL", "sqlite://fresh.db")
        .args(["client", "list", "--json"]);
    run_cli(&mut cmd);
    for name in ["fresh.db", "fresh.db.lock"] {
        assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
    }
    for name in ["fresh.db-wal", "fresh.db-shm"] {
        let path = dir.path().join(name);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }
}
