//! The coordinator's command line, built inside the e2e package so that its tests can start
//! the coordinator and the four participant services as real processes.

fn main() -> std::process::ExitCode {
    coordinator::cli::main()
}
