//! A replica made before changes were signed cannot sync with current ones:
//! it says so, rather than mixing unsigned history into a signed fleet.

mod common;

use fleetdeck_store::Replica;
use fleetdeck_sync::Engine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_from_before_signed_changes_refuses_to_sync_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    drop(Replica::init(tmp.path(), "ops", "old").unwrap());
    // What a schema-2 database looks like: no signatures kept.
    let conn = rusqlite::Connection::open(tmp.path().join("replica.db")).unwrap();
    conn.execute_batch("DROP TABLE signatures; DROP TABLE quarantine; PRAGMA user_version = 2;")
        .unwrap();
    drop(conn);
    let r = Replica::open(tmp.path()).expect("an old replica still opens locally");
    assert!(r.is_unsigned());
    let e = match Engine::start(r, common::config()).await {
        Ok(_) => panic!("an unsigned replica must not sync"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("before fleetdeck signed changes"), "{e}");
    assert!(e.contains("fleetdeck join"), "{e}");
}
