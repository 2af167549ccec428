//! Reading numbers from text the way the original tools' `sscanf("%d")` does, so the same
//! command lines and inputs mean the same thing.

/// The integer at the start of `text` after blanks, with an optional sign; `None` when there
/// is none. Digits beyond what an `i64` holds saturate.
pub fn leading_int(text: &str) -> Option<i64> {
    let rest = text.trim_start();
    let (negative, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let len = digits.bytes().take_while(u8::is_ascii_digit).count();
    if len == 0 {
        return None;
    }
    let magnitude = digits[..len].bytes().fold(0i64, |acc, d| {
        acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_scanf() {
        assert_eq!(leading_int("1000"), Some(1000));
        assert_eq!(leading_int("  42\n"), Some(42));
        assert_eq!(leading_int("-7x"), Some(-7));
        assert_eq!(leading_int("+3"), Some(3));
        assert_eq!(leading_int("12abc"), Some(12));
        assert_eq!(leading_int("abc"), None);
        assert_eq!(leading_int("-"), None);
        assert_eq!(leading_int(""), None);
        assert_eq!(leading_int("99999999999999999999999"), Some(i64::MAX));
    }
}
