//! Replays every file of the fuzz corpus (`fuzz/corpus/TARGET/`) through the same
//! invariant checks the fuzz targets run (`wire_academy::fuzzing`), on stable Rust, so a
//! crash the fuzzer once found stays fixed and every seed keeps passing.
//!
//! `UPDATE_CORPUS=1 cargo test --test fuzz_corpus` writes the hand-written seeds
//! (`fuzzing::seeds`) into the corpus; without it, a seed missing from the corpus or
//! differing from it fails the test. The brief run of each target under libFuzzer is
//! `scripts/fuzz.sh` (docs/fuzzing.md).

use std::fs;
use std::path::{Path, PathBuf};

use wire_academy::fuzzing::{TARGETS, check, seeds};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

#[test]
fn every_corpus_file_keeps_every_invariant() {
    let mut replayed = 0;
    for (target, check) in TARGETS {
        let dir = corpus().join(target);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every target keeps a corpus)", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: an empty corpus", dir.display());
        for file in files {
            let data = fs::read(&file).expect("a corpus file");
            // A panic names the file: the input that broke the invariant.
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: {} breaks an invariant", file.display());
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} corpus files");
}

#[test]
fn every_directory_is_a_target_and_every_target_has_a_fuzz_target() {
    for entry in fs::read_dir(corpus()).expect("fuzz/corpus") {
        let name = entry.expect("entry").file_name().into_string().expect("UTF-8");
        assert!(TARGETS.iter().any(|(t, _)| *t == name), "fuzz/corpus/{name} is no target");
    }
    let cargo = fs::read_to_string(corpus().join("../Cargo.toml")).expect("fuzz/Cargo.toml");
    for (target, _) in TARGETS {
        let source = corpus().join(format!("../fuzz_targets/{target}.rs"));
        let text = fs::read_to_string(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert!(text.contains(&format!("fuzzing::check(\"{target}\"")), "{} runs another check", source.display());
        assert!(cargo.contains(&format!("name = \"{target}\"")), "fuzz/Cargo.toml lacks [[bin]] {target}");
    }
}

#[test]
fn the_seeds_are_in_the_corpus() {
    let update = std::env::var("UPDATE_CORPUS").is_ok_and(|v| v == "1");
    for (target, name, data) in seeds() {
        check(target, &data);
        let file = corpus().join(target).join(format!("seed-{name}"));
        if update {
            fs::create_dir_all(file.parent().expect("a directory")).expect("mkdir");
            fs::write(&file, &data).expect("write a seed");
        } else {
            let stored =
                fs::read(&file).unwrap_or_else(|e| panic!("{}: {e} (UPDATE_CORPUS=1 writes it)", file.display()));
            assert!(stored == data, "{} differs from its seed (UPDATE_CORPUS=1 rewrites it)", file.display());
        }
    }
}
