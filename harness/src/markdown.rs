//! The Markdown summary of a comparison: one text for the PR comment and the job summary.
//!
//! A headline (regressions, improvements, runner), a table of the regressions and
//! improvements with their change and interval, everything else folded in `<details>`, the
//! change points of the history, and a link to the HTML report. It always fits GitHub's
//! comment limit: rows that do not fit are left out with a note saying how many.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::PathBuf;

use crate::compare::{HistoricalComparison, MetricComparison};
use crate::schema::{Run, short_commit};
use crate::stats::Verdict;

/// GitHub's limit on a comment body, in characters.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;

/// How to write the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryOptions {
    /// Where the HTML report is (the workflow's artifact page, or a path).
    pub report_url: Option<String>,
    /// Most characters the summary may have: [`GITHUB_COMMENT_LIMIT`] less room for the
    /// comment's hidden marker by default.
    pub max_chars: usize,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        Self {
            report_url: None,
            max_chars: GITHUB_COMMENT_LIMIT - 512,
        }
    }
}

/// The summary of `comparison`, whose head run is `head`.
pub fn markdown_summary(
    comparison: &HistoricalComparison,
    head: &Run,
    options: &SummaryOptions,
) -> String {
    let entries = comparison.by_severity();
    let count = |v: Verdict| entries.iter().filter(|e| e.verdict == v).count();
    let (regressions, improvements) = (count(Verdict::Regression), count(Verdict::Improvement));
    let mut head_text = String::new();
    let _ = writeln!(
        head_text,
        "## perflab: {} {}, {} {} in `{}`",
        regressions,
        plural(regressions, "regression", "regressions"),
        improvements,
        plural(improvements, "improvement", "improvements"),
        cell(&comparison.suite)
    );
    let _ = writeln!(
        head_text,
        "\nRunner `{}`: {}\n",
        comparison.fingerprint,
        cell(&head.runner.describe())
    );
    let commit = head
        .git
        .commit
        .as_deref()
        .map_or_else(String::new, |c| format!(" (commit `{}`)", short_commit(c)));
    let _ = writeln!(
        head_text,
        "Head run `{}`{commit} against base run `{}`.\n",
        comparison.run_id,
        comparison.baseline_run_id.as_deref().unwrap_or("(none)")
    );

    let (changed, rest): (Vec<&MetricComparison>, Vec<&MetricComparison>) = entries
        .iter()
        .partition(|e| matches!(e.verdict, Verdict::Regression | Verdict::Improvement));
    let mut footer = String::new();
    if !comparison.change_points.is_empty() {
        let _ = writeln!(
            footer,
            "\n<details><summary>{} change {} in this runner's history</summary>\n",
            comparison.change_points.len(),
            plural(comparison.change_points.len(), "point", "points")
        );
        footer.push_str("| scenario | subject | metric | from run | commit | step |\n");
        footer.push_str("|---|---|---|---|---|---|\n");
        for c in &comparison.change_points {
            let _ = writeln!(
                footer,
                "| {} | {} | {} | `{}` | {} | {} |",
                cell(&c.key.scenario),
                cell(&c.key.subject),
                cell(&c.key.metric),
                c.change.run_id.as_deref().unwrap_or("?"),
                c.change
                    .commit
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), |c| format!("`{}`", short_commit(c))),
                c.change
                    .change
                    .relative_change
                    .map_or_else(|| "-".to_owned(), |r| format!("{:+.2}%", r * 100.0)),
            );
        }
        footer.push_str("\n</details>\n");
    }
    if let Some(url) = &options.report_url {
        let _ = writeln!(footer, "\n[Full HTML report]({url})");
    }

    // Rows are added while they fit; what does not fit is counted and noted.
    let budget = options
        .max_chars
        .saturating_sub(head_text.chars().count() + footer.chars().count() + 200);
    let mut body = String::new();
    let mut left_out = 0;
    if changed.is_empty() {
        body.push_str("No regression and no improvement.\n");
    } else {
        left_out += table(&mut body, &changed, budget);
    }
    if !rest.is_empty() {
        let summary = format!(
            "\n<details><summary>{} other {} ({} unchanged, {} noisy, {} skipped)</summary>\n\n",
            rest.len(),
            plural(rest.len(), "result", "results"),
            count(Verdict::Unchanged),
            count(Verdict::Noisy),
            count(Verdict::Skipped)
        );
        let remaining = budget.saturating_sub(body.chars().count() + summary.chars().count() + 20);
        body.push_str(&summary);
        left_out += table(&mut body, &rest, remaining);
        body.push_str("\n</details>\n");
    }
    if left_out > 0 {
        let _ = writeln!(
            body,
            "\n_{left_out} more {} left out to stay within GitHub's comment size limit; the \
             HTML report has every result._",
            plural(left_out, "row", "rows")
        );
    }
    // Only a tiny limit still overflows here.
    fit_to_limit(&(head_text + &body + &footer), options.max_chars)
}

/// `text` as it is when it has at most `max_chars` characters, else cut at a character
/// boundary with a note saying so (the note counts towards the limit).
pub fn fit_to_limit(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let note = "\n\n_(summary truncated to fit the size limit)_\n";
    let keep = max_chars.saturating_sub(note.chars().count());
    text.chars().take(keep).collect::<String>() + note
}

/// Appends `markdown` to the GitHub Actions job summary when `$GITHUB_STEP_SUMMARY` names a
/// file; returns that file, or `None` outside GitHub Actions.
pub fn append_step_summary(markdown: &str) -> io::Result<Option<PathBuf>> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    file.write_all(markdown.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(Some(path))
}

/// Writes a table of `entries` into `out` while it stays within `budget` characters;
/// returns how many rows did not fit.
fn table(out: &mut String, entries: &[&MetricComparison], budget: usize) -> usize {
    let header = "| verdict | scenario | subject | metric | base | head | change [95% CI] | p adj |\n\
                  |---|---|---|---|---|---|---|---|\n";
    let mut used = header.len();
    let mut rows = String::new();
    let mut written = 0;
    for e in entries {
        let row = format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            verdict_cell(e.verdict),
            cell(&e.key.scenario),
            cell(&e.key.subject),
            cell(&e.key.metric),
            cell(&e.value_text(e.baseline.as_ref())),
            cell(&e.value_text(e.current.as_ref())),
            e.change_text(),
            e.p_adjusted_text(),
        );
        if used + row.len() > budget {
            break;
        }
        used += row.len();
        rows.push_str(&row);
        written += 1;
    }
    if written > 0 {
        out.push_str(header);
        out.push_str(&rows);
    }
    entries.len() - written
}

fn verdict_cell(v: Verdict) -> &'static str {
    match v {
        Verdict::Regression => "🔴 regression",
        Verdict::Improvement => "🟢 improvement",
        Verdict::Unchanged => "unchanged",
        Verdict::Noisy => "noisy",
        Verdict::Skipped => "skipped",
    }
}

/// Text safe in a Markdown table cell: no `|` column breaks, no line breaks, no HTML.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_the_table_or_inject_html() {
        assert_eq!(
            cell("a|b<script>x</script>\nc&d"),
            "a\\|b&lt;script&gt;x&lt;/script&gt; c&amp;d"
        );
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "row", "rows"), "row");
        assert_eq!(plural(0, "row", "rows"), "rows");
    }
}
