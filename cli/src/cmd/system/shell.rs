//! `completion SHELL` and the man pages, both generated from the clap
//! definitions at run time (clap_complete, clap_mangen), so they cannot
//! drift from the binary and cost the normal build nothing.

use std::path::PathBuf;

use clap::CommandFactory as _;

use crate::exit;

/// The shells `completion` writes scripts for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    /// bash (load with `source <(cairn completion bash)`).
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
    /// PowerShell.
    Powershell,
}

/// `completion` flags.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell.
    pub shell: CompletionShell,
    /// Write the script to this file (`-` or none: stdout).
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Accepted for podman compatibility (podman: no descriptions in the
    /// completions); cairn's scripts always describe.
    #[arg(long)]
    pub no_desc: bool,
}

/// `system generate-man` flags.
#[derive(Debug, clap::Args)]
pub struct GenerateManArgs {
    /// The directory to write `cairn.1`, `cairn-VERB.1`, … into.
    pub dir: PathBuf,
}

/// `cairn completion SHELL`: the completion script for `cairn` (and, by
/// the name it is invoked as, for `podman` when installed as podman).
pub fn completion(a: CompletionArgs) -> anyhow::Result<u8> {
    use clap_complete::Shell;
    let shell = match a.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
        CompletionShell::Powershell => Shell::PowerShell,
    };
    let mut cmd = crate::app::Cli::command();
    // The name it was run as: installed as `podman`, the script completes
    // `podman`.
    let name = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| cmd.get_name().to_owned());
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    match a.file.as_deref() {
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(&buf)?;
        }
        Some(p) if p.as_os_str() == "-" => {
            use std::io::Write as _;
            std::io::stdout().write_all(&buf)?;
        }
        Some(p) => std::fs::write(p, &buf)
            .map_err(|e| exit::with_code(exit::ENGINE, format!("writing {}: {e}", p.display())))?,
    }
    Ok(0)
}

/// `cairn system generate-man DIR` (hidden): one man page per command,
/// `cairn.1` and `cairn-container-run.1` style, for every verb that is not
/// hidden. Prints the files written.
pub fn generate_man(a: GenerateManArgs) -> anyhow::Result<u8> {
    std::fs::create_dir_all(&a.dir)
        .map_err(|e| exit::with_code(exit::ENGINE, format!("creating {}: {e}", a.dir.display())))?;
    let mut cmd = crate::app::Cli::command();
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, "cairn", &a.dir, &mut written)?;
    for p in written {
        println!("{}", p.display());
    }
    Ok(0)
}

fn write_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &std::path::Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let page = cmd
        .clone()
        .name(name.to_owned())
        .bin_name(name.replace('-', " "));
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, buf)
        .map_err(|e| exit::with_code(exit::ENGINE, format!("writing {}: {e}", path.display())))?;
    written.push(path);
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
