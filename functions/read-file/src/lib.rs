//! Shows the filesystem sandbox: host files are invisible; `/scratch` works when enabled.

use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use trellis_guest::Error;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    #[serde(default = "etc_passwd")]
    path: String,
    write: Option<String>,
    /// Bytes to write to `writeTo` in 1 MiB chunks, to test the scratch cap.
    fill: Option<u64>,
    #[serde(default = "scratch_note")]
    write_to: String,
}

fn etc_passwd() -> String {
    "/etc/passwd".to_owned()
}

fn scratch_note() -> String {
    "/scratch/note.txt".to_owned()
}

#[derive(Serialize)]
#[serde(untagged)]
enum Output {
    Read {
        path: String,
        contents: String,
    },
    #[serde(rename_all = "camelCase")]
    Wrote {
        /// Bytes written.
        written: usize,
        read_back: String,
        /// File names in the directory written to, sorted.
        entries: Vec<String>,
    },
    Filled {
        filled: u64,
    },
}

/// Reads `path` (default `/etc/passwd`) and returns it, or fails with `io_error`. With
/// `write`, writes that text to `writeTo` (default `/scratch/note.txt`), reads it back and
/// lists the directory: `{ written, readBack, entries }`. With `fill`, writes that many
/// bytes to `writeTo`: `{ filled }`.
#[trellis_guest::function]
fn read_file(params: Params) -> Result<Output, Error> {
    if let Some(bytes) = params.fill {
        return fill(Path::new(&params.write_to), bytes);
    }
    match params.write {
        Some(text) => write_and_list(Path::new(&params.write_to), &text),
        None => {
            let contents = fs::read_to_string(&params.path).map_err(io_error("reading", &params.path))?;
            Ok(Output::Read {
                path: params.path,
                contents,
            })
        }
    }
}

fn write_and_list(path: &Path, text: &str) -> Result<Output, Error> {
    let shown = path.display().to_string();
    fs::write(path, text).map_err(io_error("writing", &shown))?;
    let read_back = fs::read_to_string(path).map_err(io_error("reading", &shown))?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let shown_dir = dir.display().to_string();
    let mut entries = fs::read_dir(dir)
        .map_err(io_error("listing", &shown_dir))?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(io_error("listing", &shown_dir))?;
    entries.sort();
    Ok(Output::Wrote {
        written: text.len(),
        read_back,
        entries,
    })
}

fn fill(path: &Path, bytes: u64) -> Result<Output, Error> {
    use std::io::Write;
    let shown = path.display().to_string();
    let mut file = fs::File::create(path).map_err(io_error("creating", &shown))?;
    let chunk = vec![b'f'; 1 << 20];
    let mut filled = 0;
    while filled < bytes {
        let n = (bytes - filled).min(chunk.len() as u64);
        file.write_all(&chunk[..n as usize])
            .map_err(io_error("writing", &shown))?;
        filled += n;
    }
    Ok(Output::Filled { filled })
}

/// The error for a failed filesystem call: `io_error`, naming the operation and path.
fn io_error<'a>(doing: &'a str, path: &'a str) -> impl Fn(io::Error) -> Error + 'a {
    move |err| Error::new("io_error", format!("{doing} {path}: {err}"))
}
