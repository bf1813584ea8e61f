//! Shell completions and man pages, generated from the clap definitions so they cannot drift.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use super::{Cli, CliError};

pub fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    // Into a buffer first: clap_complete panics when stdout goes away (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "valet", &mut script);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&script).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Other(format!(
            "cannot write the completion script: {e}"
        ))),
        _ => Ok(()),
    }
}

/// `valet.1`, plus `valet-client.1`, `valet-client-create.1` and so on for every subcommand.
pub fn man_pages(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::Other(format!("cannot create {}: {e}", dir.display())))?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(|e| {
        CliError::Other(format!("cannot write man pages to {}: {e}", dir.display()))
    })?;
    println!("man pages written to {}", dir.display());
    Ok(())
}
