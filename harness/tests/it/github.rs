//! The sticky PR comment against a local fake of GitHub's REST API (wiremock on 127.0.0.1).
//!
//! `FakeGithub` keeps the issue comments of one pull request in memory and answers list (with
//! GitHub's `per_page`/`page` and `Link` headers), create and edit; faults (502, rate limits,
//! 401/403/404) are mocks of higher priority mounted in front of it for a number of calls.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use perflab::{
    COMMENT_MARKER, CommentAction, CommentTarget, GithubError, GithubToken, RetryPolicy,
    StickyComment,
};
use serde_json::{Value, json};
use wiremock::matchers::{any, method};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "ghs_perflabT3stT0ken0123456789abcdef";
const COMMENTS: &str = "/repos/octo/lab/issues/7/comments";
const EDIT_PREFIX: &str = "/repos/octo/lab/issues/comments/";

/// The comments of `octo/lab#7`, served the way GitHub serves them.
#[derive(Clone)]
struct FakeGithub {
    /// The API root as clients see it: the server's address, plus a path on GitHub Enterprise.
    base: String,
    /// That path (`/api/v3`), or empty.
    prefix: String,
    state: Arc<Mutex<Vec<(u64, String)>>>,
    /// The first POST creates the comment and then answers 502, as a flaky proxy can.
    fail_after_create: Arc<Mutex<bool>>,
}

impl FakeGithub {
    fn comments(&self) -> Vec<(u64, String)> {
        self.state.lock().unwrap().clone()
    }

    fn push(&self, body: &str) -> u64 {
        let mut state = self.state.lock().unwrap();
        let id = 1000 + state.len() as u64;
        state.push((id, body.to_owned()));
        id
    }

    fn json(&self, id: u64, body: &str) -> Value {
        json!({
            "id": id,
            "html_url": format!("https://github.com/octo/lab/pull/7#issuecomment-{id}"),
            "body": body,
            "user": {"login": "github-actions[bot]", "type": "Bot"},
        })
    }

    fn list(&self, request: &Request) -> ResponseTemplate {
        let query = |key: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.parse::<usize>().ok())
        };
        let per_page = query("per_page").unwrap_or(30).clamp(1, 100);
        let page = query("page").unwrap_or(1).max(1);
        let all = self.comments();
        let last = all.len().div_ceil(per_page).max(1);
        let items: Vec<Value> = all
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|(id, body)| self.json(*id, body))
            .collect();
        let link = |n: usize, rel: &str| {
            format!(
                "<{}{COMMENTS}?per_page={per_page}&page={n}>; rel=\"{rel}\"",
                self.base
            )
        };
        let mut links = Vec::new();
        if page > 1 {
            links.push(link(page - 1, "prev"));
            links.push(link(1, "first"));
        }
        if page < last {
            links.push(link(page + 1, "next"));
            links.push(link(last, "last"));
        }
        let mut reply = ResponseTemplate::new(200).set_body_json(items);
        if !links.is_empty() {
            reply = reply.insert_header("link", links.join(", "));
        }
        reply
    }
}

impl Respond for FakeGithub {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {TOKEN}")) {
            return ResponseTemplate::new(401).set_body_json(json!({
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest",
            }));
        }
        let Some(path) = request.url.path().strip_prefix(self.prefix.as_str()) else {
            return not_found();
        };
        let body = || {
            request.body_json::<Value>().unwrap()["body"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        match (request.method.as_str(), path) {
            ("GET", COMMENTS) => self.list(request),
            ("POST", COMMENTS) => {
                let body = body();
                let id = self.push(&body);
                if std::mem::take(&mut *self.fail_after_create.lock().unwrap()) {
                    return ResponseTemplate::new(502).set_body_string("Bad Gateway");
                }
                ResponseTemplate::new(201).set_body_json(self.json(id, &body))
            }
            ("PATCH", p) if p.starts_with(EDIT_PREFIX) => {
                let id: u64 = p[EDIT_PREFIX.len()..].parse().unwrap();
                let body = body();
                let mut state = self.state.lock().unwrap();
                match state.iter_mut().find(|(i, _)| *i == id) {
                    Some(slot) => {
                        slot.1.clone_from(&body);
                        ResponseTemplate::new(200).set_body_json(self.json(id, &body))
                    }
                    None => not_found(),
                }
            }
            _ => not_found(),
        }
    }
}

fn not_found() -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"}))
}

async fn start() -> (MockServer, FakeGithub) {
    start_under("").await
}

/// A fake whose API lives under `prefix` (GitHub Enterprise serves it under `/api/v3`).
async fn start_under(prefix: &str) -> (MockServer, FakeGithub) {
    let server = MockServer::start().await;
    assert!(
        server.uri().starts_with("http://127.0.0.1:"),
        "{}",
        server.uri()
    );
    let fake = FakeGithub {
        base: format!("{}{prefix}", server.uri()),
        prefix: prefix.to_owned(),
        state: Arc::default(),
        fail_after_create: Arc::default(),
    };
    Mock::given(any())
        .respond_with(fake.clone())
        .with_priority(10)
        .mount(&server)
        .await;
    (server, fake)
}

/// Answers the next `times` requests of `verb` with `reply`, in front of the fake.
async fn fault(server: &MockServer, verb: &str, times: u64, reply: ResponseTemplate) {
    Mock::given(method(verb))
        .respond_with(reply)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(server)
        .await;
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_wait: Duration::from_secs(5),
        max_total_wait: Duration::from_secs(10),
    }
}

fn sticky_with(server: &MockServer, token: &str, pr: u64) -> StickyComment {
    let target = CommentTarget::new("octo/lab", pr)
        .unwrap()
        .with_api_base(server.uri());
    StickyComment::new(GithubToken::new(token).unwrap(), target)
        .unwrap()
        .with_retry_policy(fast_retries())
}

fn sticky(server: &MockServer) -> StickyComment {
    sticky_with(server, TOKEN, 7)
}

/// `METHOD path?query` of every request the server saw, in order.
async fn requests(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let query = r.url.query().map(|q| format!("?{q}")).unwrap_or_default();
            format!("{} {}{query}", r.method, r.url.path())
        })
        .collect()
}

async fn count(server: &MockServer, verb: &str) -> usize {
    let prefix = format!("{verb} ");
    requests(server)
        .await
        .iter()
        .filter(|r| r.starts_with(&prefix))
        .count()
}

#[tokio::test]
async fn first_run_creates_and_second_run_edits_the_same_comment() {
    let (server, fake) = start().await;
    fake.push("LGTM");
    fake.push("a human comment that mentions perflab");
    let comment = sticky(&server);

    let first = comment.upsert("## Benchmarks\n\nrun 1").await.unwrap();
    assert_eq!(first.action, CommentAction::Created);
    assert_eq!(first.retries, 0);
    assert_eq!(
        first.url,
        format!(
            "https://github.com/octo/lab/pull/7#issuecomment-{}",
            first.id
        )
    );
    let all = fake.comments();
    assert_eq!(all.len(), 3);
    assert_eq!(
        all[2],
        (
            first.id,
            format!("{COMMENT_MARKER}\n## Benchmarks\n\nrun 1")
        )
    );
    assert_eq!(
        requests(&server).await,
        [
            format!("GET {COMMENTS}?per_page=100"),
            format!("POST {COMMENTS}")
        ]
    );
    // The token travels as a bearer token, and the client asks for GitHub's JSON.
    let seen = server.received_requests().await.unwrap();
    assert!(seen.iter().all(|r| {
        r.headers["authorization"] == format!("Bearer {TOKEN}")
            && r.headers["accept"] == "application/vnd.github+json"
    }));

    let second = comment.upsert("## Benchmarks\n\nrun 2").await.unwrap();
    assert_eq!(second.action, CommentAction::Updated);
    assert_eq!(second.id, first.id);
    let all = fake.comments();
    assert_eq!(all.len(), 3, "edited in place, not added");
    assert_eq!(
        all[2].1,
        format!("{COMMENT_MARKER}\n## Benchmarks\n\nrun 2")
    );
    assert_eq!(all[0].1, "LGTM");
    assert_eq!(
        requests(&server).await[2..],
        [
            format!("GET {COMMENTS}?per_page=100"),
            format!("PATCH {EDIT_PREFIX}{}", first.id)
        ]
    );
}

#[tokio::test]
async fn a_marker_comment_on_page_three_is_found_and_edited() {
    let (server, fake) = start().await;
    let mut marked = 0;
    for i in 0..260 {
        if i == 230 {
            marked = fake.push(&format!("{COMMENT_MARKER}\nold report"));
        } else {
            fake.push(&format!("comment {i}"));
        }
    }
    let outcome = sticky(&server).upsert("new report").await.unwrap();
    assert_eq!(outcome.action, CommentAction::Updated);
    assert_eq!(outcome.id, marked);
    let base = server.uri();
    assert_eq!(
        requests(&server).await,
        [
            format!("GET {COMMENTS}?per_page=100"),
            format!("GET {COMMENTS}?per_page=100&page=2"),
            format!("GET {COMMENTS}?per_page=100&page=3"),
            format!("PATCH {EDIT_PREFIX}{marked}"),
        ],
        "pages followed through the Link headers of {base}"
    );
    let all = fake.comments();
    assert_eq!(all.len(), 260);
    assert_eq!(all[230].1, format!("{COMMENT_MARKER}\nnew report"));
}

#[tokio::test]
async fn every_page_is_read_before_a_comment_is_created() {
    let (server, fake) = start().await;
    for i in 0..201 {
        fake.push(&format!("comment {i}"));
    }
    let outcome = sticky(&server).upsert("report").await.unwrap();
    assert_eq!(outcome.action, CommentAction::Created);
    let seen = requests(&server).await;
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[2], format!("GET {COMMENTS}?per_page=100&page=3"));
    assert_eq!(seen[3], format!("POST {COMMENTS}"));
    assert_eq!(fake.comments().len(), 202);
}

#[tokio::test]
async fn a_502_is_retried_then_succeeds() {
    let (server, fake) = start().await;
    fault(
        &server,
        "GET",
        1,
        ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"),
    )
    .await;
    let outcome = sticky(&server).upsert("report").await.unwrap();
    assert_eq!(outcome.action, CommentAction::Created);
    assert_eq!(outcome.retries, 1);
    assert_eq!(count(&server, "GET").await, 2);
    assert_eq!(count(&server, "POST").await, 1);
    assert_eq!(fake.comments().len(), 1);
}

#[tokio::test]
async fn a_failed_create_is_looked_up_again_before_it_is_repeated() {
    // The POST answers 502 without creating anything: search again, then create once.
    let (server, fake) = start().await;
    fault(&server, "POST", 1, ResponseTemplate::new(502)).await;
    let outcome = sticky(&server).upsert("report").await.unwrap();
    assert_eq!(outcome.action, CommentAction::Created);
    assert_eq!(fake.comments().len(), 1);
    assert_eq!(
        requests(&server).await,
        [
            format!("GET {COMMENTS}?per_page=100"),
            format!("POST {COMMENTS}"),
            format!("GET {COMMENTS}?per_page=100"),
            format!("POST {COMMENTS}"),
        ]
    );

    // The POST created the comment and then answered 502: the search finds it and edits it.
    let (server, fake) = start().await;
    *fake.fail_after_create.lock().unwrap() = true;
    let outcome = sticky(&server).upsert("report").await.unwrap();
    assert_eq!(outcome.action, CommentAction::Created);
    let all = fake.comments();
    assert_eq!(all.len(), 1, "never doubled: {all:?}");
    assert_eq!(outcome.id, all[0].0);
    assert_eq!(count(&server, "POST").await, 1);
    assert_eq!(count(&server, "PATCH").await, 1);
}

#[tokio::test]
async fn a_403_rate_limit_waits_for_the_reset_and_retries() {
    let (server, fake) = start().await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    fault(
        &server,
        "GET",
        1,
        ResponseTemplate::new(403)
            .insert_header("x-ratelimit-limit", "5000")
            .insert_header("x-ratelimit-remaining", "0")
            .insert_header("x-ratelimit-reset", (now + 1).to_string().as_str())
            .set_body_json(json!({"message": "API rate limit exceeded for installation ID 1."})),
    )
    .await;
    let outcome = sticky(&server).upsert("report").await.unwrap();
    assert_eq!(outcome.action, CommentAction::Created);
    assert_eq!(outcome.retries, 1);
    // The planned wait runs to the reset (plus its rounding second), within the cap.
    assert!(
        outcome.waited >= Duration::from_secs(1) && outcome.waited <= Duration::from_secs(3),
        "{:?}",
        outcome.waited
    );
    assert_eq!(count(&server, "GET").await, 2);
    assert_eq!(fake.comments().len(), 1);
}

#[tokio::test]
async fn a_secondary_rate_limit_honours_retry_after() {
    let (server, fake) = start().await;
    fault(
        &server,
        "POST",
        1,
        ResponseTemplate::new(403)
            .insert_header("retry-after", "1")
            .set_body_json(json!({"message": "You have exceeded a secondary rate limit."})),
    )
    .await;
    let outcome = sticky(&server).upsert("report").await.unwrap();
    assert_eq!(outcome.action, CommentAction::Created);
    assert_eq!(
        (outcome.retries, outcome.waited),
        (1, Duration::from_secs(1))
    );
    assert_eq!(count(&server, "POST").await, 2);
    assert_eq!(fake.comments().len(), 1);
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_cap_fails_without_waiting() {
    let (server, _fake) = start().await;
    fault(
        &server,
        "GET",
        1,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "3600")
            .set_body_json(json!({"message": "rate limited"})),
    )
    .await;
    let e = sticky(&server).upsert("report").await.unwrap_err();
    assert!(
        matches!(
            e,
            GithubError::RateLimited {
                wait_s: 3600,
                max_wait_s: 5,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("resets in 3600 s"), "{e}");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn retries_are_bounded() {
    let (server, fake) = start().await;
    fault(&server, "GET", 100, ResponseTemplate::new(503)).await;
    let e = sticky(&server).upsert("report").await.unwrap_err();
    assert!(
        matches!(e, GithubError::RetriesExhausted { attempts: 4, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("503"), "{e}");
    assert_eq!(requests(&server).await.len(), 4);
    assert!(fake.comments().is_empty());
}

#[tokio::test]
async fn a_401_fails_at_once_with_the_message() {
    let (server, fake) = start().await;
    let wrong = "ghp_notTheRightToken0000";
    let e = sticky_with(&server, wrong, 7)
        .upsert("report")
        .await
        .unwrap_err();
    assert!(matches!(e, GithubError::Unauthorized { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("GITHUB_TOKEN was rejected (401: Bad credentials)"),
        "{text}"
    );
    assert!(
        !text.contains(wrong) && !format!("{e:?}").contains(wrong),
        "{e:?}"
    );
    assert_eq!(requests(&server).await.len(), 1, "a 401 is not retried");
    assert!(fake.comments().is_empty());
}

#[tokio::test]
async fn a_403_without_rate_limit_names_the_missing_permission() {
    let (server, fake) = start().await;
    fault(
        &server,
        "POST",
        1,
        ResponseTemplate::new(403)
            .insert_header("x-ratelimit-remaining", "4999")
            .set_body_json(json!({"message": "Resource not accessible by integration"})),
    )
    .await;
    let e = sticky(&server).upsert("report").await.unwrap_err();
    assert!(matches!(e, GithubError::Forbidden { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("may not comment on octo/lab#7")
            && text.contains("Resource not accessible by integration")
            && text.contains("`pull-requests: write`"),
        "{text}"
    );
    assert_eq!(count(&server, "POST").await, 1, "a 403 is not retried");
    assert!(fake.comments().is_empty());
}

#[tokio::test]
async fn a_404_says_the_pull_request_cannot_be_seen() {
    let (server, _fake) = start().await;
    let e = sticky_with(&server, TOKEN, 8)
        .upsert("report")
        .await
        .unwrap_err();
    assert!(matches!(e, GithubError::NotFound { pr: 8, .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("octo/lab pull request #8 not found") && text.contains("cannot see"),
        "{text}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Answers with the `Authorization` header it got in the error message, as a careless proxy
/// might.
struct EchoAuthorization;

impl Respond for EchoAuthorization {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let auth = request.headers["authorization"]
            .to_str()
            .unwrap()
            .to_owned();
        ResponseTemplate::new(422).set_body_json(json!({"message": format!("rejected {auth}")}))
    }
}

#[tokio::test]
async fn the_token_never_appears_in_logs_or_errors() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (server, _fake) = start().await;
    fault(&server, "GET", 1, ResponseTemplate::new(502)).await;
    Mock::given(method("POST"))
        .respond_with(EchoAuthorization)
        .with_priority(1)
        .mount(&server)
        .await;
    let comment = sticky(&server);
    let e = comment.upsert("report").await.unwrap_err();
    assert!(matches!(e, GithubError::Api { status: 422, .. }), "{e}");
    // The server did get the token, and echoed it back.
    assert_eq!(count(&server, "POST").await, 1);

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying"), "the retry is logged: {logs}");
    for text in [
        e.to_string(),
        format!("{e:?}"),
        format!("{comment:?}"),
        logs.clone(),
    ] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
    }
    assert!(e.to_string().contains("rejected Bearer ***"), "{e}");
}

#[tokio::test]
async fn an_enterprise_api_root_keeps_its_path_across_pages() {
    let (server, fake) = start_under("/api/v3").await;
    for i in 0..150 {
        fake.push(&format!("comment {i}"));
    }
    let marked = fake.push(&format!("{COMMENT_MARKER}\nold"));
    let target = CommentTarget::new("octo/lab", 7)
        .unwrap()
        .with_api_base(format!("{}/api/v3/", server.uri()));
    let comment = StickyComment::new(GithubToken::new(TOKEN).unwrap(), target)
        .unwrap()
        .with_retry_policy(fast_retries());
    let outcome = comment.upsert("new").await.unwrap();
    assert_eq!(
        (outcome.action, outcome.id),
        (CommentAction::Updated, marked)
    );
    assert_eq!(
        requests(&server).await,
        [
            format!("GET /api/v3{COMMENTS}?per_page=100"),
            format!("GET /api/v3{COMMENTS}?per_page=100&page=2"),
            format!("PATCH /api/v3{EDIT_PREFIX}{marked}"),
        ]
    );
}

#[test]
fn upsert_blocking_serves_callers_without_a_runtime() {
    // The fake runs on its own runtime; the client makes one of its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (server, fake) = runtime.block_on(start());
    let comment = sticky(&server);
    let first = comment.upsert_blocking("one").unwrap();
    let second = comment.upsert_blocking("two").unwrap();
    assert_eq!(first.action, CommentAction::Created);
    assert_eq!(
        (second.action, second.id),
        (CommentAction::Updated, first.id)
    );
    assert_eq!(
        fake.comments(),
        [(first.id, format!("{COMMENT_MARKER}\ntwo"))]
    );
    assert_eq!(runtime.block_on(requests(&server)).len(), 4);
}
