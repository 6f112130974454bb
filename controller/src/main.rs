//! `sealops-controller`: placeholder until the sync controller lands.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-V" | "version") => {
            println!("sealops-controller {}", sealops_controller::VERSION);
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "sealops-controller {}: not implemented yet (only --version works)",
                sealops_controller::VERSION
            );
            ExitCode::from(2)
        }
    }
}
