//! The security policy, in one place: what each environment demands of a password, the
//! minimum TLS version, the plaintext override and the roots that verify the server.
//!
//! Both enforcers read these rules and nothing else: making a `SecurityConfig` (or a cache)
//! turns a `Verdict::Refused` rule into a `ConfigurationError`, and the validator turns it
//! into an error finding (a `Verdict::Warning` into a warning). So an application that never
//! calls the validator gets the same refusals as one that does. A rule's message names the
//! variable and the field, never a value that was configured.

use super::TlsVersion;
use crate::crypto::{password_strength_for, Secret};
use crate::env::{Lookup, REDIS_INSECURE_ALLOW_PLAINTEXT, REDIS_TLS_TRUST_PUBLIC_ROOTS};
use crate::environment::{is_truthy, Environment};

/// The value of `REDIS_INSECURE_ALLOW_PLAINTEXT` that allows plaintext in production: plain
/// `true` there is refused, so a development setting copied to production cannot downgrade it.
pub const PRODUCTION_ACKNOWLEDGED: &str = "production-acknowledged";

/// What `REDIS_INSECURE_ALLOW_PLAINTEXT` says (or a caller's explicit flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum PlaintextOverride {
    #[default]
    Off,
    /// `true` (or `1`, `yes`, `on`): enough outside production, refused in production.
    On,
    /// `production-acknowledged`: allowed everywhere, production included.
    ProductionAcknowledged,
}

impl PlaintextOverride {
    pub fn read(lookup: Lookup<'_>) -> PlaintextOverride {
        match lookup(REDIS_INSECURE_ALLOW_PLAINTEXT) {
            Some(value) if value.trim().eq_ignore_ascii_case(PRODUCTION_ACKNOWLEDGED) => {
                PlaintextOverride::ProductionAcknowledged
            }
            Some(value) if is_truthy(&value) => PlaintextOverride::On,
            _ => PlaintextOverride::Off,
        }
    }

    /// A caller's explicit "allow plaintext" (`--allow-plaintext`) on top of the variable: it
    /// never stands in for the production acknowledgement.
    #[must_use]
    pub fn with_flag(self, allow: bool) -> PlaintextOverride {
        if allow {
            self.max(PlaintextOverride::On)
        } else {
            self
        }
    }

    /// The variable as read through `lookup`, unless a caller says otherwise: `Some(false)`
    /// turns it off, `Some(true)` turns it on (`with_flag`), `None` keeps the variable's word.
    pub fn from_caller(lookup: Lookup<'_>, allow: Option<bool>) -> PlaintextOverride {
        let read = PlaintextOverride::read(lookup);
        match allow {
            None => read,
            Some(false) => PlaintextOverride::Off,
            Some(true) => read.with_flag(true),
        }
    }

    pub fn is_set(self) -> bool {
        self != PlaintextOverride::Off
    }

    /// Whether plaintext transport is allowed in `environment`.
    pub fn permits(self, environment: Environment) -> bool {
        match self {
            PlaintextOverride::Off => false,
            PlaintextOverride::On => environment != Environment::Production,
            PlaintextOverride::ProductionAcknowledged => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Construction fails; the validator reports an error.
    Refused,
    /// Construction goes on; the validator reports a warning.
    Warning,
}

/// Which rule a finding comes from, so each enforcer can give it its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Password,
    TlsVersion,
    PlaintextOverride,
    TrustRoots,
}

/// One rule that applies, with what to do about it.
#[derive(Debug, Clone)]
pub struct Rule {
    pub kind: RuleKind,
    pub verdict: Verdict,
    /// The `SecurityConfig` field concerned.
    pub field: &'static str,
    pub message: String,
    /// The variable to change, with an example of a correct value.
    pub fix: &'static str,
    /// The section of the security document that explains it.
    pub anchor: &'static str,
}

impl Rule {
    pub fn is_refused(&self) -> bool {
        self.verdict == Verdict::Refused
    }
}

pub const GENERATE_PASSWORD: &str =
    "REDIS_PASSWORD=$(secure-redis generate-password --length 32), and the same password on the \
     server (requirepass, or an ACL user with REDIS_ACL_USERNAME)";

/// The zxcvbn score production requires: 4 is its only band above 10^10 guesses. Redis AUTH
/// has no lockout and a pipelined client tries on the order of 10^5 passwords a second, and
/// ACL files keep unsalted SHA-256 hashes, so score 3 (10^8 to 10^10 guesses) falls within
/// hours to days; a generated password (`generate_secure_password`, 32 characters) always
/// scores 4, so the requirement costs nothing to meet.
pub const PRODUCTION_MIN_ESTIMATOR_SCORE: u8 = 4;

/// Length and guessability: too short for the environment or guessable (common, repeated
/// characters) is refused everywhere; weak (zxcvbn 0-2) is refused in staging and production
/// and a warning elsewhere; production also requires zxcvbn score 4
/// (`PRODUCTION_MIN_ESTIMATOR_SCORE`). `acl_username` is given to the estimator, so a
/// password built from it rates low.
pub fn password_rules(
    password: &Secret,
    acl_username: Option<&str>,
    environment: Environment,
) -> Vec<Rule> {
    let rule = |verdict, message| Rule {
        kind: RuleKind::Password,
        verdict,
        field: "redis_auth",
        message,
        fix: GENERATE_PASSWORD,
        anchor: "password-policy",
    };
    let mut rules = Vec::new();
    let minimum = environment.min_password_length();
    if password.len() < minimum {
        rules.push(rule(
            Verdict::Refused,
            format!(
                "The Redis password (REDIS_PASSWORD, redis_auth) has {} characters; the {environment} environment \
                 requires at least {minimum}.",
                password.len()
            ),
        ));
    }
    let strength = password_strength_for(password.expose(), acl_username.as_slice());
    if strength.is_common() || strength.is_repetitive() {
        let why: Vec<&str> = strength
            .issues
            .iter()
            .filter(|i| i.starts_with("common") || i.starts_with("repeated"))
            .map(String::as_str)
            .collect();
        rules.push(rule(
            Verdict::Refused,
            format!(
                "The Redis password (REDIS_PASSWORD, redis_auth) is guessable: {}.",
                why.join("; ")
            ),
        ));
    } else if strength.rating == "weak" && password.len() >= minimum {
        let strict = matches!(environment, Environment::Staging | Environment::Production);
        rules.push(rule(
            if strict {
                Verdict::Refused
            } else {
                Verdict::Warning
            },
            format!(
                "The Redis password (REDIS_PASSWORD, redis_auth) is weak (score {}/100, about {} bits): {}.",
                strength.score,
                strength.entropy_bits.round(),
                strength.issues.join("; ")
            ),
        ));
    } else if environment == Environment::Production
        && strength.zxcvbn_score < PRODUCTION_MIN_ESTIMATOR_SCORE
        && password.len() >= minimum
    {
        rules.push(rule(
            Verdict::Refused,
            format!(
                "The Redis password (REDIS_PASSWORD, redis_auth) is too guessable for production: the zxcvbn \
                 estimator scores it {}/4 and production requires {PRODUCTION_MIN_ESTIMATOR_SCORE}/4 (or a \
                 generated password): {}.",
                strength.zxcvbn_score,
                strength.issues.join("; ")
            ),
        ));
    }
    rules
}

/// The minimum TLS version: production requires 1.3 (an unset version means 1.3 there), the
/// other environments accept 1.2 (their default).
pub fn tls_version(
    requested: Option<TlsVersion>,
    environment: Environment,
) -> Result<TlsVersion, Rule> {
    let production = environment == Environment::Production;
    match requested {
        Some(TlsVersion::V1_2) if production => Err(Rule {
            kind: RuleKind::TlsVersion,
            verdict: Verdict::Refused,
            field: "min_tls_version",
            message: "min_tls_version (REDIS_TLS_MIN_VERSION) is 1.2, but production requires TLS 1.3.".into(),
            fix: "REDIS_TLS_MIN_VERSION=1.3 (or unset it), with tls-protocols \"TLSv1.3\" on the server",
            anchor: "tls-versions",
        }),
        Some(version) => Ok(version),
        None if production => Ok(TlsVersion::V1_3),
        None => Ok(TlsVersion::V1_2),
    }
}

/// The plaintext override in production: plain `true` is refused (it needs
/// `production-acknowledged`), the acknowledged form is a loud warning. Elsewhere the URL
/// check's own warning about plaintext is enough.
pub fn plaintext_override_rule(
    setting: PlaintextOverride,
    environment: Environment,
) -> Option<Rule> {
    if environment != Environment::Production {
        return None;
    }
    match setting {
        PlaintextOverride::Off => None,
        PlaintextOverride::On => Some(Rule {
            kind: RuleKind::PlaintextOverride,
            verdict: Verdict::Refused,
            field: "use_tls",
            message: format!(
                "{REDIS_INSECURE_ALLOW_PLAINTEXT}=true is refused in production: plaintext Redis in production \
                 needs a second, explicit acknowledgement, {REDIS_INSECURE_ALLOW_PLAINTEXT}={PRODUCTION_ACKNOWLEDGED}."
            ),
            fix: "Remove REDIS_INSECURE_ALLOW_PLAINTEXT and use REDIS_URL=rediss://redis.internal:6380/0; only on an \
                  isolated network, set REDIS_INSECURE_ALLOW_PLAINTEXT=production-acknowledged",
            anchor: "plaintext-override",
        }),
        PlaintextOverride::ProductionAcknowledged => Some(Rule {
            kind: RuleKind::PlaintextOverride,
            verdict: Verdict::Warning,
            field: "use_tls",
            message: format!(
                "PRODUCTION WITHOUT TLS ALLOWED: {REDIS_INSECURE_ALLOW_PLAINTEXT}={PRODUCTION_ACKNOWLEDGED} lets this \
                 production service talk to Redis in plaintext; the AUTH password and every key name then cross \
                 the network in clear. Acceptable only on an isolated network."
            ),
            fix: "Use TLS: REDIS_URL=rediss://redis.internal:6380/0 and remove REDIS_INSECURE_ALLOW_PLAINTEXT.",
            anchor: "plaintext-override",
        }),
    }
}

/// Where the server's certificate is checked, for a TLS connection. `topology` is the
/// deployment's name ("standalone", "sentinel", "cluster") or `None` while it is not known
/// yet (a `SecurityConfig` on its own).
///
/// Without a CA the public web roots verify the server, so any publicly trusted certificate
/// for the host name passes; with Sentinel or Cluster that name comes from a discovery reply,
/// so a compromised sentinel or node could send the client, password included, to any such
/// host. Hence: a CA is required in production and for Sentinel and Cluster, unless the
/// public roots are chosen explicitly (managed services), which is always a warning.
pub fn trust_rule(
    ca_configured: bool,
    trust_public_roots: bool,
    environment: Environment,
    topology: Option<&str>,
) -> Option<Rule> {
    const FIX: &str =
        "REDIS_TLS_CA_PATH=/etc/redis/tls/ca.crt (the CA that signed the server certificates); for a managed \
         service with a publicly trusted certificate, REDIS_TLS_TRUST_PUBLIC_ROOTS=true";
    if ca_configured {
        return None;
    }
    let rule = |verdict, message| Rule {
        kind: RuleKind::TrustRoots,
        verdict,
        field: "tls_ca_path",
        message,
        fix: FIX,
        anchor: "certificates",
    };
    if trust_public_roots {
        return Some(rule(
            Verdict::Warning,
            format!(
                "{REDIS_TLS_TRUST_PUBLIC_ROOTS}=true (tls_trust_public_roots): the server certificate is checked \
                 against the public web CAs, so any publicly trusted certificate for the host name is accepted. \
                 Right for a managed Redis with a public certificate; a private Redis needs REDIS_TLS_CA_PATH."
            ),
        ));
    }
    let distributed = matches!(topology, Some("sentinel" | "cluster"));
    if distributed {
        return Some(rule(
            Verdict::Refused,
            format!(
                "tls_ca_path (REDIS_TLS_CA_PATH) is required with {}: the host names come from discovery \
                 replies, and without a CA any publicly trusted certificate for an announced name would be \
                 accepted, so a compromised {} could send the client, password included, to a host of its \
                 choosing. Set REDIS_TLS_CA_PATH, or {REDIS_TLS_TRUST_PUBLIC_ROOTS}=true for a managed service.",
                if topology == Some("sentinel") {
                    "Sentinel"
                } else {
                    "Redis Cluster"
                },
                if topology == Some("sentinel") {
                    "sentinel"
                } else {
                    "node"
                },
            ),
        ));
    }
    if environment == Environment::Production {
        return Some(rule(
            Verdict::Refused,
            format!(
                "tls_ca_path (REDIS_TLS_CA_PATH) is required in production: without it any publicly trusted \
                 certificate for the host name is accepted. Set REDIS_TLS_CA_PATH to the CA that signed the server \
                 certificate, or {REDIS_TLS_TRUST_PUBLIC_ROOTS}=true (tls_trust_public_roots=True) for a managed \
                 service with a publicly trusted certificate."
            ),
        ));
    }
    topology.map(|_| {
        rule(
            Verdict::Warning,
            "REDIS_TLS_CA_PATH is not set, so the server certificate is checked against public web CAs. A \
             private Redis needs its own CA (production refuses this without REDIS_TLS_TRUST_PUBLIC_ROOTS=true)."
                .into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::from_pairs;

    #[test]
    fn plaintext_override_needs_acknowledgement_in_production_only() {
        let read = |value: &str| {
            PlaintextOverride::read(&from_pairs(&[(REDIS_INSECURE_ALLOW_PLAINTEXT, value)]))
        };
        assert_eq!(read("true"), PlaintextOverride::On);
        assert_eq!(read("yes"), PlaintextOverride::On);
        assert_eq!(
            read(" Production-Acknowledged "),
            PlaintextOverride::ProductionAcknowledged
        );
        assert_eq!(read("false"), PlaintextOverride::Off);
        assert_eq!(
            PlaintextOverride::read(&from_pairs(&[])),
            PlaintextOverride::Off
        );
        assert!(PlaintextOverride::On.permits(Environment::Staging));
        assert!(!PlaintextOverride::On.permits(Environment::Production));
        assert!(PlaintextOverride::ProductionAcknowledged.permits(Environment::Production));
        assert!(!PlaintextOverride::Off.permits(Environment::Development));
        // The CLI's --allow-plaintext is no acknowledgement.
        assert_eq!(
            PlaintextOverride::Off.with_flag(true),
            PlaintextOverride::On
        );
        assert_eq!(
            PlaintextOverride::ProductionAcknowledged.with_flag(true),
            PlaintextOverride::ProductionAcknowledged
        );

        let refused = plaintext_override_rule(PlaintextOverride::On, Environment::Production)
            .expect("a rule");
        assert!(refused.is_refused());
        assert!(refused
            .message
            .contains("REDIS_INSECURE_ALLOW_PLAINTEXT=production-acknowledged"));
        let loud = plaintext_override_rule(
            PlaintextOverride::ProductionAcknowledged,
            Environment::Production,
        )
        .expect("a rule");
        assert_eq!(loud.verdict, Verdict::Warning);
        assert!(plaintext_override_rule(PlaintextOverride::On, Environment::Staging).is_none());
    }

    #[test]
    fn passwords_follow_the_environment() {
        let refused = |password: &str, environment| {
            password_rules(&Secret::new(password), None, environment)
                .iter()
                .any(Rule::is_refused)
        };
        let strong = crate::crypto::generate_secure_password(32).expect("the OS random source");
        let strong = strong.as_str();
        for environment in [
            Environment::Development,
            Environment::Staging,
            Environment::Production,
        ] {
            assert!(!refused(strong, environment), "{environment}");
            assert!(refused(&"a".repeat(54), environment), "{environment}");
            assert!(refused("password1234567890", environment), "{environment}");
        }
        let twenty_four = "k3J9x!vQ2mZp7Lr5Wt8yN4bH";
        assert!(!refused(twenty_four, Environment::Staging));
        assert!(refused(twenty_four, Environment::Production));
        let rules = password_rules(&Secret::new("a".repeat(54)), None, Environment::Production);
        assert!(rules.iter().all(|r| !r.message.contains("aaaa")));
    }

    #[test]
    fn production_requires_the_estimators_top_score() {
        let refused = |password: &str, user: Option<&str>, environment| {
            password_rules(&Secret::new(password), user, environment)
                .iter()
                .any(Rule::is_refused)
        };
        // Memorable but long: the old estimate let these through.
        for password in [
            "P@ssw0rd2024!P@ssw0rd2024!P@ssw0rd2024!",
            &"0123456789".repeat(4),
            &"abcdefghijklmnopqrstuvwxyz".repeat(2),
        ] {
            assert!(
                refused(password, None, Environment::Production),
                "{password}"
            );
            let rules = password_rules(&Secret::new(password), None, Environment::Production);
            assert!(rules.iter().all(|r| !r.message.contains(password)));
        }
        for _ in 0..50 {
            let generated =
                crate::crypto::generate_secure_password(32).expect("the OS random source");
            assert!(!refused(
                &generated,
                Some("cache-app"),
                Environment::Production
            ));
        }
        // The ACL user name counts against a password built from it.
        let named = "orders-cache-writer-Orders-Cache-Writer-2024";
        assert!(refused(
            named,
            Some("orders-cache-writer"),
            Environment::Production
        ));
    }

    #[test]
    fn production_requires_tls13() {
        assert_eq!(
            tls_version(None, Environment::Production).unwrap(),
            TlsVersion::V1_3
        );
        assert_eq!(
            tls_version(None, Environment::Staging).unwrap(),
            TlsVersion::V1_2
        );
        assert!(tls_version(Some(TlsVersion::V1_2), Environment::Production).is_err());
        assert_eq!(
            tls_version(Some(TlsVersion::V1_3), Environment::Development).unwrap(),
            TlsVersion::V1_3
        );
    }

    #[test]
    fn public_roots_need_an_opt_in_in_production_and_for_discovered_hosts() {
        use Environment::{Development, Production};
        let verdict = |ca, public, environment, topology| {
            trust_rule(ca, public, environment, topology).map(|r| r.verdict)
        };
        // A CA settles it everywhere.
        assert_eq!(verdict(true, false, Production, Some("sentinel")), None);
        // Production: refused without the opt-in, even before the topology is known.
        assert_eq!(
            verdict(false, false, Production, None),
            Some(Verdict::Refused)
        );
        assert_eq!(
            verdict(false, true, Production, Some("cluster")),
            Some(Verdict::Warning)
        );
        // Elsewhere: one node may use the public roots (a warning), discovery may not.
        assert_eq!(verdict(false, false, Development, None), None);
        assert_eq!(
            verdict(false, false, Development, Some("standalone")),
            Some(Verdict::Warning)
        );
        for topology in ["sentinel", "cluster"] {
            let rule = trust_rule(false, false, Development, Some(topology)).expect("a rule");
            assert!(rule.is_refused());
            assert!(rule.message.contains("REDIS_TLS_CA_PATH"));
            assert!(rule.message.contains("REDIS_TLS_TRUST_PUBLIC_ROOTS=true"));
        }
        assert_eq!(
            verdict(false, true, Development, Some("sentinel")),
            Some(Verdict::Warning)
        );
    }
}
