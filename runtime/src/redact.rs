//! Removes secrets from bytes on their way to logs, results and S3.

use memchr::memmem::Finder;

const MASK: &[u8] = b"***";

#[derive(Clone)]
pub struct Redactor {
    finders: Vec<Finder<'static>>,
    longest: usize,
}

impl Redactor {
    pub fn new(secrets: &[String]) -> Redactor {
        let mut secrets: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let longest = secrets.first().map_or(0, |s| s.len());
        Redactor {
            finders: secrets
                .iter()
                .map(|s| Finder::new(s.as_bytes()).into_owned())
                .collect(),
            longest,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.finders.is_empty()
    }

    /// Length of the longest secret: a stream cut anywhere must hold back
    /// this many bytes less one, or a secret split across two pieces escapes.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// Replace every occurrence of every secret with `***`.
    pub fn redact(&self, data: &mut Vec<u8>) {
        for f in &self.finders {
            // Matches come without overlap, leftmost first.
            let mut matches = f.find_iter(data).peekable();
            if matches.peek().is_none() {
                continue;
            }
            let needle = f.needle().len();
            let mut out = Vec::with_capacity(data.len());
            let mut last = 0;
            for at in matches {
                out.extend_from_slice(&data[last..at]);
                out.extend_from_slice(MASK);
                last = at + needle;
            }
            out.extend_from_slice(&data[last..]);
            *data = out;
        }
    }

    pub fn redact_str(&self, s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        self.redact(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let r = Redactor::new(&["tok".into(), "token123".into()]);
        let mut v = b"a token123 b tok c tokentoken123".to_vec();
        r.redact(&mut v);
        assert_eq!(v, b"a *** b *** c ***en***");
    }

    #[test]
    fn no_secrets_is_a_no_op() {
        let r = Redactor::new(&[]);
        let mut v = b"plain".to_vec();
        r.redact(&mut v);
        assert_eq!(v, b"plain");
        assert!(r.is_empty());
    }
}
