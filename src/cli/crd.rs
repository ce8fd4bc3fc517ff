//! `ballast crd`: print the CRDs, write them into `crds/`, or check `crds/` for drift.

use std::fs;
use std::process::ExitCode;

use anyhow::Context;

use super::CrdArgs;
use crate::api::crd::{crd_files, crds_yaml};

pub fn run(args: &CrdArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.out_dir {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, yaml) in crd_files()? {
            let path = dir.join(name);
            fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dir) = &args.check {
        let mut drift = false;
        for (name, yaml) in crd_files()? {
            let path = dir.join(name);
            let on_disk = fs::read_to_string(&path).unwrap_or_default();
            if on_disk != yaml {
                eprintln!(
                    "{} differs from the generated CRD (run `make crds`)",
                    path.display()
                );
                drift = true;
            }
        }
        return Ok(if drift {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    print!("{}", crds_yaml()?);
    Ok(ExitCode::SUCCESS)
}
