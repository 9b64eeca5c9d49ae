//! Request quotas per access key: a token bucket for each (access key, action class).
//!
//! Three classes, as Alibaba's shared gateway splits its per-account quotas: symmetric
//! cryptography (Encrypt, Decrypt, GenerateDataKey..., MACs), asymmetric cryptography
//! (AsymmetricSign/Verify/Encrypt/Decrypt and the certificate private-key operations), and
//! management (everything else). A bucket holds up to one second of its rate and refills
//! continuously; a request finding it empty is refused with `Throttling.User` (HTTP 429), and no
//! other key's bucket is touched. Each bucket is a small mutex of its own, checked in O(1).
//!
//! A token bucket of a few lines is written here rather than taken from a crate: it needs no
//! clock source of its own (the caller passes `Instant`s, which keeps it testable), and the
//! crates that offer one bring far more than this needs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;

use crate::response::ApiError;

/// The action classes quotas apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionClass {
    /// Encrypt, Decrypt, ReEncrypt, data keys, MACs.
    Symmetric,
    /// Asymmetric signing, verification, encryption and decryption.
    Asymmetric,
    /// Everything else: keys, aliases, tags, secrets, certificates, policies.
    Management,
}

impl ActionClass {
    /// The class of an action.
    pub fn of(action: &str) -> Self {
        match action {
            "Encrypt"
            | "Decrypt"
            | "ReEncrypt"
            | "GenerateDataKey"
            | "GenerateDataKeyWithoutPlaintext"
            | "GenerateAndExportDataKey"
            | "ExportDataKey"
            | "GenerateMac"
            | "VerifyMac" => ActionClass::Symmetric,
            "AsymmetricSign"
            | "AsymmetricVerify"
            | "AsymmetricEncrypt"
            | "AsymmetricDecrypt"
            | "CertificatePrivateKeySign"
            | "CertificatePublicKeyVerify"
            | "CertificatePublicKeyEncrypt"
            | "CertificatePrivateKeyDecrypt" => ActionClass::Asymmetric,
            _ => ActionClass::Management,
        }
    }

    fn index(self) -> usize {
        match self {
            ActionClass::Symmetric => 0,
            ActionClass::Asymmetric => 1,
            ActionClass::Management => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ActionClass::Symmetric => "symmetric cryptography",
            ActionClass::Asymmetric => "asymmetric cryptography",
            ActionClass::Management => "management",
        }
    }
}

/// The `[rate_limits]` section: requests per second per access key, by class; a class left out
/// is not limited.
///
/// Alibaba's shared gateway allows each account 1,000 QPS of symmetric cryptography, 200 of
/// asymmetric cryptography, and 10 to 300 of the various management calls (50 for reads):
///
/// ```toml
/// [rate_limits]
/// symmetric = 1000
/// asymmetric = 200
/// management = 50
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Symmetric cryptography, per second.
    pub symmetric: Option<f64>,
    /// Asymmetric cryptography, per second.
    pub asymmetric: Option<f64>,
    /// Management, per second.
    pub management: Option<f64>,
}

impl RateLimits {
    fn rate(&self, class: ActionClass) -> Option<f64> {
        match class {
            ActionClass::Symmetric => self.symmetric,
            ActionClass::Asymmetric => self.asymmetric,
            ActionClass::Management => self.management,
        }
        .filter(|r| r.is_finite() && *r > 0.0)
    }

    /// Whether any class is limited.
    pub fn any(&self) -> bool {
        [
            ActionClass::Symmetric,
            ActionClass::Asymmetric,
            ActionClass::Management,
        ]
        .iter()
        .any(|c| self.rate(*c).is_some())
    }

    /// Checks the values: each rate, when given, is a positive number.
    ///
    /// Errors: the name of the first bad value.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("symmetric", self.symmetric),
            ("asymmetric", self.asymmetric),
            ("management", self.management),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(format!(
                        "rate_limits.{name} must be a positive number of requests per second"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The buckets of every configured access key.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    buckets: HashMap<String, [Mutex<Bucket>; 3]>,
}

impl RateLimiter {
    /// Buckets for `access_key_ids` under `limits`, full at `now`.
    pub fn new<'a>(
        limits: RateLimits,
        access_key_ids: impl IntoIterator<Item = &'a str>,
        now: Instant,
    ) -> Self {
        let full = |class: ActionClass| {
            Mutex::new(Bucket {
                tokens: limits.rate(class).unwrap_or(0.0).max(1.0),
                last: now,
            })
        };
        RateLimiter {
            limits,
            buckets: access_key_ids
                .into_iter()
                .map(|id| {
                    (
                        id.to_owned(),
                        [
                            full(ActionClass::Symmetric),
                            full(ActionClass::Asymmetric),
                            full(ActionClass::Management),
                        ],
                    )
                })
                .collect(),
        }
    }

    /// Takes one token for `action` from `access_key_id`'s bucket at `now`.
    ///
    /// Errors: `Throttling.User` (429) when the bucket is empty.
    pub fn check(&self, access_key_id: &str, action: &str, now: Instant) -> Result<(), ApiError> {
        let class = ActionClass::of(action);
        let Some(rate) = self.limits.rate(class) else {
            return Ok(());
        };
        let Some(bucket) = self
            .buckets
            .get(access_key_id)
            .and_then(|b| b.get(class.index()))
        else {
            return Ok(());
        };
        let mut b = bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate.max(1.0));
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        Err(ApiError::new(
            429,
            "Throttling.User",
            format!(
                "the access key {access_key_id} sent more than {rate} {} requests a second; \
                 retry with backoff",
                class.name()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits() -> RateLimits {
        RateLimits {
            symmetric: Some(10.0),
            asymmetric: Some(2.0),
            management: None,
        }
    }

    #[test]
    fn a_bucket_allows_its_rate_then_refuses_until_it_refills() {
        let t0 = Instant::now();
        let r = RateLimiter::new(limits(), ["ak"], t0);
        for _ in 0..10 {
            r.check("ak", "Encrypt", t0).unwrap();
        }
        let e = r.check("ak", "Decrypt", t0).unwrap_err();
        assert_eq!((e.status, &*e.code), (429, "Throttling.User"));
        // A tenth of a second later one more token has come back.
        r.check("ak", "Encrypt", t0 + Duration::from_millis(100))
            .unwrap();
        assert!(r
            .check("ak", "Encrypt", t0 + Duration::from_millis(100))
            .is_err());
    }

    #[test]
    fn classes_and_keys_have_buckets_of_their_own() {
        let t0 = Instant::now();
        let r = RateLimiter::new(limits(), ["a", "b"], t0);
        for _ in 0..10 {
            r.check("a", "Encrypt", t0).unwrap();
        }
        assert!(r.check("a", "Encrypt", t0).is_err());
        // Another class of the same key, and the same class of another key, are untouched.
        r.check("a", "AsymmetricSign", t0).unwrap();
        r.check("b", "Encrypt", t0).unwrap();
        // An unlimited class is never refused.
        for _ in 0..1000 {
            r.check("a", "DescribeKey", t0).unwrap();
        }
    }

    #[test]
    fn a_full_bucket_holds_one_second_of_its_rate() {
        let t0 = Instant::now();
        let r = RateLimiter::new(limits(), ["ak"], t0);
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..2 {
            r.check("ak", "AsymmetricVerify", later).unwrap();
        }
        assert!(r.check("ak", "AsymmetricVerify", later).is_err());
    }

    #[test]
    fn actions_fall_into_their_classes() {
        assert_eq!(ActionClass::of("GenerateDataKey"), ActionClass::Symmetric);
        assert_eq!(
            ActionClass::of("AsymmetricDecrypt"),
            ActionClass::Asymmetric
        );
        assert_eq!(ActionClass::of("CreateKey"), ActionClass::Management);
        assert!(RateLimits {
            symmetric: Some(-1.0),
            ..RateLimits::default()
        }
        .validate()
        .is_err());
    }
}
