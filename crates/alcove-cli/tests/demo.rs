//! `alcove demo` runs the whole mission to completion and finds no
//! plaintext in the relay's files.

use std::process::Command;

#[test]
fn demo_runs_end_to_end() {
    let out = Command::new(env!("CARGO_BIN_EXE_alcove"))
        .arg("demo")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run alcove demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "both match; both contacts are verified",
        "Dr. Rivera assigned homework \"Thought record, week 1\"",
        "identical to the original",
        "Sam handed in homework",
        "Dr. Rivera gave feedback",
        "Sam: read receipt for 1 message(s)",
        "licensed, verified by Northside Practice",
        "notice shown on this device (no server asked)",
        "verified offline: ",
        "Dr. Rivera created \"Thursday anxiety group\" with 4 members",
        "Dr. Rivera (to the group) assigned homework \"Avoidance diary\"",
        "Dr. Rivera (to the group): \"Thank you all. Same time next Thursday.\"",
        "Sam (to the group) handed in homework",
        "removed this device from \"Thursday anxiety group\"",
        "Sam and Jordan read the last message; Priya, removed, received nothing",
        "None of the 14 plaintexts appears anywhere in the relay's files.",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("FOUND"));
}
