//! Shows what Trellis refuses: a valid component that is a WASI command (it exports
//! `wasi:cli/run`), not a Trellis function, so an upload names the missing export.

fn main() {
    println!("a command, not a function");
}
