//! `datascale dataflow validate` as a user runs it, and every dataflow
//! shipped under `config/` checked by it, so the examples never drift.

use std::path::{Path, PathBuf};

use crate::support::{home, repository, run};

fn shipped_dataflows(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            shipped_dataflows(&path, found);
        } else if path
            .extension()
            .is_some_and(|ext| ext == "json" || ext == "yaml")
        {
            found.push(path);
        }
    }
}

#[test]
fn every_dataflow_under_config_is_valid() {
    let mut files = Vec::new();
    shipped_dataflows(&repository().join("config/dataflows"), &mut files);
    assert!(
        !files.is_empty(),
        "config/dataflows holds the seeded examples"
    );
    let mut args = vec!["dataflow".to_owned(), "validate".to_owned()];
    for file in &files {
        args.extend(["-f".to_owned(), file.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = home();
    let output = run(dir.path(), &args, &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert_eq!(text.matches("is valid").count(), files.len(), "{text}");
}

#[test]
fn invalid_documents_print_each_problem_with_its_path_and_exit_1() {
    let dir = home();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "name: bad\nsources:\n  - {name: in, type: stdin}\nsinks:\n  - {name: out, type: console, inputs: [nope], conf: {encoding: {codec: xml}}}\n",
    )
    .unwrap();
    let output = run(
        dir.path(),
        &["dataflow", "validate", "-f", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("2 problem(s)"), "{text}");
    assert!(
        text.contains("sinks[0].inputs[0]: no component named `nope`; known: in"),
        "{text}"
    );
    assert!(
        text.contains("sinks[0].conf.encoding.codec: unknown variant `xml`"),
        "{text}"
    );

    let output = run(
        dir.path(),
        &[
            "dataflow",
            "validate",
            "--json",
            "-f",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let results: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results[0]["valid"], false);
    assert_eq!(
        results[0]["errors"][0]["path"],
        "sinks[0].conf.encoding.codec"
    );

    let output = run(
        dir.path(),
        &["dataflow", "validate", "-f", "missing.json"],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("cannot read the file"));
}
