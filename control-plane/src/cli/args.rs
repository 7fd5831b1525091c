//! The command table's types and the parser that reads a command line against them: every
//! option a command accepts is an [`OptionSpec`] of its [`CommandSpec`], so what is parsed and
//! what `meshgate help` prints come from the same entries (`table.rs`).

use super::err::CliError;
use super::{CliEnv, Command};

/// One command (or one form of a command) of the `meshgate` command line.
pub(super) struct CommandSpec {
    /// The words that name it: `["snapshot", "build"]`.
    pub words: &'static [&'static str],
    /// A switch that selects this form of a command whose other form has the same words
    /// (`token --backstage`).
    pub form: Option<&'static str>,
    /// What follows the words in the usage line.
    pub synopsis: &'static str,
    /// What it does; each line of text is one line of the help.
    pub about: &'static str,
    /// Said after the heading of its options (`(exit 0 allow, 1 deny)`).
    pub note: &'static str,
    /// The operands it takes, as the synopsis names them (`FILE...`); `None`: no operand.
    pub operands: Option<&'static str>,
    /// At most one operand (`FILE|URL`) rather than any number (`FILE...`).
    pub single_operand: bool,
    pub options: &'static [OptionSpec],
    /// Reads the arguments after the words into the command to run. Pure: nothing is read
    /// or written here, so the table can be checked without running anything.
    pub parse: fn(&mut Args<'_>, &CliEnv) -> Result<Command, CliError>,
}

/// One `--option` of a command.
pub(super) struct OptionSpec {
    /// `--config`.
    pub name: &'static str,
    /// The value's name in the help (`FILE`); `None` for a switch, which takes no value.
    pub value: Option<&'static str>,
    /// What it does; each line of text is one line of the help.
    pub help: &'static str,
}

impl CommandSpec {
    /// The words, then the form's switch: `snapshot build`, `token --backstage`.
    pub fn name(&self) -> String {
        let mut name = self.words.join(" ");
        if let Some(form) = self.form {
            name.push(' ');
            name.push_str(form);
        }
        name
    }

    pub fn option(&self, name: &str) -> Option<&'static OptionSpec> {
        self.options.iter().find(|option| option.name == name)
    }
}

/// One argument read against a [`CommandSpec`].
pub(super) enum Arg<'a> {
    /// An option of the command's table, with its value when it takes one.
    Flag(Flag<'a>),
    /// An operand, for a command that takes some.
    Operand(&'a str),
}

/// An option of the table, as given.
pub(super) struct Flag<'a> {
    /// The table's name for it, `--config`.
    pub name: &'static str,
    value: Option<&'a str>,
}

impl<'a> Flag<'a> {
    /// The value of an option that takes one (the parser has read it).
    pub fn value(&self) -> Result<&'a str, CliError> {
        self.value.ok_or_else(|| CliError::MissingValue {
            flag: self.name.to_owned(),
        })
    }

    pub fn seconds(&self) -> Result<i64, CliError> {
        let value = self.value()?;
        value
            .trim()
            .parse()
            .map_err(|source| CliError::InvalidNumber {
                flag: self.name.to_owned(),
                value: value.to_owned(),
                source,
            })
    }

    /// An option the command's parser does not handle although the table lists it: only a
    /// table and a parser that disagree give this, and the table test catches it.
    pub fn unhandled(&self) -> CliError {
        CliError::UnknownFlag {
            flag: self.name.to_owned(),
        }
    }
}

/// Reads `--flag value`, `--flag=value`, switches and operands against one command's table.
pub(super) struct Args<'a> {
    spec: &'static CommandSpec,
    items: std::slice::Iter<'a, String>,
    operands: usize,
}

impl<'a> Args<'a> {
    pub fn new(spec: &'static CommandSpec, args: &'a [String]) -> Args<'a> {
        Args {
            spec,
            items: args.iter(),
            operands: 0,
        }
    }

    /// The next argument. An option not in the table, a value given to a switch, a missing
    /// value and an operand the command does not take are errors. A value is the next
    /// argument even if it starts with `-`, so `--nbf-offset -30` works.
    pub fn next(&mut self) -> Result<Option<Arg<'a>>, CliError> {
        let Some(arg) = self.items.next() else {
            return Ok(None);
        };
        if !arg.starts_with("--") || arg == "--" {
            let takes_one_more =
                self.spec.operands.is_some() && (!self.spec.single_operand || self.operands == 0);
            if takes_one_more && arg != "--" {
                self.operands += 1;
                return Ok(Some(Arg::Operand(arg)));
            }
            return Err(CliError::UnexpectedArgument { arg: arg.clone() });
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (arg.as_str(), None),
        };
        let option = self
            .spec
            .option(name)
            .ok_or_else(|| CliError::UnknownFlag {
                flag: name.to_owned(),
            })?;
        let value = match (option.value, inline) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(CliError::UnexpectedValue {
                    flag: option.name.to_owned(),
                })
            }
            (Some(_), Some(value)) => Some(value),
            (Some(_), None) => Some(self.items.next().map(String::as_str).ok_or_else(|| {
                CliError::MissingValue {
                    flag: option.name.to_owned(),
                }
            })?),
        };
        Ok(Some(Arg::Flag(Flag {
            name: option.name,
            value,
        })))
    }
}

impl<'a> Args<'a> {
    /// The next option, for a command that takes no operand.
    pub fn next_flag(&mut self) -> Result<Option<Flag<'a>>, CliError> {
        match self.next()? {
            None => Ok(None),
            Some(Arg::Flag(flag)) => Ok(Some(flag)),
            Some(Arg::Operand(operand)) => Err(CliError::UnexpectedArgument {
                arg: operand.to_owned(),
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
