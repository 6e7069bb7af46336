//! `alcove group ...`: group and couples therapy (docs/groups.md).

use std::path::PathBuf;

use alcove_client::{Client, DeviceAddress, GroupId, GroupInfo};
use anyhow::bail;
use clap::Subcommand;
use serde_json::json;

use crate::{attach, find_contact, message_id, print_sent};

#[derive(Subcommand)]
pub enum GroupAction {
    /// Create a group with this profile as its admin and contacts in it.
    Create {
        #[arg(long)]
        title: String,
        /// Contacts (names or the start of their addresses).
        #[arg(required = true, allow_hyphen_values = true)]
        members: Vec<String>,
    },
    /// Add contacts to a group (admins only).
    Add {
        /// The group: its title or the start of its id.
        group: String,
        #[arg(required = true, allow_hyphen_values = true)]
        members: Vec<String>,
    },
    /// Remove members from a group (admins only).
    Remove {
        group: String,
        #[arg(required = true, allow_hyphen_values = true)]
        members: Vec<String>,
    },
    /// List the groups, or one group's members.
    Members { group: Option<String> },
    /// Send a text to a group.
    Send { group: String, text: String },
    /// Assign homework in a group: to everyone, or `--to` one member.
    Assign {
        group: String,
        #[arg(long)]
        title: String,
        /// Due date, YYYY-MM-DD.
        #[arg(long)]
        due: Option<String>,
        #[arg(long, default_value = "")]
        instructions: String,
        /// One member only.
        #[arg(long, allow_hyphen_values = true)]
        to: Option<String>,
        /// Submissions go to the whole group (otherwise to you only).
        #[arg(long)]
        share: bool,
        file: Option<PathBuf>,
    },
    /// Hand in group homework (where it goes, the assignment says).
    Submit {
        group: String,
        #[arg(long)]
        assignment: String,
        text: String,
        file: Option<PathBuf>,
    },
    /// Leave a group (its keys are deleted from this device at once).
    Leave { group: String },
    /// Fresh keys for everyone after a suspected compromise of this device.
    UpdateKeys { group: String },
}

/// The group named by its title or the start of its hex id.
async fn find_group(client: &Client, wanted: &str) -> anyhow::Result<GroupInfo> {
    let groups = client.groups().await?;
    let wanted_lower = wanted.to_ascii_lowercase();
    let matches: Vec<GroupInfo> = groups
        .into_iter()
        .filter(|g| {
            g.title == wanted || (wanted.len() >= 4 && g.id.to_hex().starts_with(&wanted_lower))
        })
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one")),
        0 => bail!("no group {wanted:?}; `alcove group members` lists them"),
        n => bail!("{n} groups match {wanted:?}; give more of the id"),
    }
}

async fn addresses(client: &Client, names: &[String]) -> anyhow::Result<Vec<DeviceAddress>> {
    let mut out = Vec::new();
    for n in names {
        out.push(find_contact(client, n).await?.address);
    }
    Ok(out)
}

fn print_group(json: bool, g: &GroupInfo) {
    if json {
        println!(
            "{}",
            json!({ "group": g.id.to_hex(), "title": g.title, "epoch": g.epoch,
                    "is_admin": g.is_admin, "removed": g.removed,
                    "admins": g.admins.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "members": g.members.iter().map(|m| json!({ "address": m.address.to_string(), "name": m.name })).collect::<Vec<_>>() })
        );
    } else {
        let state = if g.removed {
            " (you are no longer in it)"
        } else if g.is_admin {
            " (you are its admin)"
        } else {
            ""
        };
        println!(
            "{} \"{}\" epoch {}, {} members{state}",
            g.id.to_hex(),
            g.title,
            g.epoch,
            g.members.len()
        );
    }
}

fn print_members(json: bool, g: &GroupInfo) {
    print_group(json, g);
    if !json {
        for m in &g.members {
            let role = if g.admins.contains(&m.address) {
                " admin"
            } else {
                ""
            };
            println!("  {:20} {}{role}", m.name, m.address);
        }
    }
}

pub async fn run(client: &Client, action: GroupAction, json: bool) -> anyhow::Result<()> {
    match action {
        GroupAction::Create { title, members } => {
            let list = addresses(client, &members).await?;
            let id: GroupId = client.create_group(&title, &list).await?;
            print_members(json, &client.group(&id).await?);
        }
        GroupAction::Add { group, members } => {
            let g = find_group(client, &group).await?;
            client
                .add_group_members(&g.id, &addresses(client, &members).await?)
                .await?;
            print_members(json, &client.group(&g.id).await?);
        }
        GroupAction::Remove { group, members } => {
            let g = find_group(client, &group).await?;
            client
                .remove_group_members(&g.id, &addresses(client, &members).await?)
                .await?;
            print_members(json, &client.group(&g.id).await?);
        }
        GroupAction::Members { group: None } => {
            for g in client.groups().await? {
                print_group(json, &g);
            }
        }
        GroupAction::Members { group: Some(group) } => {
            print_members(json, &find_group(client, &group).await?);
        }
        GroupAction::Send { group, text } => {
            let g = find_group(client, &group).await?;
            let id = client.send_group_text(&g.id, &text).await?;
            print_sent(json, "group_text", &id);
        }
        GroupAction::Assign {
            group,
            title,
            due,
            instructions,
            to,
            share,
            file,
        } => {
            let g = find_group(client, &group).await?;
            let member = match to {
                Some(name) => Some(find_contact(client, &name).await?.address),
                None => None,
            };
            let files = attach(client, file.as_deref()).await?;
            let id = client
                .assign_group_homework(
                    &g.id,
                    member.as_ref(),
                    &title,
                    &instructions,
                    due.as_deref(),
                    files,
                    share,
                )
                .await?;
            print_sent(json, "group_homework_assignment", &id);
        }
        GroupAction::Submit {
            group,
            assignment,
            text,
            file,
        } => {
            let g = find_group(client, &group).await?;
            let files = attach(client, file.as_deref()).await?;
            let id = client
                .submit_group_homework(&g.id, &message_id(&assignment)?, &text, files)
                .await?;
            print_sent(json, "group_homework_submission", &id);
        }
        GroupAction::Leave { group } => {
            let g = find_group(client, &group).await?;
            client.leave_group(&g.id).await?;
            if json {
                println!("{}", json!({ "left": g.id.to_hex() }));
            } else {
                println!(
                    "left \"{}\"; its keys are deleted from this device",
                    g.title
                );
            }
        }
        GroupAction::UpdateKeys { group } => {
            let g = find_group(client, &group).await?;
            client.update_group_keys(&g.id).await?;
            if json {
                println!("{}", json!({ "key_update": g.id.to_hex() }));
            } else {
                println!(
                    "key update started for \"{}\": members answer, then everyone sends on new keys",
                    g.title
                );
            }
        }
    }
    Ok(())
}
