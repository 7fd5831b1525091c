//! A small cursor over `--flag value` / `--flag=value` arguments; the commands need no more.

use super::err::CliError;

pub(super) struct Flags<'a> {
    items: std::slice::Iter<'a, String>,
}

/// One `--name` argument, with the value if it was written as `--name=value`.
pub(super) struct Flag<'a> {
    pub name: &'a str,
    inline: Option<&'a str>,
}

impl<'a> Flags<'a> {
    pub fn new(args: &'a [String]) -> Flags<'a> {
        Flags { items: args.iter() }
    }

    /// The next flag; positional arguments are errors because no command takes any.
    pub fn next_flag(&mut self) -> Result<Option<Flag<'a>>, CliError> {
        let Some(arg) = self.items.next() else {
            return Ok(None);
        };
        if !arg.starts_with("--") || arg == "--" {
            return Err(CliError::UnexpectedArgument { arg: arg.clone() });
        }
        Ok(Some(match arg.split_once('=') {
            Some((name, value)) => Flag {
                name,
                inline: Some(value),
            },
            None => Flag {
                name: arg,
                inline: None,
            },
        }))
    }

    /// The flag's value: inline, or the next argument even if it starts with `-`, so that
    /// negative offsets such as `--nbf-offset -30` work.
    pub fn value(&mut self, flag: &Flag<'a>) -> Result<&'a str, CliError> {
        if let Some(value) = flag.inline {
            return Ok(value);
        }
        self.items
            .next()
            .map(String::as_str)
            .ok_or_else(|| CliError::MissingValue {
                flag: flag.name.to_owned(),
            })
    }

    pub fn seconds(&mut self, flag: &Flag<'a>) -> Result<i64, CliError> {
        let value = self.value(flag)?;
        value
            .trim()
            .parse()
            .map_err(|source| CliError::InvalidNumber {
                flag: flag.name.to_owned(),
                value: value.to_owned(),
                source,
            })
    }

    /// For switches: `--no-exp=yes` is a mistake worth reporting.
    pub fn switch(&self, flag: &Flag<'a>) -> Result<bool, CliError> {
        match flag.inline {
            None => Ok(true),
            Some(_) => Err(CliError::UnexpectedValue {
                flag: flag.name.to_owned(),
            }),
        }
    }
}

/// `a,b, c` → `["a", "b", "c"]`, dropping empty items.
pub(super) fn comma_list(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
}
