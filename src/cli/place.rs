//! `drconsole place`: initial placement of a new VM (the datastores it could go to, ranked).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::{CliError, emit, emit_json, load};

#[derive(Debug, Args)]
pub struct PlaceArgs {
    /// The topology file.
    pub topology: PathBuf,
    /// The new VM's disk size in MiB (at least 1).
    #[arg(long, value_name = "N")]
    pub disk_mib: u64,
    /// The protection group the new VM is meant to be in.
    #[arg(long, value_name = "PG")]
    pub pg: String,
    /// Print JSON: {"protection_group","disk_mib","recommended","datastores":[{"datastore",
    /// "rating","fault","keeps_protection","fits","free_mib","free_after_mib","used_after_bp",
    /// "placeable","reason","explanation",...}]}.
    #[arg(long)]
    pub json: bool,
}

/// `drconsole place --json`.
#[derive(Debug, Serialize)]
struct PlaceOutput<'a> {
    protection_group: &'a str,
    disk_mib: u64,
    /// The first datastore the VM may go to (fits, available), safest first.
    recommended: Option<&'a str>,
    datastores: &'a [crate::engine::PlacementOption],
}

pub(super) fn place(a: &PlaceArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let t = load(&a.topology)?;
    let file = a.topology.display();
    let options = crate::engine::rank_initial_placement(
        &t,
        &a.pg,
        a.disk_mib,
        &t.free_mib_by_datastore(),
        &Default::default(),
    )
    .map_err(|e| CliError(format!("{file}: {e}")))?;
    let recommended = crate::engine::recommended(&options).map(|o| o.datastore.as_str());
    if a.json {
        return emit_json(
            out,
            &PlaceOutput {
                protection_group: &a.pg,
                disk_mib: a.disk_mib,
                recommended,
                datastores: &options,
            },
        );
    }
    emit(
        out,
        &format!(
            "A new VM of {} MiB meant for protection group {}: protected-site datastores, safest first",
            a.disk_mib, a.pg
        ),
    )?;
    let width = options.iter().map(|o| o.datastore.len()).max().unwrap_or(0);
    for o in &options {
        let mark = if Some(o.datastore.as_str()) == recommended {
            "*"
        } else {
            " "
        };
        emit(
            out,
            &format!(
                "{mark} {:width$}  {:17}  {}",
                o.datastore,
                o.rating.as_str(),
                o.reason
            ),
        )?;
    }
    match recommended {
        Some(ds) => emit(out, &format!("* recommended: {ds}")),
        None => emit(out, "no datastore has room for it"),
    }
}
