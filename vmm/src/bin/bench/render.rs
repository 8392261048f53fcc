//! The generated tables of docs/BENCHMARKS.md. A marker line
//!
//! ```text
//! <!-- bench docs/bench/FILE.json GROUP[,GROUP...] -->
//! ```
//!
//! is followed by a table rendered from that committed result file (the rows of the
//! named groups, in file order), up to `<!-- /bench -->`. `bench --render-docs FILE`
//! rewrites every such table; a unit test fails when the committed doc differs from
//! what its result files render, so no figure in those tables is typed by hand.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

const END: &str = "<!-- /bench -->";

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

/// The table of the rows of `groups` in the result file `file` (relative to `root`).
fn table(root: &Path, file: &str, groups: &[&str]) -> Result<String, String> {
    let text = std::fs::read_to_string(root.join(file)).map_err(|e| format!("{file}: {e}"))?;
    let rows: Vec<Row> = serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
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

/// `doc` with every marked table rendered afresh; result files are found from `root`.
pub fn render(doc: &str, root: &Path) -> Result<String, String> {
    let mut out = String::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        out.push_str(line);
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

/// Rewrites the marked tables of the doc at `path` (its result files are named
/// relative to the repository root, the doc's parent's parent).
pub fn render_file(path: &Path) -> Result<(), String> {
    let doc = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let root = path
        .canonicalize()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.to_path_buf()))
        .ok_or_else(|| format!("{}: no repository root above it", path.display()))?;
    let rendered = render(&doc, &root)?;
    std::fs::write(path, rendered).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn benchmarks_md_is_what_its_result_files_render() {
        let path = root().join("docs/BENCHMARKS.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        assert!(doc.contains("<!-- bench "), "no generated table left");
        let rendered = render(&doc, &root()).unwrap();
        assert!(
            rendered == doc,
            "docs/BENCHMARKS.md differs from its result files: run \
             `target/release/bench --render-docs docs/BENCHMARKS.md`"
        );
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
