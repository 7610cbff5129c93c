//! Validates `.github/workflows/`: every file parses; the expected workflows and jobs exist; permissions are least-privilege; every `cargo xtask` command, flag, suite and script they use exists.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use serde_yaml_ng::{Mapping, Value};

const CI: &str = "ci.yml";
const BENCH: &str = "bench.yml";
const COMMENT: &str = "bench-comment.yml";
const INTERLEAVED: &str = ".github/scripts/bench-interleaved.sh";
const PREPARE_COMMENT: &str = ".github/scripts/prepare-comment.sh";
/// The GPU suite may not exist yet: workflows may name it before `scenarios/suites/` has it.
const GPU_SUITE: &str = "gpu";

#[test]
fn every_workflow_parses_and_is_well_formed() {
    let all = workflows();
    assert!(
        all.len() >= 3,
        "expected at least ci, bench and the comment workflow, found {:?}",
        all.keys().collect::<Vec<_>>()
    );
    for (file, doc) in &all {
        let problems = shape_problems(doc);
        assert!(problems.is_empty(), "{file}:\n  {}", problems.join("\n  "));
    }
}

/// A workflow file, its `name:`, and its jobs as (id, name).
type Expected = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[test]
fn the_expected_workflows_and_jobs_exist() {
    let all = workflows();
    let expected: [Expected; 3] = [
        (
            CI,
            "CI",
            &[("fmt", "fmt"), ("clippy", "clippy"), ("test", "test")],
        ),
        (
            BENCH,
            "Benchmarks",
            &[("cpu", "cpu benchmarks"), ("gpu", "gpu benchmarks")],
        ),
        (
            COMMENT,
            "Benchmark comment",
            &[("comment", "post benchmark comment")],
        ),
    ];
    for (file, name, jobs) in expected {
        let doc = all
            .get(file)
            .unwrap_or_else(|| panic!(".github/workflows/{file} is missing"));
        assert_eq!(str_at(doc, &["name"]), Some(name), "{file}: name");
        let found: BTreeMap<&str, Option<&str>> = job_map(doc)
            .iter()
            .map(|(id, job)| (id.as_str().unwrap_or(""), str_at(job, &["name"])))
            .collect();
        let wanted: BTreeMap<&str, Option<&str>> =
            jobs.iter().map(|&(id, name)| (id, Some(name))).collect();
        assert_eq!(found, wanted, "{file}: job ids and names");
    }

    assert_eq!(
        triggers(&all[CI]),
        set(["pull_request", "push"]),
        "{CI}: on push and PR"
    );
    assert_eq!(
        triggers(&all[BENCH]),
        set(["pull_request"]),
        "{BENCH}: on PR only"
    );
    assert_eq!(
        triggers(&all[COMMENT]),
        set(["workflow_run"]),
        "{COMMENT}: on workflow_run only"
    );
}

#[test]
fn permissions_are_declared_at_the_top_and_least_privilege() {
    let all = workflows();
    let read_only = [("contents", "read")];
    let comment = [
        ("contents", "read"),
        ("actions", "read"),
        ("pull-requests", "write"),
    ];
    assert_eq!(top_permissions(&all[CI]), Ok(pairs(&read_only)), "{CI}");
    assert_eq!(
        top_permissions(&all[BENCH]),
        Ok(pairs(&read_only)),
        "{BENCH}"
    );
    assert_eq!(
        top_permissions(&all[COMMENT]),
        Ok(pairs(&comment)),
        "{COMMENT}"
    );
    for (file, doc) in &all {
        let problems = permission_problems(doc);
        assert!(problems.is_empty(), "{file}:\n  {}", problems.join("\n  "));
    }
}

#[test]
fn every_cargo_xtask_command_names_a_real_subcommand_and_flags() {
    let mut cli = XtaskCli::default();
    let top = cli.help(&[]);
    for expected in ["bench", "compare", "test", "setup"] {
        assert!(
            top.commands.contains(expected),
            "the help parser missed `{expected}` in {:?}",
            top.commands
        );
    }

    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for (origin, text) in all_shell_sources() {
        for words in xtask_invocations(&text) {
            used.insert(words.first().cloned().unwrap_or_default());
            problems.extend(
                xtask_problems(&words, &mut cli)
                    .into_iter()
                    .map(|p| format!("{origin}: {p}")),
            );
        }
    }
    assert!(problems.is_empty(), "\n  {}", problems.join("\n  "));
    // The workflows use these; if one disappears from the workflows, this test should change
    // with them, on purpose.
    assert_eq!(
        used,
        set([
            "bench", "comment", "compare", "report", "setup", "summary", "test"
        ]),
        "the xtask subcommands the workflows and their scripts use"
    );
}

#[test]
fn every_referenced_script_exists_and_is_executable() {
    let root = root();
    let mut scripts = BTreeSet::new();
    let mut problems = Vec::new();
    for (origin, text) in all_shell_sources() {
        for path in script_references(&text) {
            problems.extend(
                script_problems(&root, &path)
                    .into_iter()
                    .map(|p| format!("{origin}: {p}")),
            );
            scripts.insert(path);
        }
    }
    assert!(problems.is_empty(), "\n  {}", problems.join("\n  "));
    assert!(
        scripts.contains(INTERLEAVED) && scripts.contains(PREPARE_COMMENT),
        "the workflows reference {scripts:?}"
    );

    // Every script in .github/scripts is used by a workflow, and is strict bash that parses.
    for entry in fs::read_dir(root.join(".github/scripts")).expect("reading .github/scripts") {
        let path = entry.expect("listing .github/scripts").path();
        let rel = format!(
            ".github/scripts/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        assert!(scripts.contains(&rel), "{rel} is referenced by no workflow");
        let text = read(&path);
        assert!(text.starts_with("#!/usr/bin/env bash\n"), "{rel}: shebang");
        assert!(
            text.lines().any(|l| l.trim() == "set -euo pipefail"),
            "{rel}: set -euo pipefail"
        );
        let out = Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .expect("running bash -n");
        assert!(
            out.status.success(),
            "{rel}: bash -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn suites_named_in_workflows_exist() {
    let root = root();
    let mut named = BTreeSet::new();
    for (_, text) in all_shell_sources() {
        for words in xtask_invocations(&text) {
            named.extend(flag_values(&words, "--suite"));
        }
        for command in shell_commands(&text) {
            if let Some(pos) = command.iter().position(|w| w == INTERLEAVED) {
                named.extend(interleaved_suites(&command[pos + 1..]));
            }
        }
    }
    assert!(
        named.contains(GPU_SUITE),
        "the GPU job runs the `{GPU_SUITE}` suite; found {named:?}"
    );
    for suite in named.iter().filter(|s| !s.contains('$') && *s != GPU_SUITE) {
        let file = root.join("scenarios/suites").join(format!("{suite}.toml"));
        assert!(
            file.is_file(),
            "suite `{suite}`: {} is missing",
            file.display()
        );
    }
}

#[test]
fn the_comment_workflow_triggers_on_the_bench_workflows_name() {
    let all = workflows();
    let bench_name = str_at(&all[BENCH], &["name"]).expect("bench.yml has a name");
    let on = on(&all[COMMENT]);
    let run = &on["workflow_run"];
    assert_eq!(
        strings(&run["workflows"]),
        vec![bench_name.to_owned()],
        "workflow_run.workflows must be exactly bench.yml's name"
    );
    assert_eq!(strings(&run["types"]), vec!["completed".to_owned()]);
    let condition = str_at(&job_map(&all[COMMENT])[str_key("comment")], &["if"])
        .expect("the comment job has an `if`");
    assert!(
        condition.contains("github.event.workflow_run.event == 'pull_request'"),
        "the comment job runs for pull_request runs only: {condition}"
    );
}

#[test]
fn artifacts_downloaded_by_the_comment_workflow_are_uploaded_by_bench() {
    let all = workflows();
    let uploads = artifact_steps(&all[BENCH], "actions/upload-artifact");
    let downloads = artifact_steps(&all[COMMENT], "actions/download-artifact");
    assert!(
        !downloads.is_empty(),
        "the comment workflow downloads nothing"
    );
    let uploaded: BTreeMap<&str, &str> = uploads
        .iter()
        .map(|a| (a.name.as_str(), a.job.as_str()))
        .collect();
    assert_eq!(
        uploaded.len(),
        uploads.len(),
        "artifact names are unique: {uploads:?}"
    );
    let prepare = read(&root().join(PREPARE_COMMENT));
    for download in &downloads {
        let job = uploaded.get(download.name.as_str()).unwrap_or_else(|| {
            panic!(
                "`{}` is downloaded but bench.yml uploads only {:?}",
                download.name,
                uploaded.keys()
            )
        });
        // The one artifact that must be there comes from the job that runs for forks too.
        if !download.optional {
            assert_eq!(*job, "cpu", "`{}` comes from the cpu job", download.name);
        }
        assert!(
            download
                .path
                .ends_with(&format!("/artifacts/{}", download.name)),
            "`{}` lands in artifacts/<name>, where prepare-comment.sh reads it: {}",
            download.name,
            download.path
        );
        assert!(
            prepare.contains(&format!("/{}", download.name)),
            "prepare-comment.sh reads `{}`",
            download.name
        );
    }
    let report = uploads
        .iter()
        .find(|a| a.job == "cpu" && a.path.trim_end_matches('/') == "reports/site")
        .expect("the cpu job uploads the HTML report (reports/site)");
    assert_eq!(report.name, "perflab-report");

    // The summary artifact holds what prepare-comment.sh requires.
    let summary = uploads
        .iter()
        .find(|a| a.name == "perflab-summary")
        .expect("perflab-summary is uploaded");
    let folder = summary
        .path
        .strip_prefix("${{ runner.temp }}/")
        .expect("the summary is staged under runner.temp")
        .trim_end_matches('/');
    let cpu_runs = run_text(&job_map(&all[BENCH])[str_key("cpu")]);
    for file in ["summary.md", "pr-number", "head-sha"] {
        assert!(prepare.contains(file), "prepare-comment.sh reads {file}");
        assert!(
            cpu_runs.contains(&format!("/comment/{file}")) && folder.ends_with("/comment"),
            "the cpu job writes {file} into {folder}"
        );
    }
}

#[test]
fn the_comment_workflow_never_runs_pr_code() {
    let all = workflows();
    let doc = &all[COMMENT];
    let mut checkouts = 0;
    for step in all_steps(doc) {
        let uses = str_at(step, &["uses"]).unwrap_or("");
        if uses.starts_with("actions/checkout@") {
            checkouts += 1;
            for key in ["ref", "repository"] {
                assert!(
                    step["with"].get(key).is_none(),
                    "the checkout must take the default branch, not `{key}`: {step:?}"
                );
            }
            assert_eq!(
                step["with"]["persist-credentials"],
                Value::Bool(false),
                "no token left in .git/config"
            );
        }
        if uses.starts_with("actions/download-artifact@") {
            let with = &step["with"];
            assert_eq!(
                str_at(with, &["run-id"]),
                Some("${{ github.event.workflow_run.id }}")
            );
            assert_eq!(
                str_at(with, &["github-token"]),
                Some("${{ secrets.GITHUB_TOKEN }}")
            );
            assert!(
                str_at(with, &["path"]).is_some_and(|p| p.starts_with("${{ runner.temp }}/")),
                "artifacts go outside the checkout: {step:?}"
            );
        }
        assert!(
            !uses.starts_with("./"),
            "no local action in the privileged workflow: {uses}"
        );
    }
    assert_eq!(checkouts, 1, "one checkout, of the default branch");
    let runs = run_text(&job_map(doc)[str_key("comment")]);
    let posts: Vec<Vec<String>> = xtask_invocations(&runs)
        .into_iter()
        .filter(|w| w.first().is_some_and(|s| s == "comment"))
        .collect();
    assert_eq!(posts.len(), 1, "one `cargo xtask comment`: {runs}");
    for flag in ["--pr", "--repo", "--summary"] {
        assert!(
            posts[0].iter().any(|w| w == flag),
            "`cargo xtask comment` gets {flag}"
        );
    }
    assert!(
        runs.contains(PREPARE_COMMENT),
        "the artifact is checked before the comment is posted"
    );
}

#[test]
fn no_run_step_interpolates_expressions() {
    for (file, doc) in workflows() {
        let problems = injection_problems(&doc);
        assert!(problems.is_empty(), "{file}:\n  {}", problems.join("\n  "));
    }
}

#[test]
fn ci_tests_with_redis_and_required_services() {
    let all = workflows();
    let jobs = job_map(&all[CI]);
    let test = &jobs[str_key("test")];
    assert!(
        str_at(test, &["services", "redis", "image"]).is_some_and(|i| i.starts_with("redis:")),
        "the test job has a Redis service container"
    );
    assert!(
        strings(&test["services"]["redis"]["ports"])
            .iter()
            .any(|p| p.ends_with(":6379")),
        "Redis's port is published"
    );
    assert_eq!(
        scalar(&test["env"]["PERFLAB_REQUIRE_SERVICES"]).as_deref(),
        Some("1")
    );
    assert!(
        str_at(test, &["env", "REDIS_URL"]).is_some_and(|u| u.starts_with("redis://")),
        "the tests find the service through REDIS_URL"
    );
    let runs = run_text(test);
    let install = shell_commands(&runs)
        .into_iter()
        .find(|c| c.iter().any(|w| w == "apt-get") && c.iter().any(|w| w == "install"))
        .expect("the test job installs system packages with apt-get");
    for package in ["mesa-vulkan-drivers", "libvulkan1", "valgrind"] {
        assert!(
            install.iter().any(|w| w == package),
            "apt-get installs {package}"
        );
    }
    assert!(
        uses_any(test, &["Swatinem/rust-cache@", "actions/cache@"]),
        "the test job caches cargo"
    );
    let order: Vec<String> = xtask_invocations(&runs)
        .into_iter()
        .filter_map(|w| w.first().cloned())
        .collect();
    assert_eq!(order, ["setup", "test"], "setup, then test");

    let fmt = shell_commands(&run_text(&jobs[str_key("fmt")]));
    assert!(
        fmt.iter()
            .any(|c| c.starts_with(&words(&["cargo", "fmt"])) && c.iter().any(|w| w == "--check")),
        "fmt job: cargo fmt --check"
    );
    let clippy = shell_commands(&run_text(&jobs[str_key("clippy")]));
    assert!(
        clippy
            .iter()
            .any(|c| c.starts_with(&words(&["cargo", "clippy"]))
                && c.windows(2).any(|w| w[0] == "-D" && w[1] == "warnings")),
        "clippy job: cargo clippy -D warnings"
    );
}

#[test]
fn bench_measures_merge_base_and_head_interleaved_and_reports() {
    let all = workflows();
    let cpu = &job_map(&all[BENCH])[str_key("cpu")];
    assert!(
        cpu["runs-on"]
            .as_str()
            .is_some_and(|l| l.starts_with("ubuntu-")),
        "the CPU job runs on one GitHub-hosted runner"
    );
    assert!(cpu.get("strategy").is_none(), "one runner: no matrix");
    let checkout = all_job_steps(cpu)
        .find(|s| str_at(s, &["uses"]).is_some_and(|u| u.starts_with("actions/checkout@")))
        .expect("the cpu job checks out");
    assert_eq!(
        scalar(&checkout["with"]["fetch-depth"]).as_deref(),
        Some("0"),
        "the merge-base needs the history"
    );
    assert_eq!(
        str_at(checkout, &["with", "ref"]),
        Some("${{ github.event.pull_request.head.sha }}")
    );
    assert_eq!(
        str_at(cpu, &["env", "BASE_SHA"]),
        Some("${{ github.event.pull_request.base.sha }}")
    );
    assert!(
        str_at(cpu, &["services", "redis", "image"]).is_some_and(|i| i.starts_with("redis:")),
        "the cache suite's Redis scenarios run"
    );

    let runs = run_text(cpu);
    let bench = shell_commands(&runs)
        .into_iter()
        .find(|c| c.first().is_some_and(|w| w == INTERLEAVED))
        .expect("the cpu job runs the interleaved script");
    assert_eq!(flag_values(&bench, "--base"), set(["$BASE_SHA"]));
    let subs: Vec<String> = xtask_invocations(&runs)
        .into_iter()
        .filter_map(|w| w.first().cloned())
        .collect();
    assert_eq!(subs, ["setup", "summary", "report"]);

    // The script builds the merge-base in a worktree and alternates both sides over one
    // shared history, then compares.
    let script = read(&root().join(INTERLEAVED));
    for needle in ["git merge-base", "git worktree add", "ABBA"] {
        assert!(script.contains(needle), "{INTERLEAVED} uses {needle}");
    }
    let calls = xtask_invocations(&script);
    let bench_calls: Vec<&Vec<String>> = calls.iter().filter(|w| sub(w) == "bench").collect();
    assert_eq!(bench_calls.len(), 1, "one bench call, for both sides");
    for flag in ["--suite", "--history"] {
        assert!(
            bench_calls[0].iter().any(|w| w == flag),
            "bench gets {flag}"
        );
    }
    assert!(
        calls
            .iter()
            .any(|w| sub(w) == "compare" && w.iter().any(|x| x == "--base")),
        "the script compares base and head"
    );
}

#[test]
fn gpu_job_runs_the_gpu_suite_on_a_self_hosted_gpu_runner_for_trusted_prs() {
    let all = workflows();
    let gpu = &job_map(&all[BENCH])[str_key("gpu")];
    assert_eq!(
        strings(&gpu["runs-on"]),
        ["self-hosted", "gpu"],
        "runs-on: [self-hosted, gpu]"
    );
    let condition = str_at(gpu, &["if"]).expect("the gpu job has an `if`");
    assert!(
        condition.replace(' ', "")
            == "github.event.pull_request.head.repo.full_name==github.repository",
        "a fork's code never reaches the self-hosted runner: {condition}"
    );
    let runs = run_text(gpu);
    let bench = shell_commands(&runs)
        .into_iter()
        .find(|c| c.first().is_some_and(|w| w == INTERLEAVED))
        .expect("the gpu job runs the interleaved script");
    assert_eq!(interleaved_suites(&bench[1..]), set([GPU_SUITE]));
    assert_eq!(
        scalar(&gpu["env"]["PERFLAB_REQUIRE_GPU_ADAPTER"]).as_deref(),
        Some("1")
    );
    let uploads = artifact_steps(&all[BENCH], "actions/upload-artifact");
    assert!(
        uploads
            .iter()
            .any(|a| a.job == "gpu" && a.name == "perflab-gpu-summary"),
        "the gpu job uploads its summary for the comment"
    );
}

/// What a fake `cargo` on PATH does for the script: `xtask bench` logs the side (the
/// checkout's `marker` file), suite, target folder and history, fails where the checkout has
/// no such suite, else adds `<id>.parquet` to the history; `xtask compare` logs and answers.
const FAKE_CARGO: &str = r#"#!/usr/bin/env bash
set -euo pipefail
[[ "$1" == xtask ]] || exit 64
sub="$2"; shift 2
side="$(cat marker)"
case "$sub" in
  bench)
    suite="" history="" quick=no
    while (($#)); do
      case "$1" in
        --suite) suite="$2"; shift 2 ;;
        --history) history="$2"; shift 2 ;;
        --quick) quick=yes; shift ;;
        *) echo "fake cargo: unexpected $1" >&2; exit 64 ;;
      esac
    done
    echo "bench $side $suite quick=$quick target=$CARGO_TARGET_DIR history=$history" >>"$FAKE_LOG"
    [[ -f "scenarios/suites/$suite.toml" ]] || { echo "no suite $suite" >&2; exit 1; }
    id="$(printf 'r%02d-%s-%s' "$(wc -l <"$FAKE_LOG")" "$side" "$suite")"
    mkdir -p "$history"
    : >"$history/$id.parquet"
    echo "results table of $id"
    ;;
  compare)
    echo "compare $side $2 $4 ${5:-}" >>"$FAKE_LOG"
    if [[ "${5:-}" == --json ]]; then
      printf 'a line before the JSON\n{\n  "base": "%s",\n  "head": "%s"\n}\n' "$2" "$4"
    else
      echo "verdicts $2 vs $4"
    fi
    ;;
  *) exit 64 ;;
esac
"#;

/// Runs .github/scripts/bench-interleaved.sh on a scratch repository whose main moved on
/// after the PR branched, with a fake `cargo`: the base is the merge-base, the sides
/// alternate ABBA over one history, a suite the base lacks is measured on the head alone,
/// and the outputs name the right runs.
#[test]
fn the_interleaved_script_alternates_merge_base_and_head_on_one_history() {
    let tmp = tempfile::tempdir().expect("a scratch folder");
    let repo = tmp.path().join("repo");
    let bin = tmp.path().join("bin");
    let target = tmp.path().join("target");
    let runner_temp = tmp.path().join("runner");
    let out = tmp.path().join("out");
    let log = tmp.path().join("log");
    for dir in [&repo, &bin, &runner_temp] {
        fs::create_dir_all(dir).expect("creating a scratch folder");
    }
    fs::write(bin.join("cargo"), FAKE_CARGO).expect("writing the fake cargo");
    fs::set_permissions(bin.join("cargo"), fs::Permissions::from_mode(0o755))
        .expect("chmod +x the fake cargo");

    let git = |args: &[&str]| -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=perflab",
                "-c",
                "user.email=perflab@localhost",
            ])
            .args([
                "-c",
                "commit.gpgsign=false",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(&repo)
            .output()
            .expect("running git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let write = |path: &str, text: &str| {
        let path = repo.join(path);
        fs::create_dir_all(path.parent().unwrap()).expect("creating folders");
        fs::write(path, text).expect("writing a file");
    };
    git(&["init", "-q"]);
    write("marker", "base\n");
    write("scenarios/suites/alpha.toml", "name = \"alpha\"\n");
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "base"]);
    let merge_base = git(&["rev-parse", "HEAD"]);
    write("marker", "main-later\n");
    git(&["commit", "-q", "-am", "main moves on"]);
    let main = git(&["rev-parse", "HEAD"]);
    git(&["checkout", "-q", "-b", "pr", &merge_base]);
    write("marker", "head\n");
    write("scenarios/suites/beta.toml", "name = \"beta\"\n");
    write("scenarios/suites/gpu.toml", "name = \"gpu\"\n");
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "head"]);
    let head = git(&["rev-parse", "HEAD"]);

    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = Command::new("bash")
        .arg(root().join(INTERLEAVED))
        .args(["--base", &main, "--rounds", "2", "--quick", "--out"])
        .arg(&out)
        .current_dir(&repo)
        .env("PATH", path)
        .env("FAKE_LOG", &log)
        .env("CARGO_TARGET_DIR", &target)
        .env("RUNNER_TEMP", &runner_temp)
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("running the script");
    assert!(
        run.status.success(),
        "the script failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    let history = target.join("perflab/history");
    let base_target = runner_temp
        .join(format!("perflab-base-{}", &merge_base[..12]))
        .join("target");
    let bench = |side: &str, suite: &str| {
        let target = if side == "base" {
            &base_target
        } else {
            &target
        };
        format!(
            "bench {side} {suite} quick=yes target={} history={}",
            target.display(),
            history.display()
        )
    };
    let expected_log = [
        // Round 1 of 2: head first.
        bench("head", "alpha"),
        bench("base", "alpha"),
        "compare head r02-base-alpha r01-head-alpha ".to_owned(),
        bench("head", "beta"),
        bench("base", "beta"), // fails: the base has no suite beta
        // Round 2, the last: base first.
        bench("base", "alpha"),
        bench("head", "alpha"),
        "compare head r06-base-alpha r07-head-alpha ".to_owned(),
        bench("head", "beta"),
        // The final comparison, as JSON.
        "compare head r06-base-alpha r07-head-alpha --json".to_owned(),
    ];
    let read_out = |name: &str| read(&out.join(name));
    assert_eq!(read(&log).lines().collect::<Vec<_>>(), expected_log);
    assert_eq!(
        read_out("runs.tsv"),
        "1\talpha\thead\tr01-head-alpha\n1\talpha\tbase\tr02-base-alpha\n\
         1\tbeta\thead\tr04-head-beta\n2\talpha\tbase\tr06-base-alpha\n\
         2\talpha\thead\tr07-head-alpha\n2\tbeta\thead\tr09-head-beta\n"
    );
    assert_eq!(
        read_out("last-head.tsv"),
        "alpha\tr07-head-alpha\nbeta\tr09-head-beta\n"
    );
    assert_eq!(read_out("base-missing.txt"), "beta\n");
    assert_eq!(
        read_out("compare-alpha.json"),
        "{\n  \"base\": \"r06-base-alpha\",\n  \"head\": \"r07-head-alpha\"\n}\n"
    );
    assert_eq!(
        read_out("compare-alpha-r1.txt"),
        "verdicts r02-base-alpha vs r01-head-alpha\n"
    );
    assert!(!out.join("compare-beta.json").exists());
    assert_eq!(read_out("base-sha").trim(), merge_base);
    assert_eq!(read_out("head-sha").trim(), head);
    assert_eq!(
        fs::read_dir(&history).expect("the shared history").count(),
        6,
        "every run in one history"
    );
    assert_eq!(
        git(&["worktree", "list", "--porcelain"])
            .lines()
            .filter(|l| l.starts_with("worktree "))
            .count(),
        1,
        "the base worktree is removed afterwards"
    );
}

/// .github/scripts/prepare-comment.sh with a fake `gh`: a good artifact becomes the comment
/// (CPU then GPU summary) and `pr=N`; a PR number that is not a number, an artifact from
/// another commit, or a missing file fails; a PR that moved on is skipped.
#[test]
fn prepare_comment_trusts_only_a_pr_number_that_matches_the_measured_commit() {
    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
    let tmp = tempfile::tempdir().expect("a scratch folder");
    let bin = tmp.path().join("bin");
    fs::create_dir_all(&bin).expect("creating bin");
    // The fake gh logs what it was asked and answers with $FAKE_PR_HEAD.
    fs::write(
        bin.join("gh"),
        "#!/usr/bin/env bash\necho \"$*\" >>\"$GH_LOG\"\necho \"$FAKE_PR_HEAD\"\n",
    )
    .expect("writing the fake gh");
    fs::set_permissions(bin.join("gh"), fs::Permissions::from_mode(0o755))
        .expect("chmod +x the fake gh");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let case = |name: &str, files: &[(&str, &str)], pr_head: &str| {
        let dir = tmp.path().join(name);
        for (file, text) in files {
            let file = dir.join("artifacts").join(file);
            fs::create_dir_all(file.parent().unwrap()).expect("creating folders");
            fs::write(file, text).expect("writing an artifact file");
        }
        let output = dir.join("github-output");
        let comment = dir.join("comment.md");
        let gh_log = dir.join("gh-log");
        let run = Command::new("bash")
            .arg(root().join(PREPARE_COMMENT))
            .arg(dir.join("artifacts"))
            .arg(&comment)
            .env("PATH", &path)
            .env("RUN_HEAD_SHA", SHA)
            .env("GITHUB_REPOSITORY", "o/r")
            .env("GITHUB_OUTPUT", &output)
            .env("FAKE_PR_HEAD", pr_head)
            .env("GH_LOG", &gh_log)
            .output()
            .expect("running prepare-comment.sh");
        let output = fs::read_to_string(output).unwrap_or_default();
        let comment = fs::read_to_string(comment).ok();
        let asked = fs::read_to_string(gh_log).unwrap_or_default();
        (run.status.success(), output, comment, asked)
    };
    let good = [
        ("perflab-summary/summary.md", "## cpu\n"),
        ("perflab-summary/pr-number", "42\n"),
        ("perflab-summary/head-sha", &format!("{SHA}\n")),
        ("perflab-gpu-summary/summary.md", "## gpu\n"),
    ];

    let (ok, output, comment, asked) = case("good", &good, SHA);
    assert!(ok);
    assert_eq!(asked, "api repos/o/r/pulls/42 --jq .head.sha\n");
    assert_eq!(output, "pr=42\nskip=false\n");
    assert_eq!(
        comment.as_deref(),
        Some("## cpu\n\n\n### GPU runner\n\n## gpu\n")
    );

    let (ok, output, comment, _) = case("cpu-only", &good[..3], SHA);
    assert!(ok);
    assert_eq!(output, "pr=42\nskip=false\n");
    assert_eq!(comment.as_deref(), Some("## cpu\n"));

    let (ok, output, comment, _) = case(
        "moved-on",
        &good,
        "fedcba9876543210fedcba9876543210fedcba98",
    );
    assert!(ok, "a newer commit's own run comments");
    assert_eq!(output, "skip=true\n");
    assert_eq!(comment, None);

    let mut not_a_number = good;
    not_a_number[1].1 = "42; rm -rf /\n";
    let (ok, output, _, asked) = case("not-a-number", &not_a_number, SHA);
    assert!(
        !ok && output.is_empty() && asked.is_empty(),
        "{output} {asked}"
    );

    let mut other_commit = good;
    other_commit[2].1 = "fedcba9876543210fedcba9876543210fedcba98\n";
    let (ok, output, _, asked) = case("other-commit", &other_commit, SHA);
    assert!(
        !ok && output.is_empty() && asked.is_empty(),
        "{output} {asked}"
    );

    let (ok, output, _, asked) = case("no-head-sha", &[good[0], good[1]], SHA);
    assert!(
        !ok && output.is_empty() && asked.is_empty(),
        "{output} {asked}"
    );
}

/// The checks above fail on workflows that drift: each of these synthetic workflows breaks
/// one rule, and the check for that rule says so.
#[test]
fn the_checks_catch_drift() {
    let mut cli = XtaskCli::default();
    let bad = |words: &str| xtask_problems(&words_of(words), &mut XtaskCli::default());
    assert!(bad("bench --suite memory --quick").is_empty());
    assert!(bad("baseline save main --run abc").is_empty());
    assert!(
        !bad("benchmark --suite memory").is_empty(),
        "unknown subcommand"
    );
    assert!(!bad("bench --sweet memory").is_empty(), "unknown flag");
    assert!(
        !bad("baseline rename a b").is_empty(),
        "unknown nested subcommand"
    );
    assert!(!bad("").is_empty(), "bare cargo xtask");
    assert!(xtask_problems(&words_of("compare --base a --head b --json"), &mut cli).is_empty());

    let root = root();
    assert!(script_problems(&root, INTERLEAVED).is_empty());
    assert!(!script_problems(&root, ".github/scripts/no-such.sh").is_empty());
    assert!(
        !script_problems(&root, "xtask/Cargo.toml").is_empty(),
        "not executable"
    );
    assert_eq!(
        script_references("bash .ci/run && ./x.sh a; .github/scripts/y.sh --z\nsh \"$HOME/q\""),
        set([".ci/run", "./x.sh", ".github/scripts/y.sh"])
    );

    let writes = parse(
        "name: x\non: pull_request\npermissions:\n  contents: write\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo\n",
    );
    assert!(
        !permission_problems(&writes).is_empty(),
        "write on pull_request"
    );
    let missing =
        parse("name: x\non: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo\n");
    assert!(
        !permission_problems(&missing).is_empty(),
        "no top-level permissions"
    );
    let all = parse(
        "name: x\non: workflow_run\npermissions: write-all\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo\n",
    );
    assert!(!permission_problems(&all).is_empty(), "write-all");
    let escalated = parse(
        "name: x\non: workflow_run\npermissions:\n  contents: read\njobs:\n  a:\n    runs-on: x\n    permissions:\n      contents: write\n    steps:\n      - run: echo\n",
    );
    assert!(
        !permission_problems(&escalated).is_empty(),
        "a job escalates"
    );
    let target = parse(
        "name: x\non: [pull_request_target]\npermissions: {}\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo\n",
    );
    assert!(
        !permission_problems(&target).is_empty(),
        "pull_request_target"
    );

    let injected = parse(
        "name: x\non: pull_request\npermissions: {}\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo \"${{ github.event.pull_request.title }}\"\n",
    );
    assert!(!injection_problems(&injected).is_empty());
    let shapeless = parse(
        "name: x\non: push\njobs:\n  a:\n    steps:\n      - uses: actions/checkout\n      - uses: actions/checkout@v4\n        run: echo\n",
    );
    assert!(
        shape_problems(&shapeless).len() >= 3,
        "no runs-on, unpinned, run+uses"
    );
}

// ---------------------------------------------------------------------------------------
// Loading

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn parse(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("parsing YAML: {e}\n{text}"))
}

/// Every workflow file by file name; any file that does not parse fails the test here.
fn workflows() -> BTreeMap<String, Value> {
    let dir = root().join(".github/workflows");
    let mut all = BTreeMap::new();
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("listing workflows").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.ends_with(".yml") || name.ends_with(".yaml"),
            "{name}: only workflows belong in .github/workflows"
        );
        let doc = serde_yaml_ng::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        all.insert(name, doc);
    }
    all
}

/// Every piece of shell the workflows run: their `run:` steps, and the scripts those call
/// (transitively), each with where it comes from.
fn all_shell_sources() -> Vec<(String, String)> {
    let root = root();
    let mut sources = Vec::new();
    for (file, doc) in workflows() {
        for (id, job) in job_map(&doc) {
            for (i, step) in all_job_steps(job).enumerate() {
                if let Some(run) = str_at(step, &["run"]) {
                    let id = id.as_str().unwrap_or("?");
                    sources.push((format!("{file}: job {id}, step {}", i + 1), run.to_owned()));
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    let mut i = 0;
    while i < sources.len() {
        for path in script_references(&sources[i].1) {
            let full = root.join(&path);
            if seen.insert(path.clone()) && full.is_file() {
                sources.push((path, read(&full)));
            }
        }
        i += 1;
    }
    sources
}

// ---------------------------------------------------------------------------------------
// YAML access

fn str_key(key: &str) -> Value {
    Value::String(key.to_owned())
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .and_then(Value::as_str)
}

/// A scalar as GitHub sees it: strings, numbers and booleans all become strings.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A string or a sequence of strings, as a list.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
        _ => Vec::new(),
    }
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.into_iter().map(String::from).collect()
}

fn words(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn words_of(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

/// The `on:` mapping (YAML 1.1 parsers read the key `on` as `true`; accept both).
fn on(doc: &Value) -> Mapping {
    let value = doc
        .get("on")
        .or_else(|| doc.as_mapping().and_then(|m| m.get(Value::Bool(true))))
        .expect("a workflow has `on:`");
    match value {
        Value::Mapping(m) => m.clone(),
        other => strings(other)
            .into_iter()
            .map(|t| (Value::String(t), Value::Null))
            .collect(),
    }
}

fn triggers(doc: &Value) -> BTreeSet<String> {
    on(doc).keys().filter_map(scalar).collect()
}

fn job_map(doc: &Value) -> &Mapping {
    doc.get("jobs")
        .and_then(Value::as_mapping)
        .expect("a workflow has a `jobs` mapping")
}

fn all_job_steps(job: &Value) -> impl Iterator<Item = &Value> {
    job.get("steps")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
}

fn all_steps(doc: &Value) -> Vec<&Value> {
    job_map(doc).values().flat_map(all_job_steps).collect()
}

/// Every `run:` of a job, one after the other.
fn run_text(job: &Value) -> String {
    all_job_steps(job)
        .filter_map(|s| str_at(s, &["run"]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn uses_any(job: &Value, prefixes: &[&str]) -> bool {
    all_job_steps(job)
        .any(|s| str_at(s, &["uses"]).is_some_and(|u| prefixes.iter().any(|p| u.starts_with(p))))
}

#[derive(Debug)]
struct Artifact {
    job: String,
    name: String,
    path: String,
    optional: bool,
}

/// The upload or download steps (`action` without the version) of a workflow.
fn artifact_steps(doc: &Value, action: &str) -> Vec<Artifact> {
    let mut found = Vec::new();
    for (id, job) in job_map(doc) {
        for step in all_job_steps(job) {
            if str_at(step, &["uses"]).is_some_and(|u| u.starts_with(&format!("{action}@"))) {
                found.push(Artifact {
                    job: id.as_str().unwrap_or("").to_owned(),
                    name: str_at(step, &["with", "name"])
                        .unwrap_or_else(|| panic!("{action} without a name: {step:?}"))
                        .to_owned(),
                    path: str_at(step, &["with", "path"]).unwrap_or("").to_owned(),
                    optional: step["continue-on-error"] == Value::Bool(true),
                });
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------------------
// Checks: each returns what is wrong, so that `the_checks_catch_drift` can test them.

/// Structure: name, on, jobs; every job runs somewhere and has steps; every step does one
/// thing; every action is pinned to a version.
fn shape_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if str_at(doc, &["name"]).is_none() {
        problems.push("no `name`".to_owned());
    }
    let has_on = doc.get("on").is_some()
        || doc
            .as_mapping()
            .is_some_and(|m| m.contains_key(Value::Bool(true)));
    if !has_on {
        problems.push("no `on`".to_owned());
    }
    let Some(jobs) = doc.get("jobs").and_then(Value::as_mapping) else {
        problems.push("no `jobs` mapping".to_owned());
        return problems;
    };
    for (id, job) in jobs {
        let id = id.as_str().unwrap_or("?");
        if job.get("runs-on").is_none() {
            problems.push(format!("job {id}: no `runs-on`"));
        }
        let Some(steps) = job.get("steps").and_then(Value::as_sequence) else {
            problems.push(format!("job {id}: no steps"));
            continue;
        };
        for (i, step) in steps.iter().enumerate() {
            let n = i + 1;
            match (str_at(step, &["run"]), str_at(step, &["uses"])) {
                (Some(_), Some(_)) => {
                    problems.push(format!("job {id}, step {n}: both run and uses"))
                }
                (None, None) => problems.push(format!("job {id}, step {n}: neither run nor uses")),
                (None, Some(uses)) if !uses.starts_with("./") => {
                    let pinned = uses.split_once('@').is_some_and(|(_, v)| !v.is_empty());
                    if !pinned {
                        problems.push(format!("job {id}, step {n}: `{uses}` is not pinned"));
                    }
                }
                _ => {}
            }
        }
    }
    problems
}

/// The top-level permissions as (scope, level) pairs; an error when they are missing or not
/// a mapping (`read-all`, `write-all`).
fn top_permissions(doc: &Value) -> Result<BTreeSet<(String, String)>, String> {
    permission_pairs(doc.get("permissions").ok_or("no top-level `permissions`")?)
}

fn permission_pairs(value: &Value) -> Result<BTreeSet<(String, String)>, String> {
    let map = value
        .as_mapping()
        .ok_or_else(|| format!("permissions must list scopes, not {value:?}"))?;
    Ok(map
        .iter()
        .map(|(k, v)| (scalar(k).unwrap_or_default(), scalar(v).unwrap_or_default()))
        .collect())
}

fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Least privilege: permissions at the top; no job grants more than the top does; nothing
/// that runs a pull request's code may write; `pull_request_target` is never used.
fn permission_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let triggers = triggers(doc);
    if triggers.contains("pull_request_target") {
        problems.push("pull_request_target runs with write access next to PR code".to_owned());
    }
    let top = match top_permissions(doc) {
        Ok(top) => top,
        Err(e) => {
            problems.push(e);
            return problems;
        }
    };
    let writes = |perms: &BTreeSet<(String, String)>| -> BTreeSet<String> {
        perms
            .iter()
            .filter(|(_, level)| level == "write")
            .map(|(scope, _)| scope.clone())
            .collect()
    };
    let top_writes = writes(&top);
    let runs_pr_code = triggers.contains("pull_request") || triggers.contains("push");
    if runs_pr_code && !top_writes.is_empty() {
        problems.push(format!(
            "triggered by {triggers:?}, it must not write: {top_writes:?}"
        ));
    }
    for (id, job) in job_map(doc) {
        let id = id.as_str().unwrap_or("?");
        if let Some(perms) = job.get("permissions") {
            match permission_pairs(perms) {
                Ok(perms) => {
                    let extra: Vec<_> = writes(&perms).difference(&top_writes).cloned().collect();
                    let unknown: Vec<_> = perms
                        .iter()
                        .filter(|(scope, level)| {
                            level != "none" && !top.iter().any(|(s, _)| s == scope)
                        })
                        .collect();
                    if !extra.is_empty() || !unknown.is_empty() {
                        problems.push(format!(
                            "job {id} grants more than the workflow: {extra:?} {unknown:?}"
                        ));
                    }
                }
                Err(e) => problems.push(format!("job {id}: {e}")),
            }
        }
    }
    problems
}

/// `${{ }}` inside a `run:` is pasted into the shell before it runs: a PR title or branch
/// name becomes code. Values reach scripts through `env:` instead.
fn injection_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, job) in job_map(doc) {
        for (i, step) in all_job_steps(job).enumerate() {
            if let Some(run) = str_at(step, &["run"])
                && run.contains("${{")
            {
                problems.push(format!(
                    "job {}, step {}: `${{{{ }}}}` in run: pass it through env",
                    id.as_str().unwrap_or("?"),
                    i + 1
                ));
            }
        }
    }
    problems
}

/// The help of `cargo xtask [path...]`, read from the xtask binary itself.
#[derive(Debug, Default)]
struct XtaskCli {
    cache: BTreeMap<Vec<String>, Help>,
}

#[derive(Debug, Clone)]
struct Help {
    commands: BTreeSet<String>,
    flags: BTreeSet<String>,
}

impl XtaskCli {
    fn help(&mut self, path: &[&str]) -> Help {
        let key = words(path);
        if let Some(help) = self.cache.get(&key) {
            return help.clone();
        }
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(path)
            .arg("--help")
            .output()
            .expect("running xtask --help");
        assert!(
            out.status.success(),
            "xtask {path:?} --help failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let help = parse_help(&String::from_utf8_lossy(&out.stdout));
        self.cache.insert(key, help.clone());
        help
    }
}

/// clap's help: the names under `Commands:` (less `help`) and every `--flag` of `Options:`.
fn parse_help(text: &str) -> Help {
    let mut commands = BTreeSet::new();
    let mut flags = BTreeSet::new();
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        let trimmed = line.trim_start();
        match section {
            "Commands:" if line.starts_with("  ") => {
                if let Some(name) = trimmed.split_whitespace().next()
                    && name != "help"
                {
                    commands.insert(name.to_owned());
                }
            }
            "Options:" if trimmed.starts_with('-') => {
                for word in trimmed.split([' ', ',']) {
                    if let Some(flag) = word.strip_prefix("--")
                        && !flag.is_empty()
                    {
                        flags.insert(format!("--{}", flag.trim_end_matches(['=', '<'])));
                    }
                }
            }
            _ => {}
        }
    }
    Help { commands, flags }
}

/// What is wrong with `cargo xtask WORDS...`: an unknown subcommand (at any depth) or an
/// unknown `--flag`.
fn xtask_problems(words: &[String], cli: &mut XtaskCli) -> Vec<String> {
    let mut path: Vec<&str> = Vec::new();
    let mut help = cli.help(&[]);
    let mut rest = words;
    while !help.commands.is_empty() {
        let Some(sub) = rest.first() else {
            return vec![format!(
                "`cargo xtask {}` needs a subcommand",
                path.join(" ")
            )];
        };
        if !help.commands.contains(sub.as_str()) {
            return vec![format!(
                "`cargo xtask {}`: no subcommand `{sub}` (there are {:?})",
                words.join(" "),
                help.commands
            )];
        }
        path.push(sub);
        help = cli.help(&path);
        rest = &rest[1..];
    }
    rest.iter()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap_or(w))
        .filter(|flag| !help.flags.contains(*flag))
        .map(|flag| {
            format!(
                "`cargo xtask {}`: no flag {flag} (there are {:?})",
                words.join(" "),
                help.flags
            )
        })
        .collect()
}

/// A referenced script must exist and be executable.
fn script_problems(root: &Path, path: &str) -> Vec<String> {
    let full = root.join(path);
    match fs::metadata(&full) {
        Err(e) => vec![format!("{path}: {e}")],
        Ok(meta) if !meta.is_file() => vec![format!("{path} is not a file")],
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => {
            vec![format!("{path} is not executable")]
        }
        Ok(_) => Vec::new(),
    }
}

/// Script paths a piece of shell runs: words under `.github/scripts/` or `.ci/`, a command
/// that starts with `./`, and the file after `bash`/`sh` (when it is not a variable).
fn script_references(shell: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for command in shell_commands(shell) {
        for (i, word) in command.iter().enumerate() {
            let after_shell = i > 0
                && matches!(command[i - 1].as_str(), "bash" | "sh")
                && !word.starts_with('-')
                && !word.contains('$');
            if word.starts_with(".github/scripts/")
                || word.starts_with(".ci/")
                || (i == 0 && word.starts_with("./"))
                || after_shell
            {
                found.insert(word.clone());
            }
        }
    }
    found
}

/// The words after `cargo xtask` in every command of a piece of shell.
fn xtask_invocations(shell: &str) -> Vec<Vec<String>> {
    shell_commands(shell)
        .into_iter()
        .filter_map(|command| {
            let at = command
                .windows(2)
                .position(|w| w[0] == "cargo" && w[1] == "xtask")?;
            Some(command[at + 2..].to_vec())
        })
        .collect()
}

/// The subcommand of a `cargo xtask` invocation's words ("" when there is none).
fn sub(words: &[String]) -> &str {
    words.first().map_or("", String::as_str)
}

/// The values given to `flag` in a command's words.
fn flag_values(words: &[String], flag: &str) -> BTreeSet<String> {
    words
        .windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].clone())
        .collect()
}

/// The suites given to bench-interleaved.sh: its positional arguments.
fn interleaved_suites(args: &[String]) -> BTreeSet<String> {
    let script = read(&root().join(INTERLEAVED));
    let mut suites = BTreeSet::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg.starts_with("--") {
            assert!(
                script.contains(&format!("{arg})")),
                "{INTERLEAVED} has no option {arg}"
            );
            if matches!(arg.as_str(), "--base" | "--rounds" | "--out") {
                args.next();
            }
        } else {
            suites.insert(arg.clone());
        }
    }
    suites
}

/// Splits shell source into simple commands, each a list of words with quotes removed.
/// Commands end at newlines, `;`, `|`, `&`, redirections and parentheses; comments are
/// dropped; the inside of each `$(...)` is split as commands of its own, and the word that
/// holds it keeps the `$(...)` text as it is.
fn shell_commands(src: &str) -> Vec<Vec<String>> {
    let src = src.replace("\\\n", " ");
    let chars: Vec<char> = src.chars().collect();
    let mut commands = Vec::new();
    let mut inner = Vec::new();
    let mut command: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;

    fn end_word(command: &mut Vec<String>, word: &mut String, in_word: &mut bool) {
        if *in_word {
            command.push(std::mem::take(word));
            *in_word = false;
        }
    }
    fn end_command(commands: &mut Vec<Vec<String>>, command: &mut Vec<String>) {
        if !command.is_empty() {
            commands.push(std::mem::take(command));
        }
    }
    /// From the `(` of `$(`, the index just past the matching `)`.
    fn skip_substitution(chars: &[char], open: usize) -> usize {
        let mut depth = 0;
        let mut quote: Option<char> = None;
        let mut j = open;
        while j < chars.len() {
            let c = chars[j];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '\'' | '"' => quote = Some(c),
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                },
            }
            j += 1;
        }
        chars.len()
    }

    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' && chars.get(i + 1) == Some(&'(') && quote != Some('\'') {
            let end = skip_substitution(&chars, i + 1);
            let body: String = chars[i + 2..end.saturating_sub(1).max(i + 2)]
                .iter()
                .collect();
            inner.push(body);
            word.extend(&chars[i..end]);
            in_word = true;
            i = end;
            continue;
        }
        match quote {
            Some('\'') => {
                if c == '\'' {
                    quote = None;
                } else {
                    word.push(c);
                }
            }
            Some(_) => match c {
                '"' => quote = None,
                '\\' if i + 1 < chars.len() => {
                    i += 1;
                    word.push(chars[i]);
                }
                _ => word.push(c),
            },
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    in_word = true;
                }
                '\\' if i + 1 < chars.len() => {
                    i += 1;
                    word.push(chars[i]);
                    in_word = true;
                }
                '#' if !in_word => {
                    while i < chars.len() && chars[i] != '\n' {
                        i += 1;
                    }
                    continue;
                }
                ' ' | '\t' => end_word(&mut command, &mut word, &mut in_word),
                '\n' | ';' | '|' | '&' | '<' | '>' | '(' | ')' => {
                    end_word(&mut command, &mut word, &mut in_word);
                    end_command(&mut commands, &mut command);
                }
                _ => {
                    word.push(c);
                    in_word = true;
                }
            },
        }
        i += 1;
    }
    end_word(&mut command, &mut word, &mut in_word);
    end_command(&mut commands, &mut command);
    for body in inner {
        commands.extend(shell_commands(&body));
    }
    commands
}
