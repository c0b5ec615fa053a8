use std::{collections::BTreeSet, path::PathBuf, sync::Arc};

use super::ManifestFiles;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enmasse-files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn address(name: &str) -> String {
    format!(
        "apiVersion: enmasse.io/v1beta1\nkind: Address\nmetadata: {{name: app.{name}}}\nspec: {{address: {name}, type: queue, plan: standard-small-queue}}\n"
    )
}

fn documents(
    files: &ManifestFiles,
    path: &PathBuf,
) -> Arc<[Result<enmasse_types::manifests::Document, enmasse_types::manifests::DocumentError>]> {
    files.files()[path].documents.clone()
}

#[test]
fn only_a_file_that_changed_is_read_and_parsed_again() {
    let dir = scratch("changed");
    let (a, b) = (dir.join("a.yaml"), dir.join("b.yaml"));
    std::fs::write(&a, address("a")).unwrap();
    std::fs::write(&b, address("b")).unwrap();
    let mut files = ManifestFiles::default();
    assert!(
        files
            .update(std::slice::from_ref(&dir), &BTreeSet::new(), false)
            .unwrap()
    );
    assert_eq!(files.files().len(), 2);
    let (a_before, b_before) = (documents(&files, &a), documents(&files, &b));
    assert!(
        !files
            .update(std::slice::from_ref(&dir), &BTreeSet::new(), false)
            .unwrap(),
        "nothing changed"
    );

    std::fs::write(&b, address("bb")).unwrap();
    assert!(
        files
            .update(std::slice::from_ref(&dir), &BTreeSet::new(), false)
            .unwrap()
    );
    assert!(
        Arc::ptr_eq(&a_before, &documents(&files, &a)),
        "a is not parsed again"
    );
    assert!(!Arc::ptr_eq(&b_before, &documents(&files, &b)), "b is");

    // Named by a notification and unchanged: read, and no change.
    let touched = BTreeSet::from([a.clone()]);
    assert!(!files.update(std::slice::from_ref(&dir), &touched, false).unwrap());
}

#[test]
fn a_file_that_goes_or_comes_in_a_new_directory_is_a_change() {
    let dir = scratch("gone");
    let a = dir.join("a.yaml");
    std::fs::write(&a, address("a")).unwrap();
    let mut files = ManifestFiles::default();
    files
        .update(std::slice::from_ref(&dir), &BTreeSet::new(), false)
        .unwrap();
    std::fs::remove_file(&a).unwrap();
    assert!(
        files
            .update(std::slice::from_ref(&dir), &BTreeSet::new(), false)
            .unwrap()
    );
    assert!(files.files().is_empty());

    std::fs::create_dir_all(dir.join("team")).unwrap();
    let c = dir.join("team/c.yml");
    std::fs::write(&c, address("c")).unwrap();
    std::fs::write(dir.join("team/notes.txt"), "not a manifest").unwrap();
    assert!(
        files
            .update(std::slice::from_ref(&dir), &BTreeSet::new(), false)
            .unwrap()
    );
    assert_eq!(files.files().keys().collect::<Vec<_>>(), [&c]);
}

#[test]
fn a_directory_that_cannot_be_listed_fails_and_forgets_nothing() {
    let dir = scratch("unlisted");
    std::fs::write(dir.join("a.yaml"), address("a")).unwrap();
    let mut files = ManifestFiles::default();
    files
        .update(std::slice::from_ref(&dir), &BTreeSet::new(), false)
        .unwrap();
    let missing = dir.join("missing");
    assert!(
        files
            .update(&[dir.clone(), missing], &BTreeSet::new(), false)
            .is_err()
    );
    assert_eq!(files.files().len(), 1);
}

#[cfg(unix)]
#[test]
fn a_mounted_config_map_is_read_once_by_its_links() {
    let dir = scratch("mounted");
    // As the kubelet lays out a ConfigMap volume.
    std::fs::create_dir_all(dir.join("..2026_12_02_10_00_00.1")).unwrap();
    std::fs::write(dir.join("..2026_12_02_10_00_00.1/a.yaml"), address("a")).unwrap();
    std::os::unix::fs::symlink("..2026_12_02_10_00_00.1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/a.yaml", dir.join("a.yaml")).unwrap();
    let mut files = ManifestFiles::default();
    files
        .update(std::slice::from_ref(&dir), &BTreeSet::new(), false)
        .unwrap();
    assert_eq!(files.files().keys().collect::<Vec<_>>(), [&dir.join("a.yaml")]);
}

/// The uid and resource version of each address of `path`.
fn versions(files: &ManifestFiles, path: &PathBuf) -> Vec<(Option<String>, Option<String>)> {
    documents(files, path)
        .iter()
        .map(|document| match document {
            Ok(enmasse_types::manifests::Document {
                manifest: enmasse_types::manifests::Manifest::Address(address),
                ..
            }) => (
                address.metadata.uid.clone(),
                address.metadata.resource_version.clone(),
            ),
            other => panic!("an address: {other:?}"),
        })
        .collect()
}

#[test]
fn each_address_is_versioned_by_its_read_and_keeps_its_version_until_its_file_changes() {
    let dir = scratch("versions");
    let (a, b) = (dir.join("a.yaml"), dir.join("b.yaml"));
    // A version left in a file (from `kubectl get -o yaml`) says nothing of its edits: replaced.
    let stale = "apiVersion: enmasse.io/v1beta1\nkind: Address\nmetadata: {name: app.s, uid: u, resourceVersion: '7'}\nspec: {address: s, type: queue, plan: standard-small-queue}\n";
    std::fs::write(&a, format!("{}---\n{stale}", address("a"))).unwrap();
    std::fs::write(&b, address("b")).unwrap();
    let mut files = ManifestFiles::default();
    files
        .update(std::slice::from_ref(&dir), &BTreeSet::new(), false)
        .unwrap();
    let (a_before, b_before) = (versions(&files, &a), versions(&files, &b));
    let uids: Vec<_> = a_before
        .iter()
        .chain(&b_before)
        .map(|(uid, _)| uid.clone())
        .collect();
    assert!(uids.iter().all(Option::is_some), "{uids:?}");
    assert_eq!(
        uids.iter().collect::<BTreeSet<_>>().len(),
        3,
        "one uid per document"
    );
    assert_ne!(a_before[1].1.as_deref(), Some("7"));

    std::fs::write(&b, address("bb")).unwrap();
    files
        .update(std::slice::from_ref(&dir), &BTreeSet::new(), false)
        .unwrap();
    assert_eq!(versions(&files, &a), a_before, "a was not read again");
    let b_after = versions(&files, &b);
    assert_eq!(b_after[0].0, b_before[0].0, "the same document of the same file");
    assert_ne!(b_after[0].1, b_before[0].1, "read again: a new version");

    files.reread_all(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(
        versions(&files, &a),
        a_before,
        "nothing changed: nothing read again"
    );

    // Polling parses every file again when one changed; the same text keeps its versions.
    std::fs::write(&b, address("bbb")).unwrap();
    assert!(files.reread_all(std::slice::from_ref(&dir)).unwrap());
    assert_eq!(versions(&files, &a), a_before);
    assert_ne!(versions(&files, &b)[0].1, b_after[0].1);

    // A cache built anew (the evaluator outlives it) never gives a version twice.
    let mut anew = ManifestFiles::default();
    anew.update(std::slice::from_ref(&dir), &BTreeSet::new(), false)
        .unwrap();
    let again = versions(&anew, &a);
    assert_eq!(again[0].0, a_before[0].0);
    assert_ne!(again[0].1, a_before[0].1);
}
