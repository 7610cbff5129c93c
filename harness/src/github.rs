//! The sticky pull-request comment: one comment per PR, found by a hidden marker and edited in place.
//!
//! [`StickyComment::upsert`] walks every page of the PR's issue comments (`per_page=100`,
//! following the `Link: <…>; rel="next"` headers), edits the first comment that carries
//! [`COMMENT_MARKER`], and creates one when none does. Each request is retried on 5xx answers,
//! transport errors and rate limits (`retry-after`, or `x-ratelimit-remaining: 0` with
//! `x-ratelimit-reset`), with a bounded number of attempts and bounded waits
//! ([`RetryPolicy`]). A creation is never blindly repeated: after a failed `POST` the comments
//! are searched again, so a comment that GitHub created before failing is edited, not doubled.
//!
//! The token ([`GithubToken`]) never appears in a log, an error or a `Debug` output: its `Debug`
//! prints `***`, it has no `Display`, and every message taken from a response is scrubbed of it.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{ACCEPT, HeaderMap, HeaderName, LINK, RETRY_AFTER};
use http::{Method, StatusCode, Uri};
use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::json;

use crate::error::GithubError;

/// The hidden HTML comment that marks perflab's comment on a pull request.
pub const COMMENT_MARKER: &str = "<!-- perflab:benchmark-report -->";

/// The REST API of github.com, used when neither the target nor `GITHUB_API_URL` names another.
pub const DEFAULT_API_BASE: &str = "https://api.github.com";

/// A GitHub token. Its `Debug` prints `***`; it has no `Display`; its text is only handed to
/// the HTTP client.
#[derive(Clone)]
pub struct GithubToken(String);

impl GithubToken {
    /// Wraps a token; surrounding whitespace is dropped. Fails when it is empty or holds
    /// characters that cannot travel in an HTTP header (the error does not repeat it).
    pub fn new(token: impl Into<String>) -> Result<Self, GithubError> {
        let token = token.into();
        let trimmed = token.trim();
        if trimmed.is_empty() {
            return Err(GithubError::MissingToken);
        }
        if !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(GithubError::InvalidToken);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The token in `GITHUB_TOKEN`.
    pub fn from_env() -> Result<Self, GithubError> {
        Self::new(std::env::var("GITHUB_TOKEN").unwrap_or_default())
    }

    /// Replaces every occurrence of the token in `text` with `***`.
    fn scrub(&self, text: &str) -> String {
        text.replace(&self.0, "***")
    }
}

impl fmt::Debug for GithubToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GithubToken(***)")
    }
}

/// The pull request whose comment is kept, and the API that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentTarget {
    /// The repository's owner (user or organization).
    pub owner: String,
    /// The repository's name.
    pub repo: String,
    /// The pull request number.
    pub pr: u64,
    /// The REST API root, such as `https://api.github.com` or a GitHub Enterprise
    /// `https://HOST/api/v3`; `None` means [`DEFAULT_API_BASE`].
    pub api_base: Option<String>,
}

impl CommentTarget {
    /// A target on github.com from `OWNER/NAME` and a PR number.
    pub fn new(repository: &str, pr: u64) -> Result<Self, GithubError> {
        let (owner, repo) = parse_repository(repository)?;
        if pr == 0 {
            return Err(GithubError::InvalidPullRequest {
                value: pr.to_string(),
            });
        }
        Ok(Self {
            owner,
            repo,
            pr,
            api_base: None,
        })
    }

    /// The same target served by another API root (GitHub Enterprise, or a test server).
    #[must_use]
    pub fn with_api_base(mut self, api_base: impl Into<String>) -> Self {
        self.api_base = Some(api_base.into());
        self
    }

    /// The target from the arguments, completed from the GitHub Actions environment:
    /// `GITHUB_REPOSITORY` when `repo` is `None`; when `pr` is `None`, the number of the
    /// pull request in the event file `GITHUB_EVENT_PATH` (`pull_request.number`, or
    /// `issue.number` of a comment on a PR), else the `N` of `GITHUB_REF=refs/pull/N/merge`;
    /// `GITHUB_API_URL` as the API root.
    pub fn from_env(pr: Option<u64>, repo: Option<&str>) -> Result<Self, GithubError> {
        Self::from_vars(pr, repo, |name| std::env::var(name).ok())
    }

    /// [`CommentTarget::from_env`] with the variables read through `var`.
    pub fn from_vars(
        pr: Option<u64>,
        repo: Option<&str>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GithubError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let repository = match repo {
            Some(r) => r.to_owned(),
            None => var("GITHUB_REPOSITORY").ok_or(GithubError::MissingRepository)?,
        };
        let pr = match pr {
            Some(n) => n,
            None => pr_from_environment(&var)?,
        };
        let mut target = Self::new(&repository, pr)?;
        target.api_base = var("GITHUB_API_URL");
        Ok(target)
    }

    /// The API root this target uses.
    pub fn api_base(&self) -> &str {
        self.api_base.as_deref().unwrap_or(DEFAULT_API_BASE)
    }
}

impl fmt::Display for CommentTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}", self.owner, self.repo, self.pr)
    }
}

/// How hard a request is retried. Every wait is at most `max_wait`, all waits of one
/// [`StickyComment::upsert`] together at most `max_total_wait`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (at least 1).
    pub max_attempts: u32,
    /// The first backoff after a 5xx answer or a transport error; it doubles on each retry.
    pub base_delay: Duration,
    /// The longest single wait. A rate limit that resets later than this is an error at once,
    /// not a wait.
    pub max_wait: Duration,
    /// The longest time one upsert spends waiting in all.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, backoff from 1 s, waits of at most 60 s and 180 s in all.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
            max_total_wait: Duration::from_secs(180),
        }
    }
}

/// Whether [`StickyComment::upsert`] created the comment or edited the existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentAction {
    /// No comment carried the marker; one was created.
    Created,
    /// The marked comment was edited in place.
    Updated,
}

/// What [`StickyComment::upsert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentOutcome {
    /// Created or updated.
    pub action: CommentAction,
    /// The comment's id.
    pub id: u64,
    /// The comment's page (`html_url`).
    pub url: String,
    /// Requests that were repeated after a 5xx answer, a transport error or a rate limit.
    pub retries: u32,
    /// The time spent waiting before those repeats, as planned (not measured).
    pub waited: Duration,
}

/// perflab's comment on one pull request.
#[derive(Clone)]
pub struct StickyComment {
    token: GithubToken,
    target: CommentTarget,
    base: Uri,
    retry: RetryPolicy,
}

impl StickyComment {
    /// The comment on `target`, written with `token`. Fails when the API root is not an
    /// `http(s)://HOST[/PATH]` URL.
    pub fn new(token: GithubToken, target: CommentTarget) -> Result<Self, GithubError> {
        let base = parse_api_base(target.api_base())?;
        Ok(Self {
            token,
            target,
            base,
            retry: RetryPolicy::default(),
        })
    }

    /// The same comment with another retry policy.
    #[must_use]
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The pull request this comment belongs to.
    pub fn target(&self) -> &CommentTarget {
        &self.target
    }

    /// Puts `body` (with [`COMMENT_MARKER`] at its top, see [`with_marker`]) on the pull
    /// request: edits the marked comment when one exists, else creates it. Needs a tokio
    /// runtime with time and IO enabled.
    pub async fn upsert(&self, body: &str) -> Result<CommentOutcome, GithubError> {
        let client = self.client()?;
        let body = with_marker(body);
        let mut budget = Budget::default();
        let mut creations = 0;
        loop {
            if let Some(id) = self.find(&client, &mut budget).await? {
                match self.update(&client, id, &body, &mut budget).await {
                    Err(GithubError::NotFound { .. }) => {
                        tracing::warn!(id, "the marked comment vanished; creating a new one");
                    }
                    Ok(comment) => {
                        let action = if creations == 0 {
                            CommentAction::Updated
                        } else {
                            CommentAction::Created
                        };
                        return Ok(budget.outcome(action, comment));
                    }
                    Err(e) => return Err(e),
                }
            }
            // A POST is not idempotent: after a transient failure the comments are searched
            // again before another try, in case GitHub created the comment and then failed.
            creations += 1;
            let request = Request {
                method: Method::POST,
                uri: self.comments_path(),
                body: Some(json!({ "body": body })),
                action: "comment on",
            };
            match self.send_once(&client, &request).await {
                Ok(reply) => {
                    let comment = self.parse::<Comment>(&request, &reply)?;
                    tracing::info!(id = comment.id, target = %self.target, "created the benchmark comment");
                    return Ok(budget.outcome(CommentAction::Created, comment));
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient {
                    wait,
                    rate_limited,
                    reason,
                }) => {
                    self.pause(&request, &mut budget, creations, wait, rate_limited, reason)
                        .await?;
                }
            }
        }
    }

    /// [`StickyComment::upsert`] on a runtime of its own, for callers without one; like any
    /// `block_on`, it panics when called from inside a tokio runtime.
    pub fn upsert_blocking(&self, body: &str) -> Result<CommentOutcome, GithubError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| GithubError::Client {
                message: e.to_string(),
            })?;
        runtime.block_on(self.upsert(body))
    }
}

impl fmt::Debug for StickyComment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StickyComment")
            .field("token", &self.token)
            .field("target", &self.target)
            .field("retry", &self.retry)
            .finish()
    }
}

/// `body` with [`COMMENT_MARKER`] on its first line, and nowhere else.
pub fn with_marker(body: &str) -> String {
    let rest = body.replace(COMMENT_MARKER, "");
    format!(
        "{COMMENT_MARKER}\n{}",
        rest.trim_start_matches(['\r', '\n'])
    )
}

// ---------------------------------------------------------------- private helpers

/// One request to the API.
struct Request {
    method: Method,
    /// A path below the API root (`/repos/…`), or an absolute URL on the API's host.
    uri: String,
    body: Option<serde_json::Value>,
    /// What the request does, for a 403 message: "may not {action} OWNER/NAME#PR".
    action: &'static str,
}

impl Request {
    fn describe(&self) -> String {
        format!("{} {}", self.method, self.uri)
    }
}

/// An answer, read whole.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// Why a single attempt did not succeed.
enum Failure {
    /// Worth another try after `wait` (`None`: the backoff decides).
    Transient {
        wait: Option<Duration>,
        rate_limited: bool,
        reason: String,
    },
    /// Final.
    Fatal(GithubError),
}

/// Retries and waits spent so far by one upsert.
#[derive(Default)]
struct Budget {
    retries: u32,
    waited: Duration,
}

impl Budget {
    fn outcome(&self, action: CommentAction, comment: Comment) -> CommentOutcome {
        CommentOutcome {
            action,
            id: comment.id,
            url: comment.html_url,
            retries: self.retries,
            waited: self.waited,
        }
    }
}

/// The fields of an issue comment that matter here.
#[derive(Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    html_url: String,
    #[serde(default)]
    body: Option<String>,
}

/// The body of a GitHub error answer.
#[derive(Deserialize)]
struct ApiMessage {
    message: String,
}

impl StickyComment {
    fn client(&self) -> Result<Octocrab, GithubError> {
        let client_error = |e: octocrab::Error| GithubError::Client {
            message: self.token.scrub(&error_text(&e)),
        };
        Octocrab::builder()
            .personal_token(self.token.0.clone())
            .add_header(ACCEPT, "application/vnd.github+json".to_owned())
            .base_uri(self.base.clone())
            .map_err(client_error)?
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .set_write_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(client_error)
    }

    fn comments_path(&self) -> String {
        format!(
            "/repos/{}/{}/issues/{}/comments",
            self.target.owner, self.target.repo, self.target.pr
        )
    }

    /// The id of the first comment that carries the marker, walking every page.
    async fn find(
        &self,
        client: &Octocrab,
        budget: &mut Budget,
    ) -> Result<Option<u64>, GithubError> {
        let mut next = Some(format!("{}?per_page=100", self.comments_path()));
        let mut seen = Vec::new();
        while let Some(uri) = next.take() {
            if seen.contains(&uri) {
                return Err(GithubError::Pagination {
                    url: uri,
                    reason: "the next-page link repeats a page already read".into(),
                });
            }
            let request = Request {
                method: Method::GET,
                uri: uri.clone(),
                body: None,
                action: "read the comments of",
            };
            let reply = self.send(client, &request, budget).await?;
            let comments = self.parse::<Vec<Comment>>(&request, &reply)?;
            tracing::debug!(
                page = seen.len() + 1,
                comments = comments.len(),
                "read a page of comments"
            );
            if let Some(c) = comments.iter().find(|c| {
                c.body
                    .as_deref()
                    .is_some_and(|b| b.contains(COMMENT_MARKER))
            }) {
                return Ok(Some(c.id));
            }
            seen.push(uri);
            next = next_link(&reply.headers)
                .map(|link| self.same_api(&link))
                .transpose()?;
        }
        Ok(None)
    }

    async fn update(
        &self,
        client: &Octocrab,
        id: u64,
        body: &str,
        budget: &mut Budget,
    ) -> Result<Comment, GithubError> {
        let request = Request {
            method: Method::PATCH,
            uri: format!(
                "/repos/{}/{}/issues/comments/{id}",
                self.target.owner, self.target.repo
            ),
            body: Some(json!({ "body": body })),
            action: "edit the comments of",
        };
        let reply = self.send(client, &request, budget).await?;
        let comment = self.parse::<Comment>(&request, &reply)?;
        tracing::info!(id = comment.id, target = %self.target, "updated the benchmark comment");
        Ok(comment)
    }

    /// Sends an idempotent request, retrying transient failures within the policy.
    async fn send(
        &self,
        client: &Octocrab,
        request: &Request,
        budget: &mut Budget,
    ) -> Result<Reply, GithubError> {
        let mut attempt = 1;
        loop {
            match self.send_once(client, request).await {
                Ok(reply) => return Ok(reply),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient {
                    wait,
                    rate_limited,
                    reason,
                }) => {
                    self.pause(request, budget, attempt, wait, rate_limited, reason)
                        .await?;
                    attempt += 1;
                }
            }
        }
    }

    /// Waits before attempt `attempt + 1`, or says why there is none.
    async fn pause(
        &self,
        request: &Request,
        budget: &mut Budget,
        attempt: u32,
        wait: Option<Duration>,
        rate_limited: bool,
        reason: String,
    ) -> Result<(), GithubError> {
        let policy = &self.retry;
        if attempt >= policy.max_attempts.max(1) {
            return Err(GithubError::RetriesExhausted {
                request: request.describe(),
                attempts: attempt,
                last: reason,
            });
        }
        let backoff = policy
            .base_delay
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(policy.max_wait);
        let wait = match wait {
            Some(w) if rate_limited && w > policy.max_wait => {
                return Err(GithubError::RateLimited {
                    request: request.describe(),
                    wait_s: w.as_secs(),
                    max_wait_s: policy.max_wait.as_secs(),
                });
            }
            Some(w) => w.min(policy.max_wait),
            None => backoff,
        };
        if budget.waited + wait > policy.max_total_wait {
            return Err(GithubError::RetriesExhausted {
                request: request.describe(),
                attempts: attempt,
                last: format!(
                    "{reason}; another wait of {} ms would pass the {} s allowed in all",
                    wait.as_millis(),
                    policy.max_total_wait.as_secs()
                ),
            });
        }
        tracing::warn!(
            request = %request.describe(),
            attempt,
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            %reason,
            "github request failed; retrying"
        );
        tokio::time::sleep(wait).await;
        budget.retries += 1;
        budget.waited += wait;
        Ok(())
    }

    /// One attempt, classified.
    async fn send_once(&self, client: &Octocrab, request: &Request) -> Result<Reply, Failure> {
        let uri = request.uri.as_str();
        let body = request.body.as_ref();
        let sent = if request.method == Method::GET {
            client._get(uri).await
        } else if request.method == Method::PATCH {
            client._patch(uri, body).await
        } else {
            client._post(uri, body).await
        };
        let read = match sent {
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                client.body_to_string(response).await.map(|body| Reply {
                    status,
                    headers,
                    body,
                })
            }
            Err(e) => Err(e),
        };
        let reply = read.map_err(|e| Failure::Transient {
            wait: None,
            rate_limited: false,
            reason: self.token.scrub(&error_text(&e)),
        })?;
        if reply.status.is_success() {
            return Ok(reply);
        }
        Err(self.classify(request, &reply, SystemTime::now()))
    }

    fn classify(&self, request: &Request, reply: &Reply, now: SystemTime) -> Failure {
        let message = self.api_message(reply);
        let status = reply.status;
        let reason = format!("{status}: {message}");
        if let Some(wait) = rate_limit_wait(status, &reply.headers, &message, now) {
            return Failure::Transient {
                wait: Some(wait),
                rate_limited: true,
                reason,
            };
        }
        if status.is_server_error() {
            let wait = header_u64(&reply.headers, &RETRY_AFTER).map(Duration::from_secs);
            return Failure::Transient {
                wait,
                rate_limited: false,
                reason,
            };
        }
        let repository = format!("{}/{}", self.target.owner, self.target.repo);
        Failure::Fatal(match status {
            StatusCode::UNAUTHORIZED => GithubError::Unauthorized { message },
            StatusCode::FORBIDDEN => GithubError::Forbidden {
                action: request.action,
                target: self.target.to_string(),
                message,
            },
            StatusCode::NOT_FOUND => GithubError::NotFound {
                repository,
                pr: self.target.pr,
                request: request.describe(),
            },
            _ => GithubError::Api {
                request: request.describe(),
                status: status.as_u16(),
                message,
            },
        })
    }

    /// GitHub's `message`, or the start of the body; scrubbed of the token.
    fn api_message(&self, reply: &Reply) -> String {
        let text = serde_json::from_str::<ApiMessage>(&reply.body)
            .map(|m| m.message)
            .unwrap_or_else(|_| reply.body.chars().take(200).collect());
        let text = text.trim();
        let text = if text.is_empty() {
            reply.status.canonical_reason().unwrap_or("no message")
        } else {
            text
        };
        self.token.scrub(text)
    }

    fn parse<T: for<'de> Deserialize<'de>>(
        &self,
        request: &Request,
        reply: &Reply,
    ) -> Result<T, GithubError> {
        serde_json::from_str(&reply.body).map_err(|e| GithubError::Response {
            request: request.describe(),
            message: self.token.scrub(&e.to_string()),
        })
    }

    /// A next-page link, checked to stay on the API's host (the token goes nowhere else).
    fn same_api(&self, link: &str) -> Result<String, GithubError> {
        let uri: Uri = link.parse().map_err(|_| GithubError::Pagination {
            url: link.to_owned(),
            reason: "not a url".into(),
        })?;
        match uri.authority() {
            None => Ok(link.to_owned()),
            Some(a) if Some(a) == self.base.authority() => Ok(link.to_owned()),
            Some(_) => Err(GithubError::Pagination {
                url: link.to_owned(),
                reason: format!("it leaves the api at {}", self.base),
            }),
        }
    }
}

fn parse_repository(value: &str) -> Result<(String, String), GithubError> {
    let invalid = || GithubError::InvalidRepository {
        value: value.to_owned(),
    };
    let (owner, repo) = value.trim().split_once('/').ok_or_else(invalid)?;
    let ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if ok(owner) && ok(repo) {
        Ok((owner.to_owned(), repo.to_owned()))
    } else {
        Err(invalid())
    }
}

fn parse_api_base(value: &str) -> Result<Uri, GithubError> {
    let invalid = |reason: &str| GithubError::InvalidApiBase {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = value
        .trim_end_matches('/')
        .parse()
        .map_err(|_| invalid("not a url"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(invalid("the scheme must be http or https"));
    }
    if uri.authority().is_none() {
        return Err(invalid("it names no host"));
    }
    if uri.query().is_some() {
        return Err(invalid("it must not have a query"));
    }
    Ok(uri)
}

/// The PR number from the event file, else from `GITHUB_REF`.
fn pr_from_environment(var: &impl Fn(&str) -> Option<String>) -> Result<u64, GithubError> {
    if let Some(path) = var("GITHUB_EVENT_PATH") {
        let path = PathBuf::from(path);
        let text = std::fs::read_to_string(&path).map_err(|e| GithubError::Event {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let event: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| GithubError::Event {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let issue_on_pr = event["issue"]["pull_request"].is_object();
        let number = event["pull_request"]["number"]
            .as_u64()
            .or_else(|| event["issue"]["number"].as_u64().filter(|_| issue_on_pr));
        if let Some(n) = number {
            return Ok(n);
        }
    }
    if let Some(reference) = var("GITHUB_REF")
        && let Some(rest) = reference.strip_prefix("refs/pull/")
    {
        let number = rest.split('/').next().unwrap_or_default();
        return number
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(GithubError::InvalidPullRequest { value: reference });
    }
    Err(GithubError::MissingPullRequest)
}

/// How long a rate-limited answer asks to wait, or `None` when it is not a rate limit.
/// GitHub answers 403 or 429; a secondary limit sends `retry-after`, a primary one
/// `x-ratelimit-remaining: 0` and the reset time in `x-ratelimit-reset` (epoch seconds);
/// a secondary limit without headers asks for at least a minute.
fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    now: SystemTime,
) -> Option<Duration> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    if let Some(s) = header_u64(headers, &RETRY_AFTER) {
        return Some(Duration::from_secs(s));
    }
    let remaining = header_u64(headers, &HeaderName::from_static("x-ratelimit-remaining"));
    if remaining == Some(0) {
        let now_s = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let wait = header_u64(headers, &HeaderName::from_static("x-ratelimit-reset"))
            .map_or(60, |reset| reset.saturating_sub(now_s));
        // One second more: the reset time is rounded down to whole seconds.
        return Some(Duration::from_secs(wait + 1));
    }
    if message.to_ascii_lowercase().contains("rate limit") {
        return Some(Duration::from_secs(60));
    }
    (status == StatusCode::TOO_MANY_REQUESTS).then_some(Duration::from_secs(1))
}

fn header_u64(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The `rel="next"` target of a `Link` header, as GitHub writes it.
fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|part| {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            let url = target.strip_prefix('<')?.strip_suffix('>')?;
            pieces
                .filter_map(|p| p.trim().strip_prefix("rel="))
                .any(|rel| {
                    rel.trim_matches('"')
                        .split_whitespace()
                        .any(|r| r == "next")
                })
                .then(|| url.to_owned())
        })
}

/// An octocrab error in one line per cause, without the backtraces it prints.
fn error_text(e: &octocrab::Error) -> String {
    let mut text = first_line(&e.to_string());
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let line = first_line(&s.to_string());
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = s.source();
    }
    text
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn explicit_arguments_win_over_the_environment() {
        let env = vars(&[
            ("GITHUB_REPOSITORY", "other/place"),
            ("GITHUB_REF", "refs/pull/9/merge"),
        ]);
        let t = CommentTarget::from_vars(Some(42), Some("octo/lab"), env).unwrap();
        assert_eq!(
            t,
            CommentTarget {
                owner: "octo".into(),
                repo: "lab".into(),
                pr: 42,
                api_base: None
            }
        );
        assert_eq!(t.to_string(), "octo/lab#42");
        assert_eq!(t.api_base(), DEFAULT_API_BASE);
    }

    #[test]
    fn the_pr_comes_from_the_event_file_then_from_github_ref() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(
            &event,
            r#"{"action": "synchronize", "number": 17, "pull_request": {"number": 17}}"#,
        )
        .unwrap();
        let event = event.to_str().unwrap();
        let t = CommentTarget::from_vars(
            None,
            None,
            vars(&[
                ("GITHUB_REPOSITORY", "octo/lab"),
                ("GITHUB_EVENT_PATH", event),
                ("GITHUB_REF", "refs/pull/3/merge"),
                ("GITHUB_API_URL", "https://ghe.example/api/v3"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (t.owner.as_str(), t.repo.as_str(), t.pr),
            ("octo", "lab", 17)
        );
        assert_eq!(t.api_base(), "https://ghe.example/api/v3");

        // A push event has no pull request: GITHUB_REF decides.
        let push = dir.path().join("push.json");
        std::fs::write(&push, r#"{"ref": "refs/heads/main"}"#).unwrap();
        let env = [
            ("GITHUB_REPOSITORY", "octo/lab"),
            ("GITHUB_EVENT_PATH", push.to_str().unwrap()),
            ("GITHUB_REF", "refs/pull/3/merge"),
        ];
        assert_eq!(
            CommentTarget::from_vars(None, None, vars(&env)).unwrap().pr,
            3
        );

        // A comment on a PR (issue_comment event) names the PR as the issue.
        let comment = dir.path().join("comment.json");
        std::fs::write(
            &comment,
            r#"{"issue": {"number": 5, "pull_request": {"url": "x"}}}"#,
        )
        .unwrap();
        let env = [
            ("GITHUB_REPOSITORY", "octo/lab"),
            ("GITHUB_EVENT_PATH", comment.to_str().unwrap()),
        ];
        assert_eq!(
            CommentTarget::from_vars(None, None, vars(&env)).unwrap().pr,
            5
        );
    }

    #[test]
    fn missing_or_malformed_environment_is_a_clear_error() {
        let e = CommentTarget::from_vars(Some(1), None, vars(&[])).unwrap_err();
        assert!(matches!(e, GithubError::MissingRepository), "{e}");
        assert!(e.to_string().contains("--repo OWNER/NAME"), "{e}");

        let env = [
            ("GITHUB_REPOSITORY", "octo/lab"),
            ("GITHUB_REF", "refs/heads/main"),
        ];
        let e = CommentTarget::from_vars(None, None, vars(&env)).unwrap_err();
        assert!(matches!(e, GithubError::MissingPullRequest), "{e}");
        assert!(e.to_string().contains("--pr N"), "{e}");

        let env = [("GITHUB_REF", "refs/pull/abc/merge")];
        let e = CommentTarget::from_vars(None, Some("octo/lab"), vars(&env)).unwrap_err();
        assert!(e.to_string().contains("refs/pull/abc/merge"), "{e}");

        for bad in ["octo", "octo/", "/lab", "octo/lab/x", "octo/l ab", "../lab"] {
            let e = CommentTarget::from_vars(Some(1), Some(bad), vars(&[])).unwrap_err();
            assert!(
                matches!(e, GithubError::InvalidRepository { .. }),
                "{bad}: {e}"
            );
        }

        let env = [("GITHUB_EVENT_PATH", "/nonexistent/perflab/event.json")];
        let e = CommentTarget::from_vars(None, Some("octo/lab"), vars(&env)).unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/perflab/event.json"),
            "{e}"
        );
    }

    #[test]
    fn api_base_must_be_an_http_url() {
        let token = GithubToken::new("t0k3n").unwrap();
        for bad in [
            "ftp://host",
            "not a url",
            "/just/a/path",
            "https://h/api?x=1",
        ] {
            let target = CommentTarget::new("octo/lab", 1)
                .unwrap()
                .with_api_base(bad);
            let e = StickyComment::new(token.clone(), target).unwrap_err();
            assert!(
                matches!(e, GithubError::InvalidApiBase { .. }),
                "{bad}: {e}"
            );
        }
        let target = CommentTarget::new("octo/lab", 1)
            .unwrap()
            .with_api_base("https://ghe.example/api/v3/");
        assert!(StickyComment::new(token, target).is_ok());
    }

    #[test]
    fn the_token_is_never_printed() {
        let secret = "ghp_Sup3rS3cretT0kenValue";
        let token = GithubToken::new(format!("  {secret}\n")).unwrap();
        let comment =
            StickyComment::new(token.clone(), CommentTarget::new("octo/lab", 1).unwrap()).unwrap();
        for text in [
            format!("{token:?}"),
            format!("{comment:?}"),
            format!("{comment:#?}"),
        ] {
            assert!(!text.contains(secret), "{text}");
            assert!(text.contains("***"), "{text}");
        }
        assert_eq!(token.scrub(&format!("echo {secret}!")), "echo ***!");

        assert!(matches!(
            GithubToken::new(" \n"),
            Err(GithubError::MissingToken)
        ));
        let e = GithubToken::new("ghp_bad\u{7f}token").unwrap_err();
        assert!(matches!(e, GithubError::InvalidToken), "{e}");
        assert!(!e.to_string().contains("ghp_bad"), "{e}");
    }

    #[test]
    fn the_marker_is_on_the_first_line_exactly_once() {
        let plain = with_marker("## Benchmarks\n\nall good");
        assert_eq!(
            plain,
            format!("{COMMENT_MARKER}\n## Benchmarks\n\nall good")
        );
        assert_eq!(with_marker(&plain), plain);
        let buried = with_marker(&format!("## Benchmarks\n{COMMENT_MARKER}\n"));
        assert_eq!(buried.matches(COMMENT_MARKER).count(), 1);
        assert!(buried.starts_with(COMMENT_MARKER));
    }

    #[test]
    fn next_links_are_read_like_githubs() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            r#"<https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=3>; rel="next", <https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=9>; rel="last""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=3")
        );
        h.insert(LINK, r#"<https://x/?page=1>; rel="prev""#.parse().unwrap());
        assert_eq!(next_link(&h), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn rate_limits_are_told_apart_from_missing_permissions() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(HeaderName::from_static(k), v.parse().unwrap());
            }
            h
        };
        let forbidden = StatusCode::FORBIDDEN;
        assert_eq!(
            rate_limit_wait(forbidden, &headers(&[("retry-after", "7")]), "", now),
            Some(Duration::from_secs(7))
        );
        let primary = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1000030"),
        ]);
        assert_eq!(
            rate_limit_wait(forbidden, &primary, "API rate limit exceeded", now),
            Some(Duration::from_secs(31))
        );
        assert_eq!(
            rate_limit_wait(
                forbidden,
                &headers(&[]),
                "You have exceeded a secondary rate limit",
                now
            ),
            Some(Duration::from_secs(60))
        );
        let plenty = headers(&[("x-ratelimit-remaining", "4999")]);
        assert_eq!(
            rate_limit_wait(
                forbidden,
                &plenty,
                "Resource not accessible by integration",
                now
            ),
            None
        );
        assert_eq!(
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &headers(&[]), "", now),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            rate_limit_wait(
                StatusCode::BAD_GATEWAY,
                &headers(&[("retry-after", "1")]),
                "",
                now
            ),
            None
        );
    }
}
