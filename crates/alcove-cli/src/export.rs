//! `alcove export`: a conversation as a signed, hash-chained transcript
//! (JSON, which `alcove-audit transcript` verifies) and a readable HTML
//! rendering of the same entries.

use std::path::Path;

use alcove_client::TranscriptFile;
use anyhow::Context;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// The readable rendering: every entry in order, who wrote it, when,
/// what, attachment digests, and whether its author signed it.
pub fn html(t: &TranscriptFile) -> String {
    let name = |from: &str| {
        let p = if from == "exporter" {
            &t.exporter
        } else {
            &t.peer
        };
        if p.name.is_empty() {
            p.address.clone()
        } else {
            p.name.clone()
        }
    };
    let mut rows = String::new();
    for e in &t.entries {
        let mut what = String::new();
        if !e.title.is_empty() {
            what.push_str(&format!("<b>{}</b><br>", escape(&e.title)));
        }
        what.push_str(&escape(&e.text));
        for a in &e.attachments {
            what.push_str(&format!(
                "<div class=att>{} ({}, {} bytes) SHA-256 {}</div>",
                escape(&a.file_name),
                escape(&a.media_type),
                a.size,
                escape(&a.digest)
            ));
        }
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            e.index,
            alcove_client::format_utc(u64::try_from(e.sent_at_ms / 1000).unwrap_or(0)),
            escape(&name(&e.from)),
            escape(&e.kind.replace('_', " ")),
            what,
            if e.author_signature.is_some() {
                "signed by its author"
            } else {
                "recorded by the exporter"
            }
        ));
    }
    format!(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>\
         <title>Transcript: {exporter} and {peer}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;\
         padding:.4em;vertical-align:top}}table{{border-collapse:collapse}}.att{{color:#555;\
         font-size:.9em}}</style></head><body>\n\
         <h1>Conversation transcript</h1>\n\
         <p>Exported by <b>{exporter}</b> ({exporter_address}) at {at} UTC. Other party: \
         <b>{peer}</b> ({peer_address}). {count} entries. Head {head}.</p>\n\
         <p>This rendering is for reading. The JSON file beside it is the record: verify it \
         with <code>alcove-audit transcript</code>. Entries marked \"signed by its author\" \
         prove their authorship to anyone; the others show what the exporter's device \
         recorded.</p>\n\
         <table><tr><th>#</th><th>Written (UTC)</th><th>By</th><th>Kind</th><th>Content</th>\
         <th>Proof</th></tr>\n{rows}</table></body></html>\n",
        exporter = escape(&name("exporter")),
        peer = escape(&name("peer")),
        exporter_address = escape(&t.exporter.address),
        peer_address = escape(&t.peer.address),
        at = alcove_client::format_utc(u64::try_from(t.exported_at_ms / 1000).unwrap_or(0)),
        count = t.count,
        head = escape(&t.head),
    )
}

/// Writes the transcript to `out` (JSON) and its rendering beside it
/// (`.html`); returns the rendering's path.
pub fn write(t: &TranscriptFile, out: &Path) -> anyhow::Result<std::path::PathBuf> {
    let json = serde_json::to_string_pretty(t)?;
    std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
    let page = out.with_extension("html");
    std::fs::write(&page, html(t)).with_context(|| format!("writing {}", page.display()))?;
    Ok(page)
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_is_escaped() {
        assert_eq!(
            super::escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
