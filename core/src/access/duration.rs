//! Durations as people write them in the access policy, the API and the CLI: `15m`, `1h30m`,
//! `1d`, or ISO 8601 (`PT1H`, `P1DT12H`), as cloud JIT policies write them. Whole seconds only.

/// Why a duration does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("is empty")]
    Empty,
    /// Not the grammar: units `d`, `h`, `m`, `s` in that order, each once, each after digits.
    #[error("is not a duration")]
    Syntax,
    #[error("is too long")]
    Overflow,
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Seconds in `text`: `15m`, `1h30m`, `1d`, `90s`, `PT1H`, `PT15M`, `P1D`, `P1DT2H30M`.
/// Units come largest first, each at most once; no signs, fractions, spaces or weeks.
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    match text.strip_prefix('P') {
        Some(iso) => parse_iso(iso),
        None => parse_units(text, &[('d', DAY), ('h', HOUR), ('m', MINUTE), ('s', 1)]),
    }
}

/// ISO 8601 after the `P`: `[nD][T[nH][nM][nS]]`, at least one number, and a `T` only
/// before a time part.
fn parse_iso(rest: &str) -> Result<u64, DurationError> {
    let (date, time) = match rest.split_once('T') {
        Some((_, "")) => return Err(DurationError::Syntax),
        Some((date, time)) => (date, time),
        None => (rest, ""),
    };
    if date.is_empty() && time.is_empty() {
        return Err(DurationError::Syntax);
    }
    let days = if date.is_empty() {
        0
    } else {
        parse_units(date, &[('D', DAY)])?
    };
    let clock = if time.is_empty() {
        0
    } else {
        parse_units(time, &[('H', HOUR), ('M', MINUTE), ('S', 1)])?
    };
    days.checked_add(clock).ok_or(DurationError::Overflow)
}

/// `<digits><unit>` pairs, units in the order of `units`, each at most once.
fn parse_units(text: &str, units: &[(char, u64)]) -> Result<u64, DurationError> {
    let mut total: u64 = 0;
    let mut allowed = units;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::Syntax);
        }
        let (number, tail) = rest.split_at(digits);
        let mut chars = tail.chars();
        let unit = chars.next().ok_or(DurationError::Syntax)?;
        let position = allowed
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or(DurationError::Syntax)?;
        let (_, seconds) = allowed.get(position).ok_or(DurationError::Syntax)?;
        let value: u64 = number.parse().map_err(|_| DurationError::Overflow)?;
        let part = value.checked_mul(*seconds).ok_or(DurationError::Overflow)?;
        total = total.checked_add(part).ok_or(DurationError::Overflow)?;
        allowed = allowed.get(position + 1..).unwrap_or_default();
        rest = chars.as_str();
    }
    Ok(total)
}

/// The short form [`parse_duration`] reads back: `1d2h`, `1h30m`, `15m`, `45s`, `0s`.
pub fn format_duration(seconds: u64) -> String {
    if seconds == 0 {
        return String::from("0s");
    }
    let mut out = String::new();
    let mut rest = seconds;
    for (unit, size) in [('d', DAY), ('h', HOUR), ('m', MINUTE), ('s', 1)] {
        let count = rest / size;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push(unit);
            rest %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        let cases: &[(&str, Result<u64, DurationError>)] = &[
            ("15m", Ok(900)),
            ("1h", Ok(3600)),
            ("1h30m", Ok(5400)),
            ("8h", Ok(28_800)),
            ("1d", Ok(86_400)),
            ("1d2h3m4s", Ok(93_784)),
            ("90s", Ok(90)),
            ("0s", Ok(0)),
            ("PT1H", Ok(3600)),
            ("PT15M", Ok(900)),
            ("PT1H30M", Ok(5400)),
            ("PT45S", Ok(45)),
            ("P1D", Ok(86_400)),
            ("P1DT12H", Ok(129_600)),
            ("", Err(DurationError::Empty)),
            ("2x", Err(DurationError::Syntax)),
            ("1", Err(DurationError::Syntax)),
            ("h", Err(DurationError::Syntax)),
            ("30m1h", Err(DurationError::Syntax)),
            ("1h1h", Err(DurationError::Syntax)),
            ("1H", Err(DurationError::Syntax)),
            (" 1h", Err(DurationError::Syntax)),
            ("1h ", Err(DurationError::Syntax)),
            ("-1h", Err(DurationError::Syntax)),
            ("+1h", Err(DurationError::Syntax)),
            ("1.5h", Err(DurationError::Syntax)),
            ("1w", Err(DurationError::Syntax)),
            ("１h", Err(DurationError::Syntax)),
            ("P", Err(DurationError::Syntax)),
            ("PT", Err(DurationError::Syntax)),
            ("P1DT", Err(DurationError::Syntax)),
            ("P1H", Err(DurationError::Syntax)),
            ("PT1D", Err(DurationError::Syntax)),
            ("P1W", Err(DurationError::Syntax)),
            ("P1Y", Err(DurationError::Syntax)),
            ("pt1h", Err(DurationError::Syntax)),
            ("PT1M1H", Err(DurationError::Syntax)),
            ("99999999999999999999s", Err(DurationError::Overflow)),
            ("999999999999999d", Err(DurationError::Overflow)),
            ("213503982334601d1s", Ok(213_503_982_334_601 * 86_400 + 1)),
            ("213503982334602d", Err(DurationError::Overflow)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn durations_format_and_read_back() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (900, "15m"),
            (3600, "1h"),
            (5400, "1h30m"),
            (86_400, "1d"),
            (93_784, "1d2h3m4s"),
            (2_592_000, "30d"),
        ];
        for (seconds, text) in cases {
            assert_eq!(format_duration(seconds), text);
            assert_eq!(parse_duration(text), Ok(seconds), "{text}");
        }
    }
}
