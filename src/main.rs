//! The `bucketq` command. Thin on purpose: the command line lives in `cli`, the daemon and the
//! queue in the library, so an embedding program can do what this binary does.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
