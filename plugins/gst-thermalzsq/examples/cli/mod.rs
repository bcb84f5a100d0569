//! The command line as the examples read it: flags with a value after them and bare
//! arguments, in order; a usage error is one line on stderr and exit status 2.
#![allow(dead_code)] // each example uses its own subset

use std::fmt::Display;
use std::process::ExitCode;
use std::str::FromStr;

/// One argument, with the value after it at hand when it is a flag that takes one.
pub struct Arg<'a> {
    pub name: String,
    rest: &'a mut std::iter::Skip<std::env::Args>,
}

impl Arg<'_> {
    /// The value after this flag.
    pub fn value(&mut self) -> Result<String, String> {
        self.rest
            .next()
            .ok_or_else(|| format!("{} needs a value", self.name))
    }

    /// The value after this flag, parsed.
    pub fn parse<T: FromStr>(&mut self) -> Result<T, String>
    where
        T::Err: Display,
    {
        let v = self.value()?;
        v.parse().map_err(|e| format!("{} {v}: {e}", self.name))
    }

    /// The value after this flag as `WxH`.
    pub fn size(&mut self) -> Result<(u32, u32), String> {
        let v = self.value()?;
        let bad = |e: &dyn Display| format!("{} {v}: {e} (expected WxH)", self.name);
        let (w, h) = v.split_once('x').ok_or_else(|| bad(&"no x"))?;
        Ok((
            w.parse().map_err(|e| bad(&e))?,
            h.parse().map_err(|e| bad(&e))?,
        ))
    }
}

/// Calls `each` on every argument of the command line, in order.
pub fn each(mut each: impl FnMut(Arg) -> Result<(), String>) -> Result<(), String> {
    let mut rest = std::env::args().skip(1);
    while let Some(name) = rest.next() {
        each(Arg {
            name,
            rest: &mut rest,
        })?;
    }
    Ok(())
}

/// Says why the command line is wrong; the exit status of a usage error.
pub fn usage_error(why: &str) -> ExitCode {
    eprintln!("{why}");
    ExitCode::from(2)
}
