//! jq transforms, through [jaq](https://github.com/01mf02/jaq), a jq
//! implementation in pure Rust.
//!
//! A program is compiled once with [`compile`] (at start-up, so that a bad
//! program in the configuration is rejected with a readable message) and then
//! run any number of times with [`JqProgram::run`], from several tasks at once
//! if need be: [`JqProgram`] is `Send + Sync`, so it can be shared behind an
//! `Arc`.
//!
//! The program sees jq's usual builtins: jaq's core and standard library
//! (`map`, `select`, `length`, `keys`, `to_entries`, `ascii_downcase`,
//! `ltrimstr`, `test`, `@base64`, dates, math, ...) and its JSON functions
//! (`tojson`, `fromjson`, `tostring`, ...). Module imports are not supported.
//!
//! Values cross between `serde_json` and jaq directly, without JSON text in
//! between. On the way out, numbers follow jq's output: a float with an
//! integral value (`4 / 2`) becomes an integer, `NaN` becomes `null` and the
//! infinities become the largest finite floats; byte strings become (lossy
//! UTF-8) strings, and an object key that is not a string becomes its JSON
//! text.

use std::fmt;
use std::ops::Range;

use jaq_core::compile::Undefined;
use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data::JustLut};
use jaq_json::{Num, Rc, Val};
use serde_json::{Number, Value};

/// The kind of data the compiled filter runs on: jaq's JSON values.
type Data = JustLut<Val>;

/// How much of a token or of the remaining input an error message quotes.
const SNIPPET_CHARS: usize = 24;

/// Why a jq program could not be compiled or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JqError {
    /// The program does not parse, or names something that is not defined.
    /// The message says what is wrong and where, as byte offsets into the
    /// program and as a line and column.
    #[error("invalid jq program: {message}")]
    Compile {
        /// What is wrong, and where.
        message: String,
    },
    /// The program failed on an input: `error(...)`, a type error such as
    /// indexing a number, or `halt`.
    #[error("jq program failed: {message}")]
    Runtime {
        /// The error jq raised: the text of a string error, else the JSON
        /// text of the error value.
        message: String,
    },
}

/// A compiled jq program, ready to run on JSON values.
///
/// It is `Send + Sync`: share one behind an `Arc` among tasks. Every
/// [`run`](Self::run) is independent of the others.
pub struct JqProgram {
    /// The source text, kept for `Debug` and [`source`](Self::source).
    source: String,
    /// The compiled filter.
    filter: jaq_core::Filter<Data>,
}

impl fmt::Debug for JqProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JqProgram")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Compiles a jq program with jq's standard builtins.
///
/// # Errors
///
/// [`JqError::Compile`] when the program does not lex or parse (an unclosed
/// bracket, a missing `then`, ...) or uses an undefined function or variable;
/// the message names the problem and its position, for example
/// ``undefined function `foo/1` at 0..3 (line 1, column 1)``.
pub fn compile(source: &str) -> Result<JqProgram, JqError> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    // No `env`: a program from the configuration must not be able to copy
    // the service's environment (secrets included) into its output.
    let funs = jaq_core::funs::<Data>()
        .chain(jaq_std::funs::<Data>())
        .chain(jaq_json::funs::<Data>())
        .filter(|f| f.0 != "env");

    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(
            &arena,
            File {
                code: source,
                path: (),
            },
        )
        .map_err(|errors| JqError::Compile {
            message: join(
                errors
                    .iter()
                    .flat_map(|(file, e)| load_messages(file.code, e)),
            ),
        })?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| JqError::Compile {
            message: join(errors.iter().flat_map(|(file, undefined)| {
                undefined
                    .iter()
                    .map(|(name, what)| undefined_message(file.code, name, what))
            })),
        })?;
    Ok(JqProgram {
        source: source.to_owned(),
        filter,
    })
}

impl JqProgram {
    /// The program's source text, as given to [`compile`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the program on `input` and returns all its outputs, in order: jq
    /// may emit none (`empty`, `select(false)`), one, or many (`.[]`).
    ///
    /// # Errors
    ///
    /// [`JqError::Runtime`] when the program raises an error (outputs emitted
    /// before it are dropped), or calls `halt`.
    pub fn run(&self, input: Value) -> Result<Vec<Value>, JqError> {
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        self.filter
            .id
            .run((ctx, to_val(input)))
            .map(|output| output.map(from_val).map_err(runtime_error))
            .collect()
    }
}

/// Turns a jaq exception into a runtime error. Unlike
/// `jaq_core::unwrap_valr`, a `halt` does not exit the process.
fn runtime_error(exn: jaq_core::Exn<'_, Val>) -> JqError {
    let message = match exn.get_err() {
        Ok(error) => match error.into_val() {
            Val::TStr(text) | Val::BStr(text) => String::from_utf8_lossy(&text).into_owned(),
            other => other.to_string(),
        },
        Err(exn) => match exn.get_halt() {
            Ok(code) => format!("the program called halt (exit code {code})"),
            Err(exn) => format!("internal jaq error: {exn:?}"),
        },
    };
    JqError::Runtime { message }
}

/// A `serde_json` value as a jaq value.
fn to_val(value: Value) -> Val {
    match value {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Val::Num(Num::from_integral(i))
            } else if let Some(u) = n.as_u64() {
                Val::Num(Num::from_integral(u))
            } else {
                n.as_f64().map_or(Val::Null, |f| Val::Num(Num::Float(f)))
            }
        }
        Value::String(s) => Val::from(s),
        Value::Array(items) => items.into_iter().map(to_val).collect(),
        Value::Object(fields) => Val::obj(
            fields
                .into_iter()
                .map(|(k, v)| (Val::from(k), to_val(v)))
                .collect(),
        ),
    }
}

/// A jaq value as a `serde_json` value.
fn from_val(value: Val) -> Value {
    match value {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(b),
        Val::Num(n) => from_num(n),
        Val::TStr(text) | Val::BStr(text) => {
            Value::String(String::from_utf8_lossy(&text).into_owned())
        }
        Val::Arr(items) => Value::Array(
            Rc::unwrap_or_clone(items)
                .into_iter()
                .map(from_val)
                .collect(),
        ),
        Val::Obj(fields) => Value::Object(
            Rc::unwrap_or_clone(fields)
                .into_iter()
                .map(|(k, v)| (key_text(k), from_val(v)))
                .collect(),
        ),
    }
}

/// An object key as text: a string as is, anything else as its JSON text.
fn key_text(key: Val) -> String {
    match key {
        Val::TStr(text) | Val::BStr(text) => String::from_utf8_lossy(&text).into_owned(),
        other => other.to_string(),
    }
}

/// A jaq number as a JSON number, the way jq prints it.
fn from_num(n: Num) -> Value {
    match n {
        Num::Int(i) => Value::Number(Number::from(i)),
        Num::Float(f) => from_float(f),
        // Big integers and decimal literals: their text, else a float.
        Num::BigInt(_) | Num::Dec(_) => {
            let text = n.to_string();
            match text.parse::<Number>() {
                Ok(number) => Value::Number(number),
                Err(_) => text.parse::<f64>().map_or(Value::Null, from_float),
            }
        }
    }
}

/// A float as jq prints it: integral values as integers, `NaN` as `null`,
/// the infinities as the largest finite floats.
fn from_float(f: f64) -> Value {
    /// Integers up to 2^53 are exact as floats.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if f.is_nan() {
        Value::Null
    } else if f.is_infinite() {
        Number::from_f64(f64::MAX.copysign(f)).map_or(Value::Null, Value::Number)
    } else if f.fract() == 0.0 && f.abs() <= EXACT {
        // Exact: `f` is integral and within 2^53 in magnitude.
        Value::Number(Number::from(f as i64))
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// The messages of one file's lex, parse or module-loading errors.
fn load_messages(code: &str, error: &load::Error<&str>) -> Vec<String> {
    match error {
        load::Error::Lex(errors) => errors
            .iter()
            .map(|(expected, found)| match expected {
                load::lex::Expect::Delim(open) => format!(
                    "unclosed `{open}` {}: expected {}",
                    position(code, open),
                    expected.as_str()
                ),
                _ => {
                    // `found` is the rest of the input: point at its first
                    // character.
                    let first = &found[..found.chars().next().map_or(0, char::len_utf8)];
                    let at = position(code, first);
                    match expected {
                        load::lex::Expect::Token => {
                            format!("unexpected character {} {at}", quote(first))
                        }
                        _ => format!(
                            "expected {}, found {} {at}",
                            expected.as_str(),
                            quote(found)
                        ),
                    }
                }
            })
            .collect(),
        load::Error::Parse(errors) => errors
            .iter()
            .map(|(expected, found)| {
                let at = position(code, found);
                let found = quote(found);
                match expected {
                    load::parse::Expect::Nothing => format!("unexpected {found} {at}"),
                    load::parse::Expect::Just(token) => {
                        format!("expected `{token}`, found {found} {at}")
                    }
                    _ => format!("expected {}, found {found} {at}", expected.as_str()),
                }
            })
            .collect(),
        load::Error::Io(errors) => errors
            .iter()
            .map(|(path, why)| {
                format!(
                    "cannot load module `{path}` {}: {why}",
                    position(code, path)
                )
            })
            .collect(),
    }
}

/// The message of an undefined name found by the compiler.
fn undefined_message(code: &str, name: &str, what: &Undefined) -> String {
    let at = position(code, name);
    match what {
        Undefined::Filter(arity) => format!("undefined function `{name}/{arity}` {at}"),
        other => format!("undefined {} `{name}` {at}", other.as_str()),
    }
}

/// `found` quoted for a message (cut to a few characters), or "end of input".
fn quote(found: &str) -> String {
    if found.is_empty() {
        return "end of input".to_owned();
    }
    let mut chars = found.char_indices();
    match chars.nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("`{}...`", &found[..cut]),
        None => format!("`{found}`"),
    }
}

/// Where `part` (a slice of `code`) is: "at 4..7 (line 1, column 5)".
fn position(code: &str, part: &str) -> String {
    match span(code, part) {
        Some(range) => {
            let before = &code[..range.start];
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = code[line_start..range.start].chars().count() + 1;
            format!(
                "at {}..{} (line {line}, column {column})",
                range.start, range.end
            )
        }
        None => "at an unknown position".to_owned(),
    }
}

/// The byte range of `part` in `code`, when `part` is a slice of it.
fn span(code: &str, part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(code.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= code.len() && code.is_char_boundary(start) && code.is_char_boundary(end))
        .then_some(start..end)
}

/// Joins messages with "; ", or says that there were none.
fn join(messages: impl Iterator<Item = String>) -> String {
    let messages: Vec<String> = messages.collect();
    if messages.is_empty() {
        "unknown error".to_owned()
    } else {
        messages.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    /// Runs `program` on `input`, expecting success.
    fn jq(program: &str, input: Value) -> Vec<Value> {
        compile(program)
            .expect("program compiles")
            .run(input)
            .expect("program runs")
    }

    fn compile_error(program: &str) -> String {
        match compile(program) {
            Err(JqError::Compile { message }) => message,
            other => panic!("expected a compile error for {program:?}, got {other:?}"),
        }
    }

    fn runtime_error(program: &str, input: Value) -> String {
        match compile(program).expect("program compiles").run(input) {
            Err(JqError::Runtime { message }) => message,
            other => panic!("expected a runtime error for {program:?}, got {other:?}"),
        }
    }

    #[test]
    fn program_is_send_and_sync() {
        assert_send_sync::<JqProgram>();
        assert_send_sync::<JqError>();
    }

    #[test]
    fn shared_between_threads() {
        let program = Arc::new(compile(".n * 2").expect("compiles"));
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let program = Arc::clone(&program);
                std::thread::spawn(move || program.run(json!({ "n": n })))
            })
            .collect();
        for (n, handle) in handles.into_iter().enumerate() {
            let out = handle.join().expect("thread").expect("runs");
            assert_eq!(out, vec![json!(n * 2)]);
        }
    }

    #[test]
    fn identity() {
        let input = json!({"a": [1, 2.5, "x", null, true], "b": {"c": -3}});
        assert_eq!(jq(".", input.clone()), vec![input]);
    }

    #[test]
    fn field_access() {
        let input = json!({"payload": {"code": "E42"}});
        assert_eq!(jq(".payload.code", input), vec![json!("E42")]);
        assert_eq!(jq(".missing", json!({})), vec![Value::Null]);
    }

    #[test]
    fn object_construction() {
        let input = json!({"items": [1, 2, 3]});
        assert_eq!(
            jq("{ok: true, n: (.items | length)}", input),
            vec![json!({"ok": true, "n": 3})]
        );
    }

    #[test]
    fn many_outputs() {
        assert_eq!(
            jq(".[]", json!([1, "two", {"three": 3}])),
            vec![json!(1), json!("two"), json!({"three": 3})]
        );
    }

    #[test]
    fn no_output() {
        assert_eq!(jq("empty", json!({"a": 1})), Vec::<Value>::new());
    }

    #[test]
    fn select() {
        let input = json!([{"n": 1}, {"n": 2}, {"n": 3}]);
        assert_eq!(
            jq(".[] | select(.n > 1)", input),
            vec![json!({"n": 2}), json!({"n": 3})]
        );
        assert_eq!(jq("select(.n > 1)", json!({"n": 0})), Vec::<Value>::new());
    }

    #[test]
    fn string_functions() {
        assert_eq!(jq("ascii_downcase", json!("HeLLo")), vec![json!("hello")]);
        assert_eq!(
            jq(r#"ltrimstr("order.")"#, json!("order.created")),
            vec![json!("created")]
        );
        assert_eq!(jq("tostring", json!({"a": 1})), vec![json!(r#"{"a":1}"#)]);
        assert_eq!(jq("@base64", json!("hi")), vec![json!("aGk=")]);
        assert_eq!(jq(r#"test("^a.c$")"#, json!("abc")), vec![json!(true)]);
    }

    #[test]
    fn map_and_entries() {
        assert_eq!(jq("map(.+1)", json!([1, 2, 3])), vec![json!([2, 3, 4])]);
        assert_eq!(
            jq("to_entries", json!({"a": 1, "b": "x"})),
            vec![json!([{"key": "a", "value": 1}, {"key": "b", "value": "x"}])]
        );
        assert_eq!(jq("keys", json!({"b": 1, "a": 2})), vec![json!(["a", "b"])]);
    }

    #[test]
    fn numbers_come_out_as_jq_prints_them() {
        assert_eq!(jq("4 / 2", Value::Null), vec![json!(2)]);
        assert_eq!(jq("1 / 4", Value::Null), vec![json!(0.25)]);
        assert_eq!(jq(".", json!(u64::MAX)), vec![json!(u64::MAX)]);
        assert_eq!(jq(".", json!(i64::MIN)), vec![json!(i64::MIN)]);
        assert_eq!(jq("1.5", Value::Null), vec![json!(1.5)]);
        assert_eq!(jq("nan", Value::Null), vec![Value::Null]);
        assert_eq!(jq("infinite", Value::Null), vec![json!(f64::MAX)]);
    }

    #[test]
    fn parse_error_names_the_problem() {
        let message = compile_error(".[");
        assert!(message.contains("unclosed `[`"), "{message}");
        assert!(message.contains("at 1..2"), "{message}");

        let message = compile_error("{a:}");
        assert!(
            message.contains("expected term, found `}` at 3..4"),
            "{message}"
        );

        let message = compile_error("1 +* 2");
        assert!(message.contains("unexpected `+*` at 2..4"), "{message}");

        let message = compile_error("ä | f");
        assert!(
            message.contains("unexpected character `ä` at 0..2"),
            "{message}"
        );

        let message = compile_error("if . then 1");
        assert!(message.contains("expected else or end"), "{message}");
        assert!(message.contains("end of input"), "{message}");
    }

    #[test]
    fn undefined_function_is_named() {
        let message = compile_error("foo(1)");
        assert!(message.contains("undefined function `foo/1`"), "{message}");
        assert!(message.contains("at 0..3 (line 1, column 1)"), "{message}");

        let message = compile_error(".a |\n  bar");
        assert!(
            message.contains("`bar/0` at 7..10 (line 2, column 3)"),
            "{message}"
        );

        let message = compile_error("$nope");
        assert!(message.contains("undefined variable"), "{message}");
        assert!(message.contains("nope"), "{message}");
    }

    #[test]
    fn error_display_says_which_kind() {
        let error = compile("foo").expect_err("undefined");
        assert!(
            error.to_string().starts_with("invalid jq program: "),
            "{error}"
        );
    }

    #[test]
    fn runtime_errors() {
        let message = runtime_error(".a.b", json!({"a": 5}));
        assert!(message.contains("cannot index 5"), "{message}");

        let message = runtime_error(r#"error("boom")"#, Value::Null);
        assert_eq!(message, "boom");

        let message = runtime_error(r#"error({"code": 7})"#, Value::Null);
        assert!(message.contains("\"code\""), "{message}");
    }

    #[test]
    fn halt_is_an_error_not_an_exit() {
        let message = runtime_error("halt", json!(1));
        assert!(message.contains("halt"), "{message}");
    }

    #[test]
    fn errors_can_be_caught() {
        assert_eq!(
            jq(r#"try error("x") catch ("caught " + .)"#, Value::Null),
            vec![json!("caught x")]
        );
        assert_eq!(jq(".a.b?", json!({"a": 5})), Vec::<Value>::new());
    }

    #[test]
    fn the_environment_is_not_reachable() {
        let err = compile("env").unwrap_err();
        assert!(matches!(err, JqError::Compile { .. }), "{err:?}");
        assert!(compile("$ENV").is_err());
    }
}
