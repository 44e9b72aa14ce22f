//! Shows typed params, validation and logging: vets a repository request against GitHub's rules.

use serde::{Deserialize, Serialize};
use trellis_guest::{Error, log};

/// What a requester asks for. Other params, such as `requester` and `description`, are
/// accepted and ignored; none is echoed, because an orchestration may hand this step a
/// token along with the request.
#[derive(Debug, Deserialize)]
struct Request {
    org: String,
    name: String,
    /// Unset means private: a repository only goes public when someone asked for it.
    #[serde(default = "private_by_default")]
    private: bool,
}

fn private_by_default() -> bool {
    true
}

#[derive(Debug, Serialize)]
struct Evaluation {
    decision: Decision,
    reasons: Vec<String>,
    /// The request as it will be carried out, with `private` resolved.
    request: Repository,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Decision {
    /// Valid and private: nothing for a human to check.
    Approve,
    /// Invalid: GitHub would refuse it.
    Reject,
    /// Valid but public: publishing needs a human's approval.
    Review,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Review => "review",
        }
    }
}

#[derive(Debug, Serialize)]
struct Repository {
    org: String,
    name: String,
    private: bool,
}

#[trellis_guest::function]
fn evaluate_request(request: Request) -> Result<Evaluation, Error> {
    let evaluation = evaluate(request);
    log::info!(
        "decision {} for {}/{} ({})",
        evaluation.decision.as_str(),
        evaluation.request.org,
        evaluation.request.name,
        if evaluation.request.private {
            "private"
        } else {
            "public"
        },
    );
    Ok(evaluation)
}

fn evaluate(request: Request) -> Evaluation {
    let mut reasons = org_problems(&request.org);
    reasons.extend(name_problems(&request.name));
    let decision = if !reasons.is_empty() {
        Decision::Reject
    } else if !request.private {
        reasons.push("public repositories need a human's approval".to_owned());
        Decision::Review
    } else {
        reasons.push("valid names for a private repository".to_owned());
        Decision::Approve
    };
    Evaluation {
        decision,
        reasons,
        request: Repository {
            org: request.org,
            name: request.name,
            private: request.private,
        },
    }
}

/// GitHub's rules for an organization login: at most 39 characters, ASCII letters,
/// digits and single hyphens, not starting or ending with a hyphen.
fn org_problems(org: &str) -> Vec<String> {
    const MAX_LEN: usize = 39;
    let mut problems = Vec::new();
    if org.is_empty() {
        problems.push("org must not be empty".to_owned());
        return problems;
    }
    if org.len() > MAX_LEN {
        problems.push(format!("org must be at most {MAX_LEN} characters"));
    }
    if !org.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        problems.push("org may only contain ASCII letters, digits and hyphens".to_owned());
    }
    if org.starts_with('-') || org.ends_with('-') {
        problems.push("org must not start or end with a hyphen".to_owned());
    }
    if org.contains("--") {
        problems.push("org must not contain consecutive hyphens".to_owned());
    }
    problems
}

/// GitHub's rules for a repository name: 1 to 100 ASCII letters, digits, `.`, `-` and
/// `_`; not `.` or `..`, which are path components; not ending in `.git`, which GitHub
/// reserves for the clone URL.
fn name_problems(name: &str) -> Vec<String> {
    const MAX_LEN: usize = 100;
    let mut problems = Vec::new();
    if name.is_empty() {
        problems.push("name must not be empty".to_owned());
        return problems;
    }
    if name.len() > MAX_LEN {
        problems.push(format!("name must be at most {MAX_LEN} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        problems.push("name may only contain ASCII letters, digits, '.', '-' and '_'".to_owned());
    }
    if name == "." || name == ".." {
        problems.push("name must not be '.' or '..'".to_owned());
    }
    if name.ends_with(".git") {
        problems.push("name must not end with '.git'".to_owned());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(org: &str, name: &str, private: bool) -> Request {
        Request {
            org: org.to_owned(),
            name: name.to_owned(),
            private,
        }
    }

    #[test]
    fn a_valid_private_request_is_approved() {
        let evaluation = evaluate(request("acme-corp", "billing.api_v2", true));
        assert_eq!(evaluation.decision, Decision::Approve);
    }

    #[test]
    fn a_valid_public_request_goes_to_review() {
        let evaluation = evaluate(request("acme", "website", false));
        assert_eq!(evaluation.decision, Decision::Review);
        assert!(!evaluation.request.private);
    }

    #[test]
    fn private_is_the_default() {
        let request: Request =
            serde_json::from_str(r#"{ "org": "acme", "name": "x", "token": "ghp_secret" }"#)
                .expect("valid request");
        assert!(request.private);
    }

    #[test]
    fn invalid_names_are_rejected_with_every_reason() {
        let evaluation = evaluate(request("-acme--", "bad name.git", false));
        assert_eq!(evaluation.decision, Decision::Reject);
        assert_eq!(evaluation.reasons.len(), 4, "{:?}", evaluation.reasons);
    }

    #[test]
    fn org_rules() {
        assert!(org_problems("a").is_empty());
        assert!(org_problems("a-b-c9").is_empty());
        assert!(org_problems(&"a".repeat(39)).is_empty());
        assert!(!org_problems(&"a".repeat(40)).is_empty());
        assert!(!org_problems("").is_empty());
        assert!(!org_problems("acme_corp").is_empty());
        assert!(!org_problems("acme-").is_empty());
        assert!(!org_problems("ac--me").is_empty());
        assert!(!org_problems("ácme").is_empty());
    }

    #[test]
    fn name_rules() {
        assert!(name_problems("a").is_empty());
        assert!(name_problems(".github").is_empty());
        assert!(name_problems("...").is_empty());
        assert!(name_problems(&"a".repeat(100)).is_empty());
        assert!(!name_problems(&"a".repeat(101)).is_empty());
        assert!(!name_problems("").is_empty());
        assert!(!name_problems(".").is_empty());
        assert!(!name_problems("..").is_empty());
        assert!(!name_problems("repo.git").is_empty());
        assert!(!name_problems("my repo").is_empty());
        assert!(!name_problems("repo/x").is_empty());
    }
}
