//! The `trellis` binary: a thin shell over the library.

fn main() -> std::process::ExitCode {
    trellis::cli::main()
}
