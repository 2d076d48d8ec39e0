//! A corpus of real-looking commit messages, including false friends: a human who shares an
//! assistant's name, an assistant mentioned in the body, trailer-like lines that git would
//! not take as trailers, and credits under keys that do not credit authorship.

use super::*;

/// (what it is, message, expected origin)
const CORPUS: &[(&str, &str, Origin)] = &[
    (
        "Claude Code's co-author trailer",
        "Fix race in the run status writer\n\
         \n\
         The status writer could overwrite a newer status with a stale one when two\n\
         reconciles overlapped. Compare resourceVersions before writing.\n\
         \n\
         🤖 Generated with [Claude Code](https://claude.com/claude-code)\n\
         \n\
         Co-Authored-By: Claude <noreply@anthropic.com>\n",
        Origin::AiAssisted,
    ),
    (
        "Claude Code naming the model",
        "Add --full to promote\n\nCo-Authored-By: Claude Opus 4.6 <noreply@anthropic.com>\n",
        Origin::AiAssisted,
    ),
    (
        "GitHub Copilot coding agent, squash-merged with a human co-author",
        "Add exponential backoff to Prometheus queries (#412)\n\
         \n\
         * Initial plan\n\
         \n\
         * Add exponential backoff to query retries\n\
         \n\
         Co-authored-by: copilot-swe-agent[bot] <198982749+Copilot@users.noreply.github.com>\n\
         Co-authored-by: octocat <583231+octocat@users.noreply.github.com>\n",
        Origin::AiAssisted,
    ),
    (
        "kernel-style Assisted-by with agent:model, next to a sign-off",
        "rollguard: tighten the approval admission policy\n\
         \n\
         Refuse approvals that claim groups the requester is not in.\n\
         \n\
         Assisted-by: Claude:claude-opus-4-1\n\
         Signed-off-by: Ana Lima <ana@example.com>\n",
        Origin::AiAssisted,
    ),
    (
        "Generated-by naming an assistant",
        "Regenerate the CRD reference\n\nGenerated-by: GitHub Copilot\n",
        Origin::AiGenerated,
    ),
    (
        "aider's co-author trailer with the model in parentheses",
        "feat: add retry verb\n\nCo-authored-by: aider (anthropic/claude-sonnet-4) <aider@aider.chat>\n",
        Origin::AiAssisted,
    ),
    (
        "Cursor agent, the trailer folded over two lines",
        "Route weights through the Gateway API\n\
         \n\
         Co-authored-by: Cursor Agent\n \
         <cursoragent@cursor.com>\n",
        Origin::AiAssisted,
    ),
    (
        "upper-case key and email",
        "Bump deps\n\nCO-AUTHORED-BY: Claude <NoReply@Anthropic.com>\n",
        Origin::AiAssisted,
    ),
    (
        "a credit among a little prose in the last paragraph (git counts it: a quarter are trailers)",
        "Fix flaky test\n\
         \n\
         Thanks for spotting the race.\n\
         Co-authored-by: Copilot <175728472+Copilot@users.noreply.github.com>\n",
        Origin::AiAssisted,
    ),
    (
        "CRLF line endings",
        "Fix typo\r\n\r\nCo-authored-by: Claude <noreply@anthropic.com>\r\n",
        Origin::AiAssisted,
    ),
    // False friends.
    (
        "a painter named Claude",
        "Paint the dashboard in impressionist colours\n\nCo-authored-by: Claude Monet <claude@monet.fr>\n",
        Origin::Human,
    ),
    (
        "a human named Devin",
        "Bump kube to 4.2\n\nCo-authored-by: Devin Park <devin.park@example.com>\n",
        Origin::Human,
    ),
    (
        "a person who works at an assistant's company",
        "Document the sequential test\n\nCo-authored-by: Jane Doe <jane@anthropic.com>\n",
        Origin::Human,
    ),
    (
        "Assisted-by a human without an email",
        "Rework the history table\n\nAssisted-by: Claude Monet\n",
        Origin::Human,
    ),
    (
        "Copilot mentioned in the body, and a trailer-like line inside it",
        "Refactor weight rounding\n\
         \n\
         Copilot suggested using integer ppm here; I rewrote it by hand. A line like\n\
         Co-authored-by: Copilot <175728472+Copilot@users.noreply.github.com>\n\
         was considered but this change is mine.\n\
         \n\
         Signed-off-by: Bob Smith <bob@example.org>\n",
        Origin::Human,
    ),
    (
        "a revert quoting the original trailers in the body",
        "Revert \"Add canary autoscaling\"\n\
         \n\
         This reverts commit 1a2b3c4d5e6f. The original message ended with:\n\
         \n\
         Co-authored-by: Claude <noreply@anthropic.com>\n\
         \n\
         Reverting because it broke the e2e suite.\n",
        Origin::Human,
    ),
    (
        "a subject that looks like a trailer",
        "Co-authored-by: Claude <noreply@anthropic.com>\n",
        Origin::Human,
    ),
    (
        "an assistant under a key that does not credit authorship",
        "Tidy the chart\n\nReviewed-by: Claude <noreply@anthropic.com>\nSigned-off-by: Ann <ann@example.com>\n",
        Origin::Human,
    ),
    (
        "Generated-by naming a code generator",
        "Update generated client\n\nGenerated-by: protoc-gen-go v1.34\n",
        Origin::Human,
    ),
    (
        "dependabot",
        "Bump tokio from 1.40.0 to 1.41.0\n\
         \n\
         Bumps [tokio](https://github.com/tokio-rs/tokio) from 1.40.0 to 1.41.0.\n\
         \n\
         ---\n\
         updated-dependencies:\n\
         - dependency-name: tokio\n\
         \x20 dependency-type: direct:production\n\
         ...\n\
         \n\
         Signed-off-by: dependabot[bot] <support@github.com>\n",
        Origin::Human,
    ),
    (
        "a last paragraph that is mostly prose with one credit and no sign-off ratio",
        "Explain the dial\n\
         \n\
         This paragraph explains why the change matters in some detail.\n\
         It goes on for a while, as commit messages sometimes do, and ends\n\
         with a mention of Co-authored-by trailers without being one, so\n\
         git would not read any trailers here at all.\n\
         Co-authored-by: Claude <noreply@anthropic.com>\n",
        Origin::Human,
    ),
];

#[test]
fn corpus() {
    let assistants = Assistants::default();
    let mut wrong = vec![];
    for (what, msg, want) in CORPUS {
        let (got, credits) = classify(msg, &assistants);
        if got != *want {
            wrong.push(format!(
                "{what}: got {got}, want {want} (credits {credits:?}; trailers {:?})",
                trailers(msg)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn trailers_are_found_the_way_git_finds_them() {
    let msg = "Subject\n\nBody.\n\nCo-authored-by: A <a@example.com>\n  continued\nSigned-off-by: B <b@example.com>\n\n\n";
    assert_eq!(
        trailers(msg),
        vec![
            Trailer {
                key: "Co-authored-by".into(),
                value: "A <a@example.com> continued".into()
            },
            Trailer {
                key: "Signed-off-by".into(),
                value: "B <b@example.com>".into()
            },
        ]
    );
    assert!(trailers("Only a subject: with a colon\n").is_empty());
    assert!(
        trailers("Subject\n\nprose line\nKey: value\n").is_empty(),
        "no recognised trailer"
    );
    assert!(trailers("").is_empty());
}

#[test]
fn the_decisive_credit_is_reported() {
    let (origin, credits) = classify(
        "Add tag\n\nCo-authored-by: Claude <noreply@anthropic.com>\nGenerated-by: GitHub Copilot\n",
        &Assistants::default(),
    );
    assert_eq!(origin, Origin::AiGenerated, "generated outranks assisted");
    let keys: Vec<(&str, &str)> = credits
        .iter()
        .map(|c| (c.trailer.key.as_str(), c.assistant.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("Co-authored-by", "noreply@anthropic.com"),
            ("Generated-by", "github copilot")
        ]
    );
}

#[test]
fn the_assistant_list_is_configurable() {
    let msg = "Fix\n\nCo-authored-by: Helper <helper@ai.corp.example>\n";
    assert_eq!(classify(msg, &Assistants::default()).0, Origin::Human);
    let ours = Assistants::parse("*@ai.corp.example").unwrap_or_default();
    assert_eq!(classify(msg, &ours).0, Origin::AiAssisted);
    // Replacing the list drops the defaults; `default` keeps them.
    let claude = "Fix\n\nCo-authored-by: Claude <noreply@anthropic.com>\n";
    assert_eq!(classify(claude, &ours).0, Origin::Human);
    let both = Assistants::parse("default, *@ai.corp.example").unwrap_or_default();
    assert_eq!(classify(claude, &both).0, Origin::AiAssisted);
    assert_eq!(classify(msg, &both).0, Origin::AiAssisted);
    assert!(Assistants::parse("*").is_err());
    assert!(Assistants::parse("*@*").is_err());
    assert!(Assistants::parse(" , ").is_err());
}

#[test]
fn globs_match_whole_strings_ignoring_case() {
    assert!(glob(
        "*+copilot@users.noreply.github.com",
        "198982749+copilot@users.noreply.github.com"
    ));
    assert!(!glob(
        "*+copilot@users.noreply.github.com",
        "copilot@users.noreply.github.com.evil"
    ));
    assert!(glob("claude-*", "Claude-3-Opus"));
    assert!(!glob("claude", "claude monet"));
    assert!(glob("a*b*c", "axxbyyc"));
    assert!(!glob("a*b*c", "axxbyy"));
}

/// Every built-in GitHub account, with the ID its `ID+login@` address carries in the test.
/// The test below fails when a GitHub entry is added to the built-in list without a row here.
const GITHUB_ASSISTANTS: &[(&str, &str)] = &[
    ("Copilot", "175728472"),
    ("copilot-swe-agent[bot]", "198982749"),
    ("devin-ai-integration[bot]", "158243242"),
    ("chatgpt-codex-connector[bot]", "199175422"),
    ("google-labs-jules[bot]", "161369871"),
    ("gemini-code-assist[bot]", "176961590"),
    ("amazon-q-developer[bot]", "208079219"),
    ("cursor[bot]", "206951365"),
];

/// `Co-authored-by: <name> <email>` as one assistant or person writes it.
fn credited(email: &str) -> Option<String> {
    Assistants::default()
        .matching(&format!("Someone <{email}>"))
        .map(str::to_string)
}

#[test]
fn github_no_reply_addresses_are_recognised_in_both_forms() {
    let listed: Vec<&str> = DEFAULT_ASSISTANTS
        .iter()
        .filter_map(|p| p.strip_suffix(GITHUB_NOREPLY))
        .collect();
    let tested: Vec<String> = GITHUB_ASSISTANTS
        .iter()
        .map(|(login, _)| login.to_lowercase())
        .collect();
    assert_eq!(listed, tested, "every built-in GitHub account has a row");
    let mut wrong = vec![];
    for (login, id) in GITHUB_ASSISTANTS {
        for email in [
            format!("{id}+{login}@users.noreply.github.com"),
            format!("{login}@users.noreply.github.com"),
            format!("{id}+{}@USERS.noreply.github.com", login.to_uppercase()),
        ] {
            if credited(&email).is_none() {
                wrong.push(format!("{email} is not recognised"));
            }
            let msg = format!("Fix\n\nCo-authored-by: {login} <{email}>\n");
            if classify(&msg, &Assistants::default()).0 != Origin::AiAssisted {
                wrong.push(format!("{msg:?} is not ai-assisted"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn people_with_github_no_reply_addresses_are_people() {
    let mut wrong = vec![];
    for (login, id) in GITHUB_ASSISTANTS {
        let lower = login.to_lowercase();
        let bare = lower.trim_end_matches("[bot]");
        let mut near = vec![
            // A person whose login contains the assistant's.
            format!("{id}+{bare}-fan@users.noreply.github.com"),
            format!("{id}+my{bare}@users.noreply.github.com"),
            format!("{bare}-fan@users.noreply.github.com"),
            format!("my{bare}@users.noreply.github.com"),
            format!("{id}+{bare}x@users.noreply.github.com"),
            // Not GitHub's ID: letters, empty, or a second `+`.
            format!("abc+{lower}@users.noreply.github.com"),
            format!("+{lower}@users.noreply.github.com"),
            format!("{id}+alice+{lower}@users.noreply.github.com"),
            format!("{id}{lower}@users.noreply.github.com"),
            // Another domain, or GitHub's domain as a prefix of someone else's.
            format!("{id}+{lower}@noreply.github.com"),
            format!("{id}+{lower}@users.noreply.github.com.evil.example"),
            format!("{lower}@users.noreply.github.co"),
            format!("{lower}@example.com"),
        ];
        if bare != lower {
            // A person may hold the login without `[bot]`; only GitHub apps have it.
            near.push(format!("{id}+{bare}@users.noreply.github.com"));
            near.push(format!("{bare}@users.noreply.github.com"));
        }
        for email in near {
            if let Some(p) = credited(&email) {
                wrong.push(format!("{email} matched {p:?}"));
            }
        }
    }
    // Real people's no-reply addresses.
    for email in [
        "583231+octocat@users.noreply.github.com",
        "octocat@users.noreply.github.com",
        "1234+claude@users.noreply.github.com",
        "1234+devin@users.noreply.github.com",
    ] {
        if let Some(p) = credited(email) {
            wrong.push(format!("{email} matched {p:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_custom_pattern_in_the_older_form_matches_both_forms() {
    let ours = Assistants::parse("our-agent[bot]@users.noreply.github.com").unwrap_or_default();
    assert!(
        ours.matching("A <42+our-agent[bot]@users.noreply.github.com>")
            .is_some()
    );
    assert!(
        ours.matching("A <our-agent[bot]@users.noreply.github.com>")
            .is_some()
    );
    assert!(
        ours.matching("A <42+our-agent@users.noreply.github.com>")
            .is_none()
    );
}
