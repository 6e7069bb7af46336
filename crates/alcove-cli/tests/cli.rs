//! The `alcove` command for scripts: two profiles talk through a real relay
//! using only the CLI, with `--json` output.

use std::path::Path;
use std::process::Command;

fn alcove(profile: &Path, key: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_alcove"))
        .arg("--profile")
        .arg(profile)
        .arg("--json")
        .args(args)
        .env("ALCOVE_STORAGE_KEY", key)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run alcove");
    assert!(
        out.status.success(),
        "alcove {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn field(line: &str, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    v[name].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_profiles_talk_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let relay = alcove_server::start(alcove_server::Config::for_dir(dir.path().join("relay")))
        .await
        .unwrap();
    let url = format!("http://{}", relay.addr);
    let t = dir.path().join("therapist");
    let c = dir.path().join("client");
    let (tk, ck) = ("11".repeat(32), "22".repeat(32));

    let t2 = t.clone();
    let c2 = c.clone();
    let (tk2, ck2) = (tk.clone(), ck.clone());
    tokio::task::spawn_blocking(move || {
        alcove(
            &t2,
            &tk2,
            &["init", "--server", &url, "--name", "Dr. Rivera"],
        );
        alcove(&c2, &ck2, &["init", "--server", &url, "--name", "Sam"]);
        let invite = field(&alcove(&t2, &tk2, &["invite"]), "invite");
        alcove(&c2, &ck2, &["accept", &invite, "--name", "Dr. Rivera"]);
        let inbox = alcove(&t2, &tk2, &["inbox"]);
        assert!(inbox.contains("\"kind\":\"invite_accepted\""), "{inbox}");
        let contacts = alcove(&t2, &tk2, &["contacts"]);
        assert!(
            contacts.contains("\"name\":\"Sam\"") && contacts.contains("\"verified\":true"),
            "{contacts}"
        );

        alcove(&t2, &tk2, &["send", "Sam", "Hello from the CLI"]);
        let worksheet = c2.parent().unwrap().join("sheet.txt");
        std::fs::write(&worksheet, "worksheet body").unwrap();
        let hw = field(
            &alcove(
                &t2,
                &tk2,
                &[
                    "assign",
                    "Sam",
                    "--title",
                    "Sheet",
                    "--due",
                    "2026-12-01",
                    worksheet.to_str().unwrap(),
                ],
            ),
            "message_id",
        );
        let inbox = alcove(&c2, &ck2, &["inbox"]);
        assert!(inbox.contains("Hello from the CLI"), "{inbox}");
        assert!(inbox.contains("homework_assignment"), "{inbox}");
        // Scripts read fields, not prose: the assignment's id, due date and
        // worksheet (blob id, file name, size, media type) are fields.
        let assignment: serde_json::Value = inbox
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["kind"] == "homework_assignment")
            .unwrap();
        assert_eq!(assignment["message_id"], hw.as_str(), "{assignment}");
        assert_eq!(assignment["due_date"], "2026-12-01", "{assignment}");
        assert_eq!(assignment["title"], "Sheet", "{assignment}");
        let sheet = &assignment["attachments"][0];
        assert_eq!(sheet["file_name"], "sheet.txt", "{assignment}");
        assert_eq!(sheet["size"], 14, "{assignment}");
        assert_eq!(sheet["media_type"], "text/plain", "{assignment}");
        let blob = sheet["blob_id"].as_str().unwrap().to_string();
        let out = c2.parent().unwrap().join("got.txt");
        alcove(
            &c2,
            &ck2,
            &["download", &blob, "--out", out.to_str().unwrap()],
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "worksheet body");
        alcove(
            &c2,
            &ck2,
            &["submit", "Dr. Rivera", "--assignment", &hw, "Done!"],
        );
        let inbox = alcove(&t2, &tk2, &["inbox"]);
        assert!(
            inbox.contains("homework_submission") && inbox.contains("Done!"),
            "{inbox}"
        );
        // A key rotation: the contact learns the new key with its next
        // inbox and keeps writing.
        let rotated = alcove(&t2, &tk2, &["delivery", "rotate"]);
        assert!(rotated.contains("\"delivery\":\"rotated\""), "{rotated}");
        alcove(&c2, &ck2, &["inbox"]);
        alcove(&c2, &ck2, &["send", "Dr. Rivera", "After the rotation"]);
        let inbox = alcove(&t2, &tk2, &["inbox"]);
        assert!(inbox.contains("After the rotation"), "{inbox}");
        let open = alcove(&t2, &tk2, &["delivery", "open", "on"]);
        assert!(open.contains("open to anyone"), "{open}");
    })
    .await
    .unwrap();

    // A wrong storage key is refused with a clear message.
    let out = Command::new(env!("CARGO_BIN_EXE_alcove"))
        .args(["--profile", t.to_str().unwrap(), "contacts"])
        .env("ALCOVE_STORAGE_KEY", "33".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong storage key"));
    let _ = (tk, ck, c);
    relay.shutdown().await.unwrap();
}

/// Peak resident memory (KiB) of one `alcove` run, via GNU time.
fn peak_rss_kib(profile: &Path, key: &str, args: &[&str]) -> u64 {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "PEAK_RSS_KIB=%M"])
        .arg(env!("CARGO_BIN_EXE_alcove"))
        .arg("--profile")
        .arg(profile)
        .args(args)
        .env("ALCOVE_STORAGE_KEY", key)
        .env("RUST_LOG", "warn")
        .output()
        .expect("GNU time (/usr/bin/time) runs alcove");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "alcove {args:?} failed: {stderr}");
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("PEAK_RSS_KIB="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_attachment_round_trips_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = alcove_server::Config::for_dir(dir.path().join("relay"));
    config.limits.max_blob_bytes = 64 << 20;
    let relay = alcove_server::start(config).await.unwrap();
    let url = format!("http://{}", relay.addr);
    let t = dir.path().join("therapist");
    let c = dir.path().join("client");
    let (tk, ck) = ("11".repeat(32), "22".repeat(32));
    let big = dir.path().join("session-recording.mp4");
    let data: Vec<u8> = (0..50u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    let got = dir.path().join("downloaded.mp4");
    let small = dir.path().join("note.txt");
    std::fs::write(&small, b"a small file for the baseline").unwrap();

    let (t2, c2, big2, got2, small2) = (
        t.clone(),
        c.clone(),
        big.clone(),
        got.clone(),
        small.clone(),
    );
    let (base, up, down) = tokio::task::spawn_blocking(move || {
        alcove(&t2, &tk, &["init", "--server", &url, "--name", "T"]);
        alcove(&c2, &ck, &["init", "--server", &url, "--name", "C"]);
        let invite = field(&alcove(&t2, &tk, &["invite"]), "invite");
        alcove(&c2, &ck, &["accept", &invite, "--name", "T"]);
        alcove(&t2, &tk, &["inbox"]);
        let base = peak_rss_kib(&t2, &tk, &["attach", "C", small2.to_str().unwrap()]);
        let up = peak_rss_kib(&t2, &tk, &["attach", "C", big2.to_str().unwrap()]);
        let inbox = alcove(&c2, &ck, &["inbox"]);
        let blob = inbox
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["attachment"]["file_name"] == "session-recording.mp4")
            .and_then(|v| v["attachment"]["blob_id"].as_str().map(String::from))
            .unwrap();
        let down = peak_rss_kib(
            &c2,
            &ck,
            &["download", &blob, "--out", got2.to_str().unwrap()],
        );
        (base, up, down)
    })
    .await
    .unwrap();
    assert!(std::fs::read(&got).unwrap() == data, "the download differs");
    eprintln!("peak RSS: {base} KiB sending a 29-byte file; {up} KiB uploading and {down} KiB downloading 51 200 KiB");
    // Streaming keeps a few 64 KiB chunks in flight, so the 50 MiB file must
    // cost far less than its size over the small-file baseline. Generous
    // bound: 12 MiB more than the baseline (a buffered file would be 50).
    assert!(
        up < base + 12 * 1024,
        "upload peak RSS {up} KiB vs baseline {base} KiB"
    );
    assert!(
        down < base + 12 * 1024,
        "download peak RSS {down} KiB vs baseline {base} KiB"
    );
    relay.shutdown().await.unwrap();
}

/// Runs `alcove` and returns (success, stdout, stderr).
fn try_alcove(profile: &Path, key: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_alcove"))
        .arg("--profile")
        .arg(profile)
        .args(args)
        .env("ALCOVE_STORAGE_KEY", key)
        .env("RUST_LOG", "off")
        .output()
        .expect("run alcove");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A new user's first run: a mistyped URL, a relay that is down, then the
/// corrected `init`; an invite that could never be valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_mistakes_are_explained_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("me");
    let key = "44".repeat(32);
    // A free port with nothing listening: the relay is down.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (p, k) = (profile.clone(), key.clone());
    let (ok, _, err) = tokio::task::spawn_blocking(move || {
        try_alcove(&p, &k, &["init", "--server", "notaurl", "--name", "Sam"])
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(
        err.contains("invalid relay URL") && err.contains("http://"),
        "{err}"
    );
    assert!(!err.contains("retry later"), "{err}");
    assert!(!profile.exists(), "a malformed URL left a profile behind");

    let (p, k) = (profile.clone(), key.clone());
    let url = format!("http://{down}");
    let (ok, _, err) = tokio::task::spawn_blocking(move || {
        try_alcove(&p, &k, &["init", "--server", &url, "--name", "Sam"])
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(err.contains("retry later"), "{err}");
    assert!(
        !profile.exists(),
        "a failed registration left a profile behind"
    );

    // The relay comes up; the same command now works.
    let relay = alcove_server::start(alcove_server::Config::for_dir(dir.path().join("relay")))
        .await
        .unwrap();
    let url = format!("http://{}", relay.addr);
    let (p, k) = (profile.clone(), key.clone());
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        let init = try_alcove(&p, &k, &["init", "--server", &url, "--name", "Sam"]);
        assert!(init.0, "init after the relay came up: {}", init.2);
        try_alcove(&p, &k, &["invite", "--valid-hours", "0"])
    })
    .await
    .unwrap();
    assert!(!ok, "an invite valid for 0 hours was created: {out}");
    assert!(err.contains("--valid-hours"), "{err}");
    relay.shutdown().await.unwrap();
}

/// A practice's tools through the CLI only: an issuer key and a credential
/// for the therapist, published and verified by the client, then revoked;
/// office hours with the out-of-hours notice; verifiable records,
/// disappearing messages and an exported transcript that verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practice_runs_credentials_hours_and_transcripts_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let relay = alcove_server::start(alcove_server::Config::for_dir(dir.path().join("relay")))
        .await
        .unwrap();
    let url = format!("http://{}", relay.addr);
    let root = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (t, c) = (root.join("therapist"), root.join("client"));
        let (tk, ck) = ("11".repeat(32), "22".repeat(32));
        let address = field(
            &alcove(&t, &tk, &["init", "--server", &url, "--name", "Dr. Rivera"]),
            "address",
        );
        alcove(&c, &ck, &["init", "--server", &url, "--name", "Sam"]);
        let invite = field(&alcove(&t, &tk, &["invite"]), "invite");
        alcove(&c, &ck, &["accept", &invite, "--name", "Dr. Rivera"]);
        alcove(&t, &tk, &["inbox"]);

        // The issuer needs no profile.
        let key_file = root.join("practice.key");
        let cred = root.join("rivera.cred");
        let issuer = field(
            &alcove(
                &root.join("none"),
                "",
                &[
                    "credential",
                    "issuer-key",
                    "--out",
                    key_file.to_str().unwrap(),
                ],
            ),
            "issuer",
        );
        alcove(
            &root.join("none"),
            "",
            &[
                "credential",
                "issue",
                "--issuer-key",
                key_file.to_str().unwrap(),
                "--subject",
                &address,
                "--name",
                "Dr. Ana Rivera",
                "--licence",
                "PSY-20417",
                "--jurisdiction",
                "Ontario, CA",
                "--valid-days",
                "90",
                "--out",
                cred.to_str().unwrap(),
            ],
        );
        alcove(&t, &tk, &["credential", "publish", cred.to_str().unwrap()]);
        alcove(&c, &ck, &["inbox"]);
        let trust = format!("Northside Practice={issuer}");
        let shown = alcove(
            &c,
            &ck,
            &["credential", "show", "Dr. Rivera", "--trust", &trust],
        );
        assert_eq!(
            field(&shown, "badge"),
            "licensed, verified by Northside Practice"
        );
        assert_eq!(field(&shown, "licence"), "PSY-20417");
        let (ok, _, err) = try_alcove(
            &c,
            &ck,
            &[
                "credential",
                "show",
                "Dr. Rivera",
                "--trust",
                &format!("Other={}", "ab".repeat(32)),
            ],
        );
        assert!(!ok && err.contains("does not trust"), "{err}");

        // No office hours at all: every message gets the notice.
        alcove(
            &t,
            &tk,
            &[
                "availability",
                "set",
                "--reply-within-hours",
                "48",
                "--crisis",
                "Call 112 in an emergency.",
            ],
        );
        alcove(&c, &ck, &["inbox"]);
        let hours = alcove(&c, &ck, &["availability", "show", "Dr. Rivera"]);
        assert!(hours.contains("\"open_now\":false"), "{hours}");
        alcove(&c, &ck, &["records", "on", "Dr. Rivera"]);
        alcove(&c, &ck, &["send", "Dr. Rivera", "A hard day."]);
        let inbox = alcove(&c, &ck, &["inbox"]);
        assert!(
            inbox.contains("\"kind\":\"out_of_hours\"")
                && inbox.contains("Call 112 in an emergency."),
            "{inbox}"
        );
        let inbox = alcove(&t, &tk, &["inbox"]);
        assert!(inbox.contains("\"kind\":\"verifiable_records\""), "{inbox}");
        alcove(
            &t,
            &tk,
            &["send", "Sam", "I read it; let us talk on Thursday."],
        );
        alcove(&t, &tk, &["disappearing", "Sam", "--days", "30"]);
        let inbox = alcove(&c, &ck, &["inbox"]);
        assert!(inbox.contains("\"kind\":\"disappearing\""), "{inbox}");
        let history = alcove(&t, &tk, &["history", "Sam"]);
        assert_eq!(history.lines().count(), 2, "{history}");

        // The transcript verifies; its rendering is beside it.
        let out = root.join("transcript.json");
        let exported = alcove(&t, &tk, &["export", "Sam", "--out", out.to_str().unwrap()]);
        assert!(exported.contains("\"entries\":2"), "{exported}");
        let file: alcove_client::TranscriptFile =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let v = alcove_client::verify_transcript(&file).unwrap();
        assert_eq!((v.by_exporter, v.by_peer, v.proven_by_peer), (1, 1, 1));
        let page = std::fs::read_to_string(out.with_extension("html")).unwrap();
        assert!(page.contains("A hard day.") && page.contains("signed by its author"));

        // Revoked by the issuer: the client refuses it.
        alcove(
            &root.join("none"),
            "",
            &[
                "credential",
                "revoke",
                "--issuer-key",
                key_file.to_str().unwrap(),
                "--credential",
                cred.to_str().unwrap(),
                "--server",
                &url,
            ],
        );
        let (ok, _, err) = try_alcove(
            &c,
            &ck,
            &["credential", "show", "Dr. Rivera", "--trust", &trust],
        );
        assert!(!ok && err.contains("revoked"), "{err}");
    })
    .await
    .unwrap();
    relay.shutdown().await.unwrap();
}

/// Group therapy through the CLI only: `alcove group create`, `members`,
/// `send`, `assign` (submissions to the therapist only), `submit`,
/// `remove`; what each member's inbox shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_runs_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let relay = alcove_server::start(alcove_server::Config::for_dir(dir.path().join("relay")))
        .await
        .unwrap();
    let url = format!("http://{}", relay.addr);
    let root = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let t = root.join("therapist");
        let tk = "11".repeat(32);
        alcove(&t, &tk, &["init", "--server", &url, "--name", "Dr. Rivera"]);
        let invite = field(&alcove(&t, &tk, &["invite", "--uses", "2"]), "invite");
        let members = [
            ("Sam", root.join("sam"), "22".repeat(32)),
            ("Alex", root.join("alex"), "33".repeat(32)),
        ];
        for (name, p, k) in &members {
            alcove(p, k, &["init", "--server", &url, "--name", name]);
            alcove(p, k, &["accept", &invite, "--name", "Dr. Rivera"]);
        }
        alcove(&t, &tk, &["inbox"]);
        let created = alcove(
            &t,
            &tk,
            &["group", "create", "--title", "Couples", "Sam", "Alex"],
        );
        let group = field(&created, "group");
        let v: serde_json::Value = serde_json::from_str(created.lines().next().unwrap()).unwrap();
        assert_eq!(v["members"].as_array().unwrap().len(), 3);
        assert_eq!(v["is_admin"], true);
        alcove(
            &t,
            &tk,
            &["group", "send", "Couples", "Welcome, both of you."],
        );
        alcove(
            &t,
            &tk,
            &[
                "group",
                "assign",
                &group[..8],
                "--title",
                "Gratitude list",
                "--due",
                "2026-12-10",
            ],
        );
        let mut assignment = String::new();
        for (_, p, k) in &members {
            let inbox = alcove(p, k, &["inbox"]);
            assert!(inbox.contains("\"kind\":\"group_changed\""), "{inbox}");
            assert!(inbox.contains("Welcome, both of you."), "{inbox}");
            assert!(inbox.contains(&format!("\"group\":\"{group}\"")), "{inbox}");
            let line = inbox
                .lines()
                .find(|l| l.contains("homework_assignment"))
                .unwrap();
            assignment = field(line, "message_id");
            let listed = alcove(p, k, &["group", "members"]);
            assert_eq!(field(&listed, "title"), "Couples");
        }
        let (_, sam, sk) = &members[0];
        alcove(
            sam,
            sk,
            &[
                "group",
                "submit",
                "Couples",
                "--assignment",
                &assignment,
                "Three things.",
            ],
        );
        let inbox = alcove(&t, &tk, &["inbox"]);
        assert!(
            inbox.contains("\"kind\":\"homework_submission\"") && inbox.contains("Three things."),
            "{inbox}"
        );
        let (_, alex, ak) = &members[1];
        assert!(!alcove(alex, ak, &["inbox"]).contains("Three things."));
        // Only the admin changes membership; the admin removes Alex.
        let (ok, _, err) = try_alcove(alex, ak, &["group", "remove", "Couples", "Sam"]);
        assert!(!ok && err.contains("only the group's admins"), "{err}");
        let after = alcove(&t, &tk, &["group", "remove", "Couples", "Alex"]);
        let v: serde_json::Value = serde_json::from_str(after.lines().next().unwrap()).unwrap();
        assert_eq!(v["members"].as_array().unwrap().len(), 2);
        let inbox = alcove(alex, ak, &["inbox"]);
        assert!(inbox.contains("\"removed_me\":true"), "{inbox}");
        let (ok, _, err) = try_alcove(alex, ak, &["group", "send", "Couples", "hello?"]);
        assert!(!ok && err.contains("no longer in the group"), "{err}");
    })
    .await
    .unwrap();
    relay.shutdown().await.unwrap();
}
