//! `kms`: the key management engine as an Alibaba Cloud KMS-compatible HTTP service
//! (`kms serve`), and one-off commands on a data directory (`kms create-key`, `kms encrypt`...).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    kms_server::cli::run(kms_server::cli::Cli::parse())
}
