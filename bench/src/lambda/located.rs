//! Finding the function binaries (`<dir>/<function>` or
//! `<dir>/<function>/bootstrap`) and cargo lambda's zips, refusing a binary
//! built for another machine.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::Plan;
use super::functions::Function;
use crate::server::Binaries;

/// A function's binary, and its zip if cargo lambda made one.
#[derive(Debug)]
pub struct Located {
    pub function: &'static Function,
    pub binary: PathBuf,
    pub binary_bytes: u64,
    pub zip: Option<(PathBuf, u64)>,
}

/// Where the binaries and the zips are looked for.
pub struct Dirs {
    pub functions: PathBuf,
    pub zips: Option<PathBuf>,
}

impl Dirs {
    /// `--functions-dir` (default: beside this executable) and `--zips-dir`
    /// (default: the `lambda` directory beside the functions').
    pub fn of(plan: &Plan, binaries: &Binaries) -> anyhow::Result<Self> {
        let functions = match &plan.functions_dir {
            Some(dir) => dir.clone(),
            None => binaries
                .bench
                .parent()
                .map(Path::to_path_buf)
                .context("cannot tell this executable's directory; pass --functions-dir")?,
        };
        let zips = plan
            .zips_dir
            .clone()
            .or_else(|| functions.parent().map(|target| target.join("lambda")));
        Ok(Self { functions, zips })
    }
}

impl Located {
    pub fn find(function: &'static Function, dirs: &Dirs) -> anyhow::Result<Self> {
        let name = &function.name;
        let dir = &dirs.functions;
        let Some(binary) = [dir.join(name), dir.join(name).join("bootstrap")]
            .into_iter()
            .find(|candidate| candidate.is_file())
        else {
            bail!(
                "no {name} binary in {} (neither {name} nor {name}/bootstrap): build the \
                 functions first (cargo build --release -p chat-handlers -p chat-stream-processor) \
                 or pass --functions-dir",
                dir.display()
            );
        };
        // Absolute: the process runs in the binary's directory.
        let binary = std::path::absolute(&binary).with_context(|| binary.display().to_string())?;
        check_architecture(&binary)?;
        let binary_bytes = std::fs::metadata(&binary)
            .with_context(|| binary.display().to_string())?
            .len();
        let zip = [Some(dir.as_path()), dirs.zips.as_deref()]
            .into_iter()
            .flatten()
            .map(|dir| dir.join(name).join("bootstrap.zip"))
            .find_map(|zip| {
                let bytes = std::fs::metadata(&zip).ok()?.len();
                Some((zip, bytes))
            });
        Ok(Self {
            function,
            binary,
            binary_bytes,
            zip,
        })
    }
}

/// Refuses an ELF binary built for another machine (cargo lambda's arm64
/// builds on an x86_64 host) with a message saying so.
fn check_architecture(binary: &Path) -> anyhow::Result<()> {
    use std::io::Read;
    let mut header = [0u8; 20];
    let read = std::fs::File::open(binary).and_then(|mut file| file.read_exact(&mut header));
    if read.is_err() || &header[..4] != b"\x7fELF" {
        return Ok(());
    }
    let built_for = match u16::from_le_bytes([header[18], header[19]]) {
        62 => "x86_64",
        183 => "aarch64",
        _ => return Ok(()),
    };
    if built_for != std::env::consts::ARCH {
        bail!(
            "{} is built for {built_for}, and this machine runs {}: point --functions-dir at \
             binaries built for this machine (its zip is still reported with --zips-dir)",
            binary.display(),
            std::env::consts::ARCH
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF header's first 20 bytes for `machine` (e_machine).
    fn elf_for(machine: u16) -> Vec<u8> {
        let mut header = b"\x7fELF\x02\x01\x01".to_vec();
        header.resize(18, 0);
        header.extend(machine.to_le_bytes());
        header
    }

    #[test]
    fn binaries_for_another_machine_are_refused() {
        let other = if std::env::consts::ARCH == "x86_64" {
            183
        } else {
            62
        };
        let dir = std::env::temp_dir().join(format!("chat-bench-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|problem| panic!("{problem}"));
        let (foreign, script) = (dir.join("foreign"), dir.join("script"));
        std::fs::write(&foreign, elf_for(other)).unwrap_or_else(|problem| panic!("{problem}"));
        std::fs::write(&script, "#!/bin/sh\n").unwrap_or_else(|problem| panic!("{problem}"));
        let refused = check_architecture(&foreign).map_err(|problem| problem.to_string());
        let not_elf = check_architecture(&script).is_ok();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            refused
                .as_ref()
                .is_err_and(|problem| problem.contains("point --functions-dir")),
            "{refused:?}"
        );
        assert!(not_elf, "not ELF: not judged");
        assert!(check_architecture(&std::env::current_exe().unwrap_or_default()).is_ok());
    }
}
