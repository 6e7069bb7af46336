//! `alcove demo`: the whole mission end to end, on an embedded relay.

use std::path::Path;
use std::time::Duration;

use alcove_client::{
    Availability, Body, Client, Credential, CredentialClaims, Event, IssuerKey, OfficeHours,
    TrustedIssuer,
};
use anyhow::Context;

/// A line of the transcript: who saw what.
struct Line {
    side: &'static str,
    text: String,
}

fn describe(e: &Event) -> String {
    let who = if e.contact_name.is_empty() {
        "unknown"
    } else {
        e.contact_name.as_str()
    };
    if let alcove_client::EventKind::OutOfHours(n) = &e.kind {
        return format!("notice shown on this device (no server asked): {n}");
    }
    if let alcove_client::EventKind::GroupChanged(c) = &e.kind {
        return if c.removed_me {
            format!(
                "{who} removed this device from \"{}\"; its group keys are deleted",
                c.title
            )
        } else if c.added.len() > 1 && c.epoch == 1 {
            format!(
                "{who} created \"{}\" with {} members (roster signed by the admin, checked here)",
                c.title,
                c.added.len()
            )
        } else {
            format!(
                "{who} changed \"{}\": {} joined, {} removed (epoch {})",
                c.title,
                c.added.len(),
                c.removed.len(),
                c.epoch
            )
        };
    }
    let Some(body) = e.body() else {
        return format!("{who}: {:?}", e.kind);
    };
    let who = if e.group.is_some() {
        format!("{who} (to the group)")
    } else {
        who.to_string()
    };
    match body {
        Body::Text(t) => format!("{who}: \"{}\"", t.body),
        Body::HomeworkAssignment(a) => format!(
            "{who} assigned homework \"{}\" (due {}): {} [{} attachment(s)]",
            a.title,
            a.due_date,
            a.instructions,
            a.attachments.len()
        ),
        Body::HomeworkSubmission(s) => format!("{who} handed in homework: \"{}\"", s.body),
        Body::Feedback(f) => format!("{who} gave feedback: \"{}\"", f.body),
        Body::Attachment(a) => format!("{who} sent a file: {} ({} bytes)", a.file_name, a.size),
        Body::DeliveryReceipt(r) => format!(
            "{who}: delivery receipt for {} message(s)",
            r.message_ids.len()
        ),
        Body::ReadReceipt(r) => {
            format!("{who}: read receipt for {} message(s)", r.message_ids.len())
        }
        Body::InviteAccepted(i) => format!(
            "{} accepted the invite (verified through it)",
            i.display_name
        ),
        Body::RetryRequest(_) | Body::RetryUnavailable(_) => format!("{who}: session recovery"),
        Body::DeliveryKeyChanged(_) => format!("{who}: new delivery key"),
        Body::CredentialPresentation(_) => format!("{who} presented a credential"),
        Body::Availability(_) => format!("{who}: office hours"),
        Body::GroupUpdate(_)
        | Body::GroupSenderKey(_)
        | Body::GroupKeyUpdate(_)
        | Body::GroupLeave(_) => format!("{who}: group keys and membership"),
        Body::RecordSigning(r) => format!(
            "{who} turned verifiable records {}",
            if r.enabled { "on" } else { "off" }
        ),
        Body::Retention(r) => format!("{who} set disappearing messages to {} s", r.seconds),
    }
}

async fn sync(
    client: &Client,
    side: &'static str,
    transcript: &mut Vec<Line>,
) -> anyhow::Result<Vec<Event>> {
    let events = client.sync().await?;
    for e in &events {
        let line = Line {
            side,
            text: describe(e),
        };
        println!("  [{side:9}] received  {}", line.text);
        transcript.push(line);
        client.confirm(e).await?;
    }
    Ok(events)
}

fn said(side: &'static str, text: String, transcript: &mut Vec<Line>) {
    println!("  [{side:9}] sent      {text}");
    transcript.push(Line {
        side,
        text: format!("(sent) {text}"),
    });
}

/// Runs the demo in `dir` (a fresh temporary directory).
pub async fn run(dir: &Path) -> anyhow::Result<()> {
    let relay_dir = dir.join("relay");
    let relay = alcove_server::start(alcove_server::Config::for_dir(&relay_dir)).await?;
    let url = format!("http://{}", relay.addr);
    println!(
        "Relay listening on {url}, sled store in {}\n",
        relay_dir.display()
    );

    let therapist = Client::create(&dir.join("therapist"), &[1u8; 32], &url, "Dr. Rivera").await?;
    let client = Client::create(&dir.join("client"), &[2u8; 32], &url, "Sam").await?;
    let mut transcript = Vec::new();
    let mut plaintexts: Vec<String> = Vec::new();

    println!("1. Invite and verification");
    let invite = therapist
        .create_invite(Duration::from_secs(24 * 3600))
        .await?;
    println!("  therapist's invite link (QR payload): {invite}");
    let contact = client.accept_invite(&invite).await?;
    client
        .rename_contact(&contact.address, "Dr. Rivera")
        .await?;
    sync(&therapist, "therapist", &mut transcript).await?;
    let sam = therapist
        .contacts()
        .await
        .into_iter()
        .next()
        .context("the therapist has no contact after the invite")?;
    println!(
        "  safety number on the client's phone:    {}",
        contact.safety_number
    );
    println!(
        "  safety number on the therapist's phone: {}",
        sam.safety_number
    );
    anyhow::ensure!(
        contact.safety_number == sam.safety_number,
        "safety numbers differ"
    );
    anyhow::ensure!(
        sam.verified && contact.verified,
        "contacts not verified through the invite"
    );
    println!("  both match; both contacts are verified\n");

    println!("2. The therapist's licence, office hours and crisis text");
    let practice = IssuerKey::generate(&mut rand_core::OsRng);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let licence = "PSY-20417";
    let credential = Credential::issue(
        &mut rand_core::OsRng,
        &practice,
        CredentialClaims {
            subject: therapist.address(),
            display_name: "Dr. Ana Rivera".into(),
            licence_number: licence.into(),
            jurisdiction: "Ontario, CA".into(),
            issued_at: now,
            expires_at: now + 365 * 86_400,
        },
    )?;
    println!(
        "  [practice ] issued a credential for Dr. Rivera's device (issuer key {})",
        practice.public()
    );
    therapist.present_credential(credential.as_bytes()).await?;
    println!("  [therapist] presented it: digest committed in the key log, credential sent sealed");
    plaintexts.push(licence.into());
    // Office hours 09:00-17:00 on weekdays, in a time zone where it is
    // 20:00 now: the client is writing in the evening.
    let minute_now = ((now / 60) % 1440) as i32;
    let mut offset = 20 * 60 - minute_now;
    if offset < -720 {
        offset += 1440;
    } else if offset > 840 {
        offset -= 1440;
    }
    let crisis = "If you are in danger, call 911 or go to the nearest emergency department.";
    therapist
        .set_availability(Availability {
            updated_at_ms: 0,
            utc_offset_minutes: offset,
            hours: (1..=5)
                .map(|weekday| OfficeHours {
                    weekday,
                    start_minute: 9 * 60,
                    end_minute: 17 * 60,
                })
                .collect(),
            reply_within_hours: 24,
            crisis_text: crisis.into(),
        })
        .await?;
    println!("  [therapist] set office hours (weekdays 09:00-17:00 local), a 24-hour reply time and a crisis text");
    plaintexts.push(crisis.into());
    sync(&client, "client", &mut transcript).await?;
    let trusted = TrustedIssuer {
        name: "Northside Practice".into(),
        key: practice.public().0,
    };
    let verified = client
        .verify_credential(&contact.address, &[trusted])
        .await?;
    println!(
        "  [client   ] Dr. Rivera: {} (licence {}, {}); signature, expiry, identity and key log checked",
        verified.badge(),
        verified.licence_number,
        verified.jurisdiction
    );
    println!();

    println!("3. Messages while the client is offline");
    for text in [
        "Welcome, Sam. This is our private space between sessions.",
        "Before Thursday, try to notice one moment each day when you felt calm.",
    ] {
        therapist.send_text(&sam.address, text).await?;
        said("therapist", format!("\"{text}\""), &mut transcript);
        plaintexts.push(text.to_string());
    }
    println!("  (the client comes online)");
    sync(&client, "client", &mut transcript).await?;
    let reply = "Thank you. Tuesday evening, on my walk, I felt calm.";
    client.send_text(&contact.address, reply).await?;
    said("client", format!("\"{reply}\""), &mut transcript);
    plaintexts.push(reply.to_string());
    // Written outside office hours: the client's own device shows the
    // notice at once.
    sync(&client, "client", &mut transcript).await?;
    sync(&therapist, "therapist", &mut transcript).await?;
    println!();

    println!("4. Homework with a worksheet");
    let worksheet_text = "THOUGHT RECORD WORKSHEET\nSituation | Automatic thought | Emotion (0-100) | Evidence for | Evidence against | Balanced thought\n";
    let worksheet = dir.join("thought-record.txt");
    let mut body = worksheet_text.repeat(3000); // about 300 KB
    body.push_str("END OF WORKSHEET\n");
    std::fs::write(&worksheet, &body)?;
    plaintexts.push("THOUGHT RECORD WORKSHEET".into());
    let pointer = therapist
        .upload_file(&worksheet, "text/plain", |done, total| {
            if done == total {
                println!(
                    "  [therapist] uploaded  worksheet, {total} bytes, encrypted on the device"
                );
            }
        })
        .await?;
    let instructions = "Fill in one row each evening when your mood drops.";
    let assignment = therapist
        .assign_homework(
            &sam.address,
            "Thought record, week 1",
            instructions,
            Some("2026-12-01"),
            vec![pointer],
        )
        .await?;
    said(
        "therapist",
        "homework \"Thought record, week 1\" with the worksheet attached".to_string(),
        &mut transcript,
    );
    plaintexts.push(instructions.into());

    let received = sync(&client, "client", &mut transcript).await?;
    let homework = received
        .iter()
        .find_map(|e| match (e.message_id(), e.body()) {
            (Some(id), Some(Body::HomeworkAssignment(a))) => Some((id, a.clone())),
            _ => None,
        })
        .context("the client did not receive the assignment")?;
    anyhow::ensure!(homework.0 == assignment, "assignment id mismatch");
    let downloaded = dir.join("client-worksheet.txt");
    client
        .download_file(&homework.1.attachments[0], &downloaded, |_, _| {})
        .await?;
    anyhow::ensure!(
        std::fs::read(&downloaded)? == body.as_bytes(),
        "worksheet differs after download"
    );
    println!("  [client   ] downloaded the worksheet: digest and every chunk verified, identical to the original");
    let answer = "Tuesday: the bus was late, I thought 'I always mess up' (anxiety 70). Balanced: lateness was not my fault.";
    client
        .submit_homework(&contact.address, &assignment, answer, vec![])
        .await?;
    said(
        "client",
        format!("homework submission: \"{answer}\""),
        &mut transcript,
    );
    plaintexts.push(answer.into());

    let got = sync(&therapist, "therapist", &mut transcript).await?;
    let submission = got
        .iter()
        .find(|e| matches!(e.body(), Some(Body::HomeworkSubmission(_))))
        .and_then(|e| e.message_id())
        .context("the therapist did not receive the submission")?;
    let feedback = "Well done, Sam. Notice how the balanced thought lowered the anxiety.";
    therapist
        .send_feedback(&sam.address, &submission, feedback)
        .await?;
    said(
        "therapist",
        format!("feedback: \"{feedback}\""),
        &mut transcript,
    );
    plaintexts.push(feedback.into());

    let got = sync(&client, "client", &mut transcript).await?;
    let ids: Vec<_> = got.iter().filter_map(|e| e.message_id()).collect();
    client.send_read_receipt(&contact.address, &ids).await?;
    said("client", "read receipt".into(), &mut transcript);
    sync(&therapist, "therapist", &mut transcript).await?;
    println!();

    println!("5. Transcript as each side saw it");
    for side in ["therapist", "client"] {
        println!("  {side}:");
        for line in transcript.iter().filter(|l| l.side == side) {
            println!("    {}", line.text);
        }
    }
    println!();

    println!("6. The conversation for the clinical record");
    let record = therapist.export_transcript(&sam.address).await?;
    let checked = alcove_client::verify_transcript(&record)?;
    println!(
        "  [therapist] exported {} entries as a signed hash chain; verified offline: {} by the therapist, {} by the client",
        checked.count, checked.by_exporter, checked.by_peer
    );
    println!("  (`alcove export CONTACT --out FILE` writes it as JSON and HTML; `alcove-audit transcript FILE` verifies it)\n");

    println!("7. A group session: three clients, one removed, homework to the group");
    let intake = therapist
        .create_invite_for(Duration::from_secs(24 * 3600), 2)
        .await?;
    let jordan = Client::create(&dir.join("jordan"), &[3u8; 32], &url, "Jordan").await?;
    let priya = Client::create(&dir.join("priya"), &[4u8; 32], &url, "Priya").await?;
    jordan.accept_invite(&intake).await?;
    priya.accept_invite(&intake).await?;
    sync(&therapist, "therapist", &mut transcript).await?;
    let mut members = vec![sam.address];
    for c in therapist.contacts().await {
        if c.address != sam.address {
            members.push(c.address);
        }
    }
    let group = therapist
        .create_group("Thursday anxiety group", &members)
        .await?;
    println!(
        "  [therapist] created \"Thursday anxiety group\" with Sam, Jordan and Priya; the relay sees {} sealed envelopes, no group",
        members.len()
    );
    let clients = [(&client, "client"), (&jordan, "jordan"), (&priya, "priya")];
    for (c, side) in clients {
        sync(c, side, &mut transcript).await?;
    }
    let welcome = "Welcome to the group. Let us begin with how this week went.";
    therapist.send_group_text(&group, welcome).await?;
    said(
        "therapist",
        format!("to the group: \"{welcome}\" (encrypted once, sealed to each member)"),
        &mut transcript,
    );
    plaintexts.push(welcome.into());
    for (c, side) in clients {
        sync(c, side, &mut transcript).await?;
    }
    let share = "I avoided a party on Saturday, but I went for a walk instead.";
    jordan.send_group_text(&group, share).await?;
    said(
        "jordan",
        format!("to the group: \"{share}\""),
        &mut transcript,
    );
    plaintexts.push(share.into());
    let group_homework = "List three situations you avoided this week and rate the anxiety 0-100.";
    let group_assignment = therapist
        .assign_group_homework(
            &group,
            None,
            "Avoidance diary",
            group_homework,
            Some("2026-12-10"),
            vec![],
            false,
        )
        .await?;
    said(
        "therapist",
        "group homework \"Avoidance diary\" (submissions to the therapist only)".into(),
        &mut transcript,
    );
    plaintexts.push(group_homework.into());
    for (c, side) in clients {
        sync(c, side, &mut transcript).await?;
    }
    let private_answer = "Avoided the party (80), a phone call (60), the gym (40).";
    client
        .submit_group_homework(&group, &group_assignment, private_answer, vec![])
        .await?;
    said(
        "client",
        format!("group homework, to the therapist only: \"{private_answer}\""),
        &mut transcript,
    );
    plaintexts.push(private_answer.into());
    let got = sync(&therapist, "therapist", &mut transcript).await?;
    anyhow::ensure!(
        got.iter().any(
            |e| e.group == Some(group) && matches!(e.body(), Some(Body::HomeworkSubmission(_)))
        ),
        "the therapist did not receive the group submission"
    );
    let priya_address = priya.address();
    therapist
        .remove_group_members(&group, &[priya_address])
        .await?;
    println!("  [therapist] removed Priya: the roster is signed anew and every member makes new keys before its next message");
    for (c, side) in clients {
        sync(c, side, &mut transcript).await?;
    }
    let after = "Thank you all. Same time next Thursday.";
    therapist.send_group_text(&group, after).await?;
    said(
        "therapist",
        format!("to the group: \"{after}\""),
        &mut transcript,
    );
    plaintexts.push(after.into());
    for (c, side) in clients {
        let got = sync(c, side, &mut transcript).await?;
        let heard = got
            .iter()
            .any(|e| matches!(e.body(), Some(Body::Text(t)) if t.body == after));
        anyhow::ensure!(
            heard == (side != "priya"),
            "{side} heard the message after the removal: {heard}"
        );
    }
    println!("  Sam and Jordan read the last message; Priya, removed, received nothing and holds no key for it");
    let submissions_seen_by_members = [&jordan, &priya];
    for c in submissions_seen_by_members {
        anyhow::ensure!(
            c.pending_events()
                .await?
                .iter()
                .all(|e| !matches!(e.body(), Some(Body::HomeworkSubmission(_)))),
            "a member saw a submission meant for the therapist only"
        );
    }
    println!();

    relay.shutdown().await?;
    drop(therapist);
    drop(client);
    drop(jordan);
    drop(priya);

    println!("8. What the relay stored");
    let (files, bytes, found) = scan_store(&relay_dir, &plaintexts)?;
    println!("  {files} files, {bytes} bytes in {}", relay_dir.display());
    let store = alcove_store::SledStore::open(&relay_dir)?;
    use alcove_store::Store;
    println!(
        "  envelopes still waiting in mailboxes: {}",
        store.total_depth().await?
    );
    store.close().await?;
    drop(store);
    for p in &plaintexts {
        let short: String = p.chars().take(48).collect();
        println!(
            "  plaintext \"{short}…\": {}",
            if found.contains(p) { "FOUND" } else { "absent" }
        );
    }
    anyhow::ensure!(
        found.is_empty(),
        "plaintext found in the relay's files: {found:?}"
    );
    println!(
        "\nNone of the {} plaintexts appears anywhere in the relay's files.",
        plaintexts.len()
    );
    Ok(())
}

/// Files, bytes, and which plaintexts occur in any file under `dir`.
fn scan_store(dir: &Path, plaintexts: &[String]) -> anyhow::Result<(usize, u64, Vec<String>)> {
    let mut files = 0;
    let mut bytes = 0;
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let data = std::fs::read(&path)?;
            files += 1;
            bytes += data.len() as u64;
            for p in plaintexts {
                if !found.contains(p) && data.windows(p.len()).any(|w| w == p.as_bytes()) {
                    found.push(p.clone());
                }
            }
        }
    }
    Ok((files, bytes, found))
}
