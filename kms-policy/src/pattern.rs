//! Wildcard patterns: `*` matches any run of characters, `?` any one character.

/// A wildcard pattern, matched case-sensitively or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    case_insensitive: bool,
}

impl Pattern {
    /// A case-sensitive pattern (principals, resources, condition values).
    pub fn new(text: &str) -> Self {
        Pattern {
            text: text.to_owned(),
            case_insensitive: false,
        }
    }

    /// A case-insensitive pattern (actions: `kms:encrypt` names `kms:Encrypt`).
    pub fn ignoring_case(text: &str) -> Self {
        Pattern {
            text: text.to_ascii_lowercase(),
            case_insensitive: true,
        }
    }

    /// The pattern as written (lower-cased when case-insensitive).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern has a wildcard.
    pub fn is_wildcard(&self) -> bool {
        self.text.contains(['*', '?'])
    }

    /// Does `value` match?
    pub fn matches(&self, value: &str) -> bool {
        if self.case_insensitive {
            glob(self.text.as_bytes(), value.to_ascii_lowercase().as_bytes())
        } else {
            glob(self.text.as_bytes(), value.as_bytes())
        }
    }
}

/// The length in bytes of the UTF-8 character that starts at `value[v]`.
fn char_len(value: &[u8], v: usize) -> usize {
    match value.get(v) {
        Some(&b) if b >= 0xF0 => 4,
        Some(&b) if b >= 0xE0 => 3,
        Some(&b) if b >= 0xC0 => 2,
        _ => 1,
    }
}

/// Iterative wildcard match with single-star backtracking: linear in practice, no recursion.
///
/// Works on the UTF-8 bytes of both strings; `?` and each backtracking step take one whole
/// character, so `v` always stays on a character boundary.
fn glob(pattern: &[u8], value: &[u8]) -> bool {
    let (mut p, mut v) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, v));
                p += 1;
            }
            Some(b'?') => {
                p += 1;
                v += char_len(value, v);
            }
            Some(&c) if Some(&c) == value.get(v) => {
                p += 1;
                v += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    let next = sv + char_len(value, sv);
                    p = sp + 1;
                    v = next;
                    star = Some((sp, next));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_any_run_and_question_one_character() {
        let p = Pattern::new("kms:List*");
        assert!(p.matches("kms:ListKeys"));
        assert!(p.matches("kms:List"));
        assert!(!p.matches("kms:DescribeKey"));
        assert!(Pattern::new("*").matches(""));
        assert!(Pattern::new("a*b*c").matches("aXXbYYc"));
        assert!(!Pattern::new("a*b*c").matches("aXXbYY"));
        assert!(Pattern::new("a?c").matches("abc"));
        assert!(!Pattern::new("a?c").matches("ac"));
        assert!(Pattern::new("acs:ram::123:*").matches("acs:ram::123:user/alice"));
        assert!(!Pattern::new("acs:ram::123:*").matches("acs:ram::1234:user/alice"));
    }

    #[test]
    fn action_patterns_ignore_case() {
        assert!(Pattern::ignoring_case("kms:encrypt").matches("kms:Encrypt"));
        assert!(Pattern::ignoring_case("KMS:*").matches("kms:Decrypt"));
        assert!(!Pattern::new("kms:encrypt").matches("kms:Encrypt"));
    }

    #[test]
    fn pathological_patterns_finish() {
        let p = Pattern::new(&"*a".repeat(30));
        assert!(!p.matches(&"a".repeat(29)));
        assert!(p.matches(&"a".repeat(60)));
    }
}
