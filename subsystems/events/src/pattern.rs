//! NATS-style subject patterns (`*` one token, `>` the rest) and the trie that matches a subject against all of them in one walk.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::error::SubscribeError;

/// One token of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Token {
    Literal(Box<str>),
    /// `*`: exactly one token.
    Star,
    /// `>`: one or more remaining tokens; only last.
    Rest,
}

/// A routing-key pattern: `.`-separated non-empty tokens, where a token `*` matches any one
/// token and a final token `>` matches one or more remaining tokens. A token that merely
/// contains `*` or `>` (like `a*`) is a literal, as in NATS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: Box<str>,
    tokens: Vec<Token>,
}

impl Pattern {
    /// Parses `text`.
    pub fn new(text: &str) -> Result<Self, SubscribeError> {
        let invalid = |reason: &str| SubscribeError::InvalidPattern {
            pattern: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(invalid("empty pattern"));
        }
        let parts: Vec<&str> = text.split('.').collect();
        let mut tokens = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            tokens.push(match *part {
                "" => return Err(invalid("empty token")),
                "*" => Token::Star,
                ">" if i + 1 == parts.len() => Token::Rest,
                ">" => return Err(invalid("`>` must be the last token")),
                lit => Token::Literal(lit.into()),
            });
        }
        Ok(Self {
            text: text.into(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `subject` matches, token by token (the reference the trie is tested against).
    /// An invalid subject matches nothing.
    pub fn matches(&self, subject: &str) -> bool {
        if validate_subject(subject).is_err() {
            return false;
        }
        let mut subject_tokens = subject.split('.');
        for token in &self.tokens {
            match token {
                Token::Rest => return subject_tokens.next().is_some(),
                Token::Star => {
                    if subject_tokens.next().is_none() {
                        return false;
                    }
                }
                Token::Literal(lit) => {
                    if subject_tokens.next() != Some(&**lit) {
                        return false;
                    }
                }
            }
        }
        subject_tokens.next().is_none()
    }
}

impl FromStr for Pattern {
    type Err = SubscribeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks that `subject` can be published: non-empty `.`-separated tokens, none of them a
/// bare `*` or `>` wildcard. The error is the reason.
pub fn validate_subject(subject: &str) -> Result<(), &'static str> {
    if subject.is_empty() {
        return Err("empty subject");
    }
    for token in subject.split('.') {
        match token {
            "" => return Err("empty token"),
            "*" | ">" => return Err("wildcard token in a published subject"),
            _ => {}
        }
    }
    Ok(())
}

/// A token tree over patterns: each node has literal children, a `*` child, the values of
/// patterns ending there, and the values of patterns ending there with `>`. Matching a
/// subject of `n` tokens walks every branch that can still match, so its cost depends on
/// the subject and the patterns that share its prefixes, not on the number of patterns.
#[derive(Debug, Clone)]
pub struct PatternTrie<V> {
    nodes: Vec<Node<V>>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<V> {
    literal: HashMap<Box<str>, usize>,
    star: Option<usize>,
    /// Values of patterns that end at this node.
    exact: Vec<V>,
    /// Values of patterns that end at this node with `>`.
    rest: Vec<V>,
}

impl<V> Node<V> {
    fn new() -> Self {
        Self {
            literal: HashMap::new(),
            star: None,
            exact: Vec::new(),
            rest: Vec::new(),
        }
    }
}

impl<V> Default for PatternTrie<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> PatternTrie<V> {
    /// An empty trie.
    pub fn new() -> Self {
        Self {
            nodes: vec![Node::new()],
            len: 0,
        }
    }

    /// Number of (pattern, value) entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the trie holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `value` under `pattern` (a pattern may hold many values).
    pub fn insert(&mut self, pattern: &Pattern, value: V) {
        let mut node = 0;
        for token in &pattern.tokens {
            node = match token {
                Token::Rest => {
                    self.nodes[node].rest.push(value);
                    self.len += 1;
                    return;
                }
                Token::Star => match self.nodes[node].star {
                    Some(next) => next,
                    None => {
                        let next = self.push_node();
                        self.nodes[node].star = Some(next);
                        next
                    }
                },
                Token::Literal(lit) => match self.nodes[node].literal.get(lit) {
                    Some(&next) => next,
                    None => {
                        let next = self.push_node();
                        self.nodes[node].literal.insert(lit.clone(), next);
                        next
                    }
                },
            };
        }
        self.nodes[node].exact.push(value);
        self.len += 1;
    }

    /// Removes one entry of `value` under `pattern`; whether there was one. Nodes stay (a
    /// trie is rebuilt, not shrunk, when subscriptions change).
    pub fn remove(&mut self, pattern: &Pattern, value: &V) -> bool
    where
        V: PartialEq,
    {
        let mut node = 0;
        for token in &pattern.tokens {
            let next = match token {
                Token::Rest => return self.take(node, value, true),
                Token::Star => self.nodes[node].star,
                Token::Literal(lit) => self.nodes[node].literal.get(lit).copied(),
            };
            match next {
                Some(n) => node = n,
                None => return false,
            }
        }
        self.take(node, value, false)
    }

    /// Appends to `out` the values of every pattern that matches `subject`, each once per
    /// entry, in no particular order. `Err` (the reason) for an invalid subject.
    pub fn matches(&self, subject: &str, out: &mut Vec<V>) -> Result<(), &'static str>
    where
        V: Clone,
    {
        validate_subject(subject)?;
        let tokens: Vec<&str> = subject.split('.').collect();
        // Depth-first over (node, index of the next subject token).
        let mut stack = vec![(0usize, 0usize)];
        while let Some((node, i)) = stack.pop() {
            let n = &self.nodes[node];
            if i == tokens.len() {
                out.extend_from_slice(&n.exact);
                continue;
            }
            out.extend_from_slice(&n.rest);
            if let Some(&next) = n.literal.get(tokens[i]) {
                stack.push((next, i + 1));
            }
            if let Some(next) = n.star {
                stack.push((next, i + 1));
            }
        }
        Ok(())
    }

    fn push_node(&mut self) -> usize {
        self.nodes.push(Node::new());
        self.nodes.len() - 1
    }

    fn take(&mut self, node: usize, value: &V, rest: bool) -> bool
    where
        V: PartialEq,
    {
        let list = if rest {
            &mut self.nodes[node].rest
        } else {
            &mut self.nodes[node].exact
        };
        match list.iter().position(|v| v == value) {
            Some(at) => {
                list.swap_remove(at);
                self.len -= 1;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::new(s).expect("valid pattern")
    }

    #[test]
    fn parses_and_rejects() {
        assert!(Pattern::new("a.*.>").is_ok());
        assert!(Pattern::new(">").is_ok());
        assert!(
            Pattern::new("a*.b>").is_ok(),
            "partial wildcards are literals"
        );
        for bad in ["", "a..b", ".a", "a.", "a.>.b", ">.a"] {
            assert!(Pattern::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            validate_subject("a.*"),
            Err("wildcard token in a published subject")
        );
        assert_eq!(validate_subject("a..b"), Err("empty token"));
    }

    #[test]
    fn wildcard_semantics() {
        assert!(p("a.*").matches("a.b"));
        assert!(!p("a.*").matches("a.b.c"));
        assert!(!p("a.*").matches("a"));
        assert!(p("a.>").matches("a.b.c"));
        assert!(!p("a.>").matches("a"), "`>` needs at least one token");
        assert!(p(">").matches("x"));
        assert!(p("*.b.>").matches("a.b.c.d"));
        assert!(!p("a.b").matches("a.*"), "wildcard subjects match nothing");
    }

    #[test]
    fn trie_insert_match_remove() {
        let mut t = PatternTrie::new();
        t.insert(&p("a.b"), 1);
        t.insert(&p("a.*"), 2);
        t.insert(&p("a.>"), 3);
        t.insert(&p(">"), 4);
        t.insert(&p("a.b"), 5);
        let mut out = Vec::new();
        t.matches("a.b", &mut out).expect("valid");
        out.sort_unstable();
        assert_eq!(out, [1, 2, 3, 4, 5]);
        assert!(t.remove(&p("a.b"), &1));
        assert!(!t.remove(&p("a.b"), &1));
        assert!(!t.remove(&p("x.y"), &1));
        assert!(t.remove(&p(">"), &4));
        out.clear();
        t.matches("a.b", &mut out).expect("valid");
        out.sort_unstable();
        assert_eq!(out, [2, 3, 5]);
        assert_eq!(t.len(), 3);
        assert!(t.matches("a.>", &mut out).is_err());
    }

    fn token() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned)
    }

    fn pattern_text() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(prop_oneof![token(), Just("*".to_owned())], 1..4),
            any::<bool>(),
        )
            .prop_map(|(mut tokens, rest)| {
                if rest {
                    tokens.push(">".to_owned());
                }
                tokens.join(".")
            })
    }

    proptest! {
        /// The trie walk returns exactly the patterns that match one by one.
        #[test]
        fn trie_agrees_with_linear_matching(
            patterns in prop::collection::vec(pattern_text(), 0..24),
            subjects in prop::collection::vec(prop::collection::vec(token(), 1..6), 1..16),
        ) {
            let parsed: Vec<Pattern> = patterns.iter().map(|s| p(s)).collect();
            let mut trie = PatternTrie::new();
            for (i, pat) in parsed.iter().enumerate() {
                trie.insert(pat, i);
            }
            for subject in subjects {
                let subject = subject.join(".");
                let mut got = Vec::new();
                trie.matches(&subject, &mut got).expect("valid subject");
                got.sort_unstable();
                let want: Vec<usize> = parsed
                    .iter()
                    .enumerate()
                    .filter(|(_, pat)| pat.matches(&subject))
                    .map(|(i, _)| i)
                    .collect();
                prop_assert_eq!(got, want, "subject {}", subject);
            }
        }
    }
}
