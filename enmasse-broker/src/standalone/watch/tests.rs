use std::{path::PathBuf, time::Duration};

use super::Notifications;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enmasse-watch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The next change, within a second.
async fn next(notifications: &mut Notifications) -> std::collections::BTreeSet<PathBuf> {
    tokio::time::timeout(Duration::from_secs(1), notifications.next())
        .await
        .expect("a change is noticed within a second")
        .unwrap()
        .paths
}

/// Asserts that no further change comes within 200 ms.
async fn quiet(notifications: &mut Notifications) {
    let more = tokio::time::timeout(Duration::from_millis(200), notifications.next()).await;
    assert!(more.is_err(), "another change came: {more:?}");
}

#[tokio::test]
async fn an_edit_is_one_change_naming_the_file() {
    let dir = scratch("edit");
    let file = dir.join("a.yaml");
    std::fs::write(&file, "a: 1\n").unwrap();
    let mut notifications = Notifications::watch(std::slice::from_ref(&dir), &[]).unwrap();
    std::fs::write(&file, "a: 2\n").unwrap();
    assert!(next(&mut notifications).await.contains(&file));
    quiet(&mut notifications).await;
    // Reading it is not a change.
    std::fs::read_to_string(&file).unwrap();
    quiet(&mut notifications).await;
}

#[tokio::test]
async fn an_editors_save_by_rename_is_one_change_naming_the_file() {
    let dir = scratch("rename");
    let file = dir.join("a.yaml");
    std::fs::write(&file, "a: 1\n").unwrap();
    let mut notifications = Notifications::watch(std::slice::from_ref(&dir), &[]).unwrap();
    let temporary = dir.join(".a.yaml.swp");
    std::fs::write(&temporary, "a: 2\n").unwrap();
    std::fs::rename(&temporary, &file).unwrap();
    assert!(next(&mut notifications).await.contains(&file));
    quiet(&mut notifications).await;
}

#[tokio::test]
async fn a_deleted_file_is_named() {
    let dir = scratch("deleted");
    let file = dir.join("a.yaml");
    std::fs::write(&file, "a: 1\n").unwrap();
    let mut notifications = Notifications::watch(std::slice::from_ref(&dir), &[]).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(next(&mut notifications).await.contains(&file));
}

#[tokio::test]
async fn a_directory_added_is_watched_too() {
    let dir = scratch("directory");
    let mut notifications = Notifications::watch(std::slice::from_ref(&dir), &[]).unwrap();
    let team = dir.join("team");
    std::fs::create_dir(&team).unwrap();
    assert!(next(&mut notifications).await.contains(&team));
    let file = team.join("a.yaml");
    std::fs::write(&file, "a: 1\n").unwrap();
    assert!(next(&mut notifications).await.contains(&file));
}

#[tokio::test]
async fn a_file_given_by_itself_is_watched_through_its_directory() {
    let dir = scratch("file");
    let file = dir.join("a.yaml");
    std::fs::write(&file, "a: 1\n").unwrap();
    let mut notifications = Notifications::watch(std::slice::from_ref(&file), &[]).unwrap();
    let temporary = dir.join("a.yaml.new");
    std::fs::write(&temporary, "a: 2\n").unwrap();
    std::fs::rename(&temporary, &file).unwrap();
    assert!(next(&mut notifications).await.contains(&file));
    std::fs::write(&file, "a: 3\n").unwrap();
    assert!(
        next(&mut notifications).await.contains(&file),
        "the replaced file is still watched"
    );
}

#[tokio::test]
async fn a_file_written_in_place_is_taken_once_it_is_closed_whole() {
    use std::io::Write;
    let dir = scratch("in-place");
    let file = dir.join("a.yaml");
    std::fs::write(&file, "a: 1\n").unwrap();
    let mut notifications = Notifications::watch(std::slice::from_ref(&dir), &[]).unwrap();
    let writer = std::thread::spawn({
        let file = file.clone();
        move || {
            // As `kubectl get -o yaml > a.yaml` does: truncated, then written, slower than a save.
            let mut out = std::fs::File::create(&file).unwrap();
            out.write_all(b"first: half\n").unwrap();
            std::thread::sleep(Duration::from_millis(150));
            out.write_all(b"second: half\n").unwrap();
        }
    });
    assert!(next(&mut notifications).await.contains(&file));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "first: half\nsecond: half\n",
        "the change is taken once the file is whole"
    );
    writer.join().unwrap();
}

#[tokio::test]
async fn changes_below_an_ignored_directory_and_to_other_files_are_passed_over() {
    let dir = scratch("ignored");
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let mut notifications =
        Notifications::watch(std::slice::from_ref(&dir), std::slice::from_ref(&data)).unwrap();
    std::fs::write(data.join("journal.yaml"), "x").unwrap();
    std::fs::write(dir.join("notes.txt"), "x").unwrap();
    quiet(&mut notifications).await;
    std::fs::write(dir.join("a.yaml"), "a: 1\n").unwrap();
    assert!(next(&mut notifications).await.contains(&dir.join("a.yaml")));
}
