//! Integration tests of what people read: the HTML site, the Markdown summary, exports, and
//! the site in a real headless browser where the machine has one.

use std::fs;
use std::path::Path;
use std::process::Command;

use perflab::{
    HistoricalDatabase, Run, SummaryOptions, markdown_summary, scenario_file, write_site,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use crate::compare::{framework, make_run, stepped_history};
use crate::perflab;

/// A history of 30 runs where `memory/a` steps up at run 20, then a head run where it
/// regresses by 13% more, measured on a branch whose name is markup.
fn fixture(dir: &Path) -> (Vec<Run>, Run) {
    let db = HistoricalDatabase::new(dir);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(31);
    let runs = stepped_history(&db, &mut rng, "cpu");
    let mut head = make_run(&mut rng, 30, "cpu", 130.0, 1_010_000.0);
    head.git.commit = Some("c".repeat(40));
    head.git.branch = Some("<script>alert(1)</script>".into());
    db.append(&head).unwrap();
    (runs, head)
}

#[test]
fn the_site_lists_runs_and_shows_verdicts_plots_and_history() {
    let history = tempfile::tempdir().unwrap();
    let (runs, head) = fixture(history.path());
    let out = tempfile::tempdir().unwrap();
    let site_dir = out.path().join("site");
    let fw = framework(history.path());
    let site = write_site(&fw, &site_dir, 50, None).unwrap();

    // minijinja escapes `/` in values as `&#x2f;`, which browsers read back as `/`.
    let read = |p: &Path| fs::read_to_string(p).unwrap().replace("&#x2f;", "/");
    let index = read(&site.index);
    assert_eq!(index.matches("href=\"runs/").count(), 31, "a row per run");
    let first = index.find(&head.id).unwrap();
    assert!(first < index.find(&runs[29].id).unwrap(), "newest first");
    assert_eq!(site.runs.len(), 31);

    let page = read(site.run_page(&head.id).unwrap());
    let verdicts = &page[page.find("id=\"regressions\"").unwrap()..];
    let verdicts = &verdicts[..verdicts.find("</table>").unwrap()];
    assert!(
        verdicts.contains("<td>regression</td>") && verdicts.contains(">memory/a</a>"),
        "{verdicts}"
    );
    assert!(
        page.contains("id=\"summary-plot\"><svg"),
        "the suite summary plot"
    );
    assert!(
        page.matches("<figure class=\"plot\"><svg").count() >= 2,
        "distributions"
    );
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        !page.contains("<script>alert(1)"),
        "markup in data is shown as text"
    );
    assert!(
        page.contains("id=\"change-points\""),
        "the history's change points"
    );

    let scenario =
        fs::read_to_string(site_dir.join("scenarios").join(scenario_file("memory/a"))).unwrap();
    assert!(scenario.contains("<svg") && scenario.contains(&runs[20].id));
    assert_eq!(site.scenarios, 3);

    // A second write replaces the site whole and leaves nothing else behind.
    write_site(&fw, &site_dir, 5, None).unwrap();
    let again = read(&site_dir.join("index.html"));
    assert_eq!(again.matches("href=\"runs/").count(), 5);
    assert!(again.contains("26 older run(s)"));
    let names: Vec<String> = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["site"]);

    // A failed write leaves the previous site as it was.
    let e = write_site(&fw, &site_dir, 5, Some("19990101")).unwrap_err();
    assert!(e.to_string().contains("no run `19990101`"), "{e}");
    assert_eq!(read(&site_dir.join("index.html")), again);
}

#[test]
fn the_performance_report_comes_with_its_plots() {
    let history = tempfile::tempdir().unwrap();
    let (_, head) = fixture(history.path());
    let fw = framework(history.path());
    let report = fw.generate_performance_report(&head).unwrap();
    let plots = report.plots.expect("plots");
    assert!(plots.summary.unwrap().starts_with("<svg"));
    assert_eq!(
        plots.distributions[0].key.scenario, "memory/a",
        "regressions first"
    );
    assert!(plots.distributions[0].caption.contains("regression"));
    assert_eq!(
        plots.distributions.len(),
        2,
        "the two wall-time keys have samples"
    );
    assert!(fw.performance_table(&head).unwrap().plots.is_none());
}

#[test]
fn the_markdown_summary_leads_with_regressions_and_fits_the_limit() {
    let history = tempfile::tempdir().unwrap();
    let (_, head) = fixture(history.path());
    let comparison = framework(history.path())
        .compare_runs_blocking(&head, None)
        .unwrap();
    let options = SummaryOptions {
        report_url: Some("https://example.test/report".into()),
        ..SummaryOptions::default()
    };
    let md = markdown_summary(&comparison, &head, &options);
    assert!(
        md.starts_with("## perflab: 1 regression, 0 improvements in `memory`"),
        "{md}"
    );
    assert!(
        md.contains("| 🔴 regression | memory/a | perflab | wall_time |"),
        "{md}"
    );
    assert!(md.contains("<details><summary>2 other results"), "{md}");
    assert!(
        md.contains("change points in this runner's history"),
        "{md}"
    );
    assert!(md.contains("[Full HTML report](https://example.test/report)"));
    assert!(
        !md.contains("<script>"),
        "branch names never reach the comment as markup"
    );

    // Too small for every row: rows are left out with a note, never an error.
    let small = SummaryOptions {
        max_chars: 1_500,
        ..options.clone()
    };
    let md = markdown_summary(&comparison, &head, &small);
    assert!(md.chars().count() <= 1_500, "{}", md.chars().count());
    assert!(
        md.contains("left out to stay within GitHub's comment size limit"),
        "{md}"
    );
    let tiny = SummaryOptions {
        max_chars: 120,
        ..options
    };
    let md = markdown_summary(&comparison, &head, &tiny);
    assert!(
        md.chars().count() <= 120 && md.ends_with("limit)_\n"),
        "{md}"
    );
}

#[test]
fn cli_report_summary_comment_and_export() {
    let ws = tempfile::tempdir().unwrap();
    let history = ws.path().join("history");
    let (_, head) = fixture(&history);
    let cli = |args: &[&str]| {
        perflab(
            &[
                &[
                    "--workspace",
                    ws.path().to_str().unwrap(),
                    "--history",
                    history.to_str().unwrap(),
                ],
                args,
            ]
            .concat(),
        )
    };
    let out = cli(&["report"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("reports/site/index.html"), "{stdout}");
    assert!(stdout.contains(&format!("run {}:", head.id)), "{stdout}");

    let md = ws.path().join("summary.md");
    let out = cli(&["summary", "--out", md.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(fs::read_to_string(&md).unwrap().contains("1 regression"));

    let out = cli(&["comment", "--dry-run", "--summary", md.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains(perflab::COMMENT_MARKER) && body.contains("1 regression"),
        "{body}"
    );

    let out = cli(&["export", "--format", "csv", "--all"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1 + 31 * 3
    );
    let out = cli(&["export", "--format", "bmf"]);
    let bmf: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        bmf["memory/a@perflab"]["wall_time"]["value"].is_number(),
        "{bmf}"
    );
    let out = cli(&["export", "--format", "parquet"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out"));
}

/// The run page and the index in headless Chromium: no console messages, every plot an SVG
/// with a size, and the injected regression in the regressions table.
#[test]
fn the_site_renders_in_a_headless_browser() {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
    else {
        let required = std::env::var("PERFLAB_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "no chromium: install it (`apt-get install chromium`)"
        );
        eprintln!("skipped: no chromium on this machine (apt-get install chromium)");
        return;
    };
    let history = tempfile::tempdir().unwrap();
    let (_, head) = fixture(history.path());
    let out = tempfile::tempdir().unwrap();
    let site = write_site(
        &framework(history.path()),
        &out.path().join("site"),
        50,
        None,
    )
    .unwrap();
    for (page, expect_regression) in [
        (site.index.clone(), false),
        (site.run_page(&head.id).unwrap().to_owned(), true),
    ] {
        let probed = probe_copy(&page);
        let profile = tempfile::tempdir().unwrap();
        let output = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(format!("file://{}", probed.display()))
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&output.stdout);
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{log}");
        let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE(")).collect();
        assert!(console.is_empty(), "console messages: {console:#?}");
        let start = dom.find("<pre id=\"probe\">").expect("the probe ran") + 16;
        let report: serde_json::Value = serde_json::from_str(&html_unescape(
            &dom[start..start + dom[start..].find("</pre>").unwrap()],
        ))
        .unwrap();
        let svgs = report["svgs"].as_array().unwrap();
        for size in svgs {
            let (w, h) = (size[0].as_f64().unwrap(), size[1].as_f64().unwrap());
            assert!(
                w > 0.0 && h > 0.0,
                "an empty plot in {}: {svgs:?}",
                page.display()
            );
        }
        let rows = report["regressions"].as_array().unwrap();
        if expect_regression {
            assert!(svgs.len() >= 3, "{svgs:?}");
            assert!(
                rows.iter()
                    .any(|r| r.as_str().unwrap().contains("memory/a")),
                "{rows:?}"
            );
        }
    }
}

/// A copy of `page` beside it with a script at the end of the body that records the size
/// of every SVG and the rows of the regressions table into `<pre id="probe">`.
fn probe_copy(page: &Path) -> std::path::PathBuf {
    const PROBE: &str = r#"<script>
const svgs = [...document.querySelectorAll('svg')].map(s => { const r = s.getBoundingClientRect(); return [r.width, r.height]; });
const regressions = [...document.querySelectorAll('#regressions tbody tr')].map(tr => tr.textContent);
const pre = document.createElement('pre'); pre.id = 'probe';
pre.textContent = JSON.stringify({svgs, regressions});
document.body.appendChild(pre);
</script>"#;
    let html = fs::read_to_string(page).unwrap();
    let probed = html.replace("</body>", &format!("{PROBE}\n</body>"));
    let path = page.with_file_name(format!(
        "probe-{}",
        page.file_name().unwrap().to_string_lossy()
    ));
    fs::write(&path, probed).unwrap();
    path
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
