//! The generated tables of docs/BENCHMARKS.md and figures of README.md. A marker line
//!
//! ```text
//! <!-- bench docs/bench/FILE.json GROUP[,GROUP...] -->
//! ```
//!
//! is followed by a table rendered from that committed result file (the rows of the
//! named groups, in file order), up to `<!-- /bench -->`. A single figure inside a
//! sentence has the inline form
//!
//! ```text
//! <!-- bench-figure docs/bench/FILE.json GROUP NAME -->18.5 s<!-- /bench -->
//! ```
//!
//! where the text between the two comments is the median of the row GROUP/NAME with
//! its unit (a marker right after a backtick is quoted code, left alone). `bench --render-docs FILE...` rewrites every such table and figure; a unit
//! test fails when a committed doc differs from what its result files render, so no
//! figure there is typed by hand.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

const END: &str = "<!-- /bench -->";
const FIGURE: &str = "<!-- bench-figure ";

/// One row of a result file, as `Report::json` writes it.
#[derive(Deserialize)]
struct Row {
    group: String,
    name: String,
    unit: String,
    median: f64,
    /// Absent from result files written before the bench recorded it.
    #[serde(default)]
    p90: Option<f64>,
    min: f64,
    max: f64,
    samples: usize,
}

/// A figure with as many decimals as its size deserves.
fn figure(x: f64) -> String {
    match x.abs() {
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 10.0 => format!("{x:.1}"),
        _ => format!("{x:.2}"),
    }
}

/// The rows of the result file `file` (relative to `root`).
fn rows(root: &Path, file: &str) -> Result<Vec<Row>, String> {
    let text = std::fs::read_to_string(root.join(file)).map_err(|e| format!("{file}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))
}

/// The median of row `group`/`name` of `file`, with its unit: `18.5 s`.
fn one_figure(root: &Path, file: &str, group: &str, name: &str) -> Result<String, String> {
    let rows = rows(root, file)?;
    let row = rows
        .iter()
        .find(|r| r.group == group && r.name == name)
        .ok_or_else(|| format!("{file} has no row {group:?} {name:?}"))?;
    Ok(format!("{} {}", figure(row.median), row.unit))
}

/// `line` with every inline figure rendered afresh.
fn render_figures(line: &str, root: &Path) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find(FIGURE) {
        let after = &rest[start + FIGURE.len()..];
        if rest[..start].ends_with('`') {
            // Quoted as code (a doc describing the form): text, not a marker.
            out.push_str(&rest[..start + FIGURE.len()]);
            rest = after;
            continue;
        }
        let (spec, after) = after
            .split_once(" -->")
            .ok_or_else(|| format!("unclosed {FIGURE}in {line:?}"))?;
        let (_, after) = after
            .split_once(END)
            .ok_or_else(|| format!("a {FIGURE}marker without {END} in {line:?}"))?;
        let mut parts = spec.splitn(3, ' ');
        let (Some(file), Some(group), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("{FIGURE}{spec} --> needs FILE GROUP NAME"));
        };
        out.push_str(&rest[..start]);
        let _ = write!(
            out,
            "{FIGURE}{spec} -->{}{END}",
            one_figure(root, file, group, name)?
        );
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// The table of the rows of `groups` in the result file `file` (relative to `root`).
fn table(root: &Path, file: &str, groups: &[&str]) -> Result<String, String> {
    let rows = rows(root, file)?;
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| groups.contains(&r.group.as_str()))
        .collect();
    // A p90 column where every row has one.
    let p90 = !rows.is_empty() && rows.iter().all(|r| r.p90.is_some());
    let mut out = match p90 {
        true => String::from(
            "| group | measurement | median | p90 | min – max | runs |\n|---|---|---|---|---|---|\n",
        ),
        false => String::from(
            "| group | measurement | median | min – max | runs |\n|---|---|---|---|---|\n",
        ),
    };
    let mut any = false;
    for r in rows {
        any = true;
        let p90 = match (p90, r.p90) {
            (true, Some(v)) => format!(" {} |", figure(v)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} {} |{p90} {} – {} | {} |",
            r.group,
            r.name,
            figure(r.median),
            r.unit,
            figure(r.min),
            figure(r.max),
            r.samples
        );
    }
    if !any {
        return Err(format!("{file} has no rows of group {}", groups.join(",")));
    }
    Ok(out)
}

/// `doc` with every marked table and figure rendered afresh; result files are found
/// from `root`.
pub fn render(doc: &str, root: &Path) -> Result<String, String> {
    let mut out = String::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        out.push_str(&render_figures(line, root)?);
        out.push('\n');
        let Some(spec) = line
            .strip_prefix("<!-- bench ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        let (file, groups) = spec
            .split_once(' ')
            .ok_or_else(|| format!("marker {line:?} names no group"))?;
        let groups: Vec<&str> = groups.split(',').collect();
        out.push_str(&table(root, file, &groups)?);
        // Skip the old table, keep the end marker.
        if !lines.by_ref().any(|l| l == END) {
            return Err(format!("marker {line:?} has no {END}"));
        }
        out.push_str(END);
        out.push('\n');
    }
    Ok(out)
}

/// Rewrites the marked tables and figures of the doc at `path` (its result files are
/// named relative to the repository root: the nearest folder above it with Cargo.lock).
pub fn render_file(path: &Path) -> Result<(), String> {
    let doc = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let root = path
        .canonicalize()
        .ok()
        .and_then(|p| {
            p.ancestors()
                .skip(1)
                .find(|a| a.join("Cargo.lock").exists())
                .map(Path::to_path_buf)
        })
        .ok_or_else(|| format!("{}: no repository root above it", path.display()))?;
    let rendered = render(&doc, &root)?;
    std::fs::write(path, rendered).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Asserts the doc `name` holds `marker` and is what its result files render.
    fn assert_rendered(name: &str, marker: &str) {
        let doc = std::fs::read_to_string(root().join(name)).unwrap();
        assert!(doc.contains(marker), "no {marker:?} left in {name}");
        let rendered = render(&doc, &root()).unwrap();
        assert!(
            rendered == doc,
            "{name} differs from its result files: run \
             `target/x86_64-unknown-linux-gnu/release/bench --render-docs {name}`"
        );
    }

    #[test]
    fn benchmarks_md_is_what_its_result_files_render() {
        assert_rendered("docs/BENCHMARKS.md", "<!-- bench ");
    }

    #[test]
    fn readme_boot_time_is_what_its_result_file_renders() {
        assert_rendered("README.md", FIGURE);
    }

    #[test]
    fn an_inline_figure_is_replaced_by_its_median() {
        let dir = std::env::temp_dir().join(format!("bench-figure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("r.json"),
            r#"[{"group": "linux", "name": "boot to shell prompt, 2 vCPU", "unit": "s", "median": 18.46, "min": 17, "max": 19, "samples": 5}]"#,
        )
        .unwrap();
        let m = "<!-- bench-figure r.json linux boot to shell prompt, 2 vCPU -->";
        let doc = format!("a prompt after {m}about 15 s{END} here, and {m}{END}.\n");
        assert_eq!(
            render(&doc, &dir).unwrap(),
            format!("a prompt after {m}18.5 s{END} here, and {m}18.5 s{END}.\n")
        );
        let quoted = "the form `<!-- bench-figure FILE GROUP NAME -->`, then\n";
        assert_eq!(render(quoted, &dir).unwrap(), quoted);
        for bad in [
            "<!-- bench-figure r.json linux no such row -->1 s<!-- /bench -->\n",
            "<!-- bench-figure r.json linux boot to shell prompt, 2 vCPU -->1 s\n",
            "<!-- bench-figure r.json linux\n",
            "<!-- bench-figure r.json -->1 s<!-- /bench -->\n",
        ] {
            assert!(render(bad, &dir).is_err(), "{bad:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_marker_is_replaced_by_its_rows_and_a_figure_typed_in_is_not_kept() {
        let dir = std::env::temp_dir().join(format!("bench-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("r.json"),
            r#"[{"group": "disk", "name": "write", "unit": "MiB/s", "median": 12.345, "min": 1.5, "max": 123.4, "samples": 3},
               {"group": "net", "name": "other", "unit": "x", "median": 1, "min": 1, "max": 1, "samples": 1}]"#,
        )
        .unwrap();
        let doc = "intro\n<!-- bench r.json disk -->\n| typed | 99 |\n<!-- /bench -->\nend\n";
        let out = render(doc, &dir).unwrap();
        assert_eq!(
            out,
            "intro\n<!-- bench r.json disk -->\n| group | measurement | median | min – max | runs |\n\
             |---|---|---|---|---|\n| disk | write | 12.3 MiB/s | 1.50 – 123 | 3 |\n<!-- /bench -->\nend\n"
        );
        assert!(render("<!-- bench r.json disk -->\n", &dir).is_err());
        assert!(render("<!-- bench r.json nothing -->\n<!-- /bench -->\n", &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
