//! `--serial`: where the guest's console goes, parsed while clap reads the command line
//! so that `--help` lists the kinds and a bad value is a command-line error (status 2).

use std::ffi::OsStr;
use std::path::PathBuf;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;

use super::parse_size;

/// Largest serial output file by default: enough for hours of a chatty Linux console,
/// small enough that a guest printing in a loop cannot fill the host's disk.
pub const DEFAULT_SERIAL_MAX: u64 = 64 << 20;

/// Where serial output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialTarget {
    /// stdout, with stdin as input.
    Stdio,
    /// A file, created or truncated, that receives at most `max` bytes; no input.
    File { path: PathBuf, max: u64 },
    /// Nowhere.
    None,
}

/// Errors in a `--serial` value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SerialError {
    #[error("invalid --serial {0:?}: expected stdio, file:PATH[,max=SIZE] or none")]
    Syntax(String),
    #[error("invalid --serial {0:?}: max= takes a size such as 64M, 512K or 1G")]
    Max(String),
}

/// Parses `stdio`, `none`, `file:PATH` or `file:PATH,max=SIZE`.
///
/// SIZE is written as for `--memory` (K, M or G, binary units; a plain number is MiB).
/// A path containing `,max=` has to be given with an explicit `,max=SIZE` after it:
/// only the last `,max=` is the option.
pub fn parse_serial(text: &str) -> Result<SerialTarget, SerialError> {
    match text {
        "stdio" => return Ok(SerialTarget::Stdio),
        "none" => return Ok(SerialTarget::None),
        _ => {}
    }
    let spec = text
        .strip_prefix("file:")
        .ok_or_else(|| SerialError::Syntax(text.to_string()))?;
    let (path, max) = match spec.rsplit_once(",max=") {
        Some((path, size)) => (
            path,
            parse_size(size).ok_or_else(|| SerialError::Max(text.to_string()))?,
        ),
        None => (spec, DEFAULT_SERIAL_MAX),
    };
    if path.is_empty() {
        return Err(SerialError::Syntax(text.to_string()));
    }
    Ok(SerialTarget::File {
        path: PathBuf::from(path),
        max,
    })
}

/// clap's parser for `--serial`: [`parse_serial`], with the kinds listed in `--help`.
#[derive(Debug, Clone, Copy)]
pub struct SerialParser;

impl TypedValueParser for SerialParser {
    type Value = SerialTarget;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<SerialTarget, clap::Error> {
        let text = value.to_str().ok_or_else(|| {
            clap::Error::raw(ErrorKind::InvalidUtf8, "--serial is not valid UTF-8\n")
        })?;
        parse_serial(text).map_err(|e| clap::Error::raw(ErrorKind::InvalidValue, format!("{e}\n")))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            [
                PossibleValue::new("stdio")
                    .help("Stdout, and stdin as input (raw mode on a terminal)"),
                PossibleValue::new("file:PATH[,max=SIZE]").help(
                    "Output only, to PATH, cut at SIZE bytes (K, M or G; default 64M) so that a guest cannot fill the disk",
                ),
                PossibleValue::new("none").help("No console"),
            ]
            .into_iter(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_limits() {
        assert_eq!(parse_serial("stdio"), Ok(SerialTarget::Stdio));
        assert_eq!(parse_serial("none"), Ok(SerialTarget::None));
        let file = |path: &str, max| {
            Ok(SerialTarget::File {
                path: path.into(),
                max,
            })
        };
        assert_eq!(
            parse_serial("file:/tmp/x"),
            file("/tmp/x", DEFAULT_SERIAL_MAX)
        );
        assert_eq!(parse_serial("file:/tmp/x,max=4K"), file("/tmp/x", 4096));
        assert_eq!(parse_serial("file:a,b,max=2"), file("a,b", 2 << 20));
        assert_eq!(
            parse_serial("file:a,max=1,max=1G"),
            file("a,max=1", 1 << 30)
        );
        for bad in ["file:", "file:,max=4K", "tcp:1", "STDIO", ""] {
            assert_eq!(
                parse_serial(bad),
                Err(SerialError::Syntax(bad.into())),
                "{bad}"
            );
        }
        for bad in [
            "file:a,max=",
            "file:a,max=4X",
            "file:a,max=-1",
            "file:a,max=99999999999G",
        ] {
            assert_eq!(
                parse_serial(bad),
                Err(SerialError::Max(bad.into())),
                "{bad}"
            );
        }
    }
}
