//! `tagsmith config schema`: the JSON Schema of `tagsmith.yaml`, for editors and CI.

use clap::Subcommand;

use super::Status;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the JSON Schema of tagsmith.yaml (for yaml-language-server and other validators).
    Schema,
}

pub fn run(command: ConfigCommand) -> anyhow::Result<Status> {
    match command {
        ConfigCommand::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::config::schema::json_schema())?
            );
            Ok(Status::Ok)
        }
    }
}
