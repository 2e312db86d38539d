//! Several replicas starting at once migrate the database exactly once and all come up.

use whatsapp_numbers::db::Db;

use crate::helpers::TestDatabase;

#[test]
fn replicas_starting_together_all_come_up_on_one_migrated_database() {
    let (_database, url) = TestDatabase::create();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Db::connect(&url, 1).map(|db| db.backend()))
        })
        .collect();
    for start in starts {
        let started = start.join().expect("start-up thread");
        assert!(started.is_ok(), "a replica failed to start: {started:?}");
    }
    // And once more on the migrated database: nothing left to apply, no error.
    assert!(Db::connect(&url, 1).is_ok());
}
