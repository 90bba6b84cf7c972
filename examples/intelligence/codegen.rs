//! Seed 000's four codegen intelligence handlers: what they compute from
//! submitted Python code, and the registry that names them for
//! `config/intelligence.toml`'s routes.
//!
//! The analysis is line-based (strings and comments blanked out, blocks
//! found by indentation), which is enough for naming, structure, size and
//! complexity figures without a Python parser.

use kafka_actors::handler::{HandlerRegistry, typed};
use serde::{Deserialize, Serialize};

/// The payload of every codegen request (seed 004 sends the code as
/// `code_content` or `code`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CodeRequest {
    /// The Python source to look at.
    #[serde(default, alias = "code_content")]
    pub code: Option<String>,
    /// ONEX node type the code claims to be: effect, compute, reducer or
    /// orchestrator.
    #[serde(default)]
    pub node_type: Option<String>,
}

/// The registry with the four handlers next to the built-ins:
/// `validate`, `analyze`, `pattern` and `mixin`.
pub fn registry() -> HandlerRegistry {
    let mut registry = HandlerRegistry::with_builtins();
    registry.register(
        "validate",
        typed(|_ctx, request: CodeRequest| async move { Ok(Some(validate(&request))) }),
    );
    registry.register(
        "analyze",
        typed(|_ctx, request: CodeRequest| async move { Ok(Some(analyze(&request))) }),
    );
    registry.register(
        "pattern",
        typed(|_ctx, request: CodeRequest| async move { Ok(Some(patterns(&request))) }),
    );
    registry.register(
        "mixin",
        typed(|_ctx, request: CodeRequest| async move { Ok(Some(mixins(&request))) }),
    );
    registry
}

// ---------------------------------------------------------------------------
// Reading the source

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Blank,
    Comment,
    /// Only string text, such as a docstring.
    Text,
    Code,
}

#[derive(Debug, Clone)]
struct Line {
    /// 1-based.
    number: usize,
    indent: usize,
    /// The code with string contents and comments removed.
    code: String,
    raw: String,
    kind: LineKind,
}

/// Splits `source` into lines, blanking strings (including triple-quoted
/// ones across lines) and dropping comments.
fn lines(source: &str) -> Vec<Line> {
    let mut open_triple: Option<char> = None;
    source
        .lines()
        .enumerate()
        .map(|(i, raw)| {
            let started_in_text = open_triple.is_some();
            let (code, had_string) = strip(raw, &mut open_triple);
            let indent = raw.len() - raw.trim_start().len();
            let kind = if raw.trim().is_empty() {
                LineKind::Blank
            } else if !code.trim().is_empty() {
                LineKind::Code
            } else if had_string || started_in_text {
                LineKind::Text
            } else {
                LineKind::Comment
            };
            Line {
                number: i + 1,
                indent,
                code,
                raw: raw.to_owned(),
                kind,
            }
        })
        .collect()
}

/// One line's code without string contents or comment; whether it had any
/// string. `open_triple` carries a triple-quoted string over lines.
fn strip(raw: &str, open_triple: &mut Option<char>) -> (String, bool) {
    let chars: Vec<char> = raw.chars().collect();
    let mut code = String::new();
    let mut had_string = false;
    let mut i = 0;
    let triple_at = |i: usize, q: char| chars.get(i..i + 3) == Some(&[q, q, q][..]);
    while i < chars.len() {
        if let Some(q) = *open_triple {
            had_string = true;
            if chars[i] == '\\' {
                i += 2;
            } else if triple_at(i, q) {
                *open_triple = None;
                i += 3;
            } else {
                i += 1;
            }
            continue;
        }
        match chars[i] {
            '#' => break,
            q @ ('"' | '\'') if triple_at(i, q) => {
                *open_triple = Some(q);
                had_string = true;
                i += 3;
            }
            q @ ('"' | '\'') => {
                had_string = true;
                i += 1;
                while i < chars.len() && chars[i] != q {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                code.push_str("\"\"");
            }
            c => {
                code.push(c);
                i += 1;
            }
        }
    }
    (code, had_string)
}

fn words(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Class,
    Function { is_async: bool },
}

/// A `class` or `def` with its header and body lines.
#[derive(Debug, Clone)]
struct Block {
    kind: BlockKind,
    name: String,
    /// Base classes (classes) or the whole signature text (functions).
    signature: String,
    /// Index of the header line in `lines`.
    header: usize,
    /// Indices of the body's lines (up to the last non-blank one).
    body: std::ops::Range<usize>,
}

impl Block {
    fn has_docstring(&self, lines: &[Line]) -> bool {
        lines[self.body.clone()]
            .iter()
            .find(|l| !matches!(l.kind, LineKind::Blank | LineKind::Comment))
            .is_some_and(|l| l.kind == LineKind::Text)
    }

    fn length(&self, lines: &[Line]) -> usize {
        let last = self.body.end.max(self.header + 1) - 1;
        lines[last].number - lines[self.header].number + 1
    }

    fn is_public(&self) -> bool {
        !self.name.starts_with('_') || is_dunder(&self.name)
    }
}

fn is_dunder(name: &str) -> bool {
    name.len() > 4 && name.starts_with("__") && name.ends_with("__")
}

/// Every class and function, in source order.
fn blocks(lines: &[Line]) -> Vec<Block> {
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.kind != LineKind::Code {
            continue;
        }
        let text = line.code.trim_start();
        let (kind, rest) = if let Some(rest) = text.strip_prefix("class ") {
            (BlockKind::Class, rest)
        } else if let Some(rest) = text.strip_prefix("async def ") {
            (BlockKind::Function { is_async: true }, rest)
        } else if let Some(rest) = text.strip_prefix("def ") {
            (BlockKind::Function { is_async: false }, rest)
        } else {
            continue;
        };
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        // The signature may span lines: up to the line that closes its
        // brackets.
        let mut signature = String::new();
        let mut depth = 0i32;
        let mut end = i;
        for (j, l) in lines.iter().enumerate().skip(i) {
            signature.push_str(l.code.trim());
            depth += bracket_delta(&l.code);
            end = j;
            if depth <= 0 {
                break;
            }
        }
        let signature = match kind {
            BlockKind::Class => signature
                .split_once('(')
                .and_then(|(_, rest)| rest.rsplit_once(')'))
                .map(|(bases, _)| bases.to_owned())
                .unwrap_or_default(),
            BlockKind::Function { .. } => signature,
        };
        let mut body_end = end + 1;
        for (j, l) in lines.iter().enumerate().skip(end + 1) {
            match l.kind {
                LineKind::Blank => {}
                _ if l.indent > line.indent => body_end = j + 1,
                LineKind::Comment => {}
                _ => break,
            }
        }
        found.push(Block {
            kind,
            name,
            signature,
            header: i,
            body: end + 1..body_end,
        });
    }
    found
}

fn bracket_delta(code: &str) -> i32 {
    code.chars()
        .map(|c| match c {
            '(' | '[' | '{' => 1,
            ')' | ']' | '}' => -1,
            _ => 0,
        })
        .sum()
}

/// Decision points: 1 plus one per `if`, `elif`, `for`, `while`, `except`,
/// `case`, `and`, `or` (McCabe, as radon counts them for Python).
fn complexity(lines: &[Line]) -> usize {
    1 + lines
        .iter()
        .filter(|l| l.kind == LineKind::Code)
        .flat_map(|l| words(&l.code))
        .filter(|w| {
            matches!(
                *w,
                "if" | "elif" | "for" | "while" | "except" | "case" | "and" | "or"
            )
        })
        .count()
}

/// The deepest block nesting (a `def` in a `class` with an `if` inside is
/// 3 deep).
fn max_nesting(lines: &[Line]) -> usize {
    let mut open: Vec<usize> = Vec::new();
    let mut deepest = 0;
    let mut continuation = 0i32;
    for line in lines.iter().filter(|l| l.kind == LineKind::Code) {
        if continuation > 0 {
            continuation += bracket_delta(&line.code);
            if continuation <= 0 && line.code.trim_end().ends_with(':') {
                deepest = deepest.max(open.len());
            }
            continue;
        }
        while open.last().is_some_and(|&indent| indent >= line.indent) {
            open.pop();
        }
        deepest = deepest.max(open.len());
        continuation = bracket_delta(&line.code);
        let opens_block =
            line.code.trim_end().ends_with(':') || (continuation > 0 && starts_block(&line.code));
        if opens_block {
            open.push(line.indent);
            deepest = deepest.max(open.len());
        }
    }
    deepest
}

fn starts_block(code: &str) -> bool {
    let first = words(code).next().unwrap_or("");
    matches!(
        first,
        "def" | "async" | "class" | "if" | "elif" | "for" | "while" | "with" | "try" | "match"
    )
}

// ---------------------------------------------------------------------------
// Validate

/// How bad an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The code does not meet the standard; `is_valid` is false.
    Error,
    /// Should be fixed.
    Warning,
    /// Worth knowing.
    Info,
}

/// One finding, with the rule and the line it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// How bad.
    pub severity: Severity,
    /// Stable rule name, e.g. `naming.class`.
    pub rule: &'static str,
    /// What is wrong and what is expected.
    pub message: String,
    /// 1-based line, when the issue has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// The validate handler's response.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// No error-severity issue.
    pub is_valid: bool,
    /// 1.0 minus 0.25 per error, 0.05 per warning, 0.01 per info; at least 0.
    pub quality_score: f64,
    /// Every finding, in line order.
    pub issues: Vec<Issue>,
    /// The node type checked against, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
}

const NODE_TYPES: [&str; 4] = ["effect", "compute", "reducer", "orchestrator"];
const MAX_FUNCTION_LINES: usize = 50;
const MAX_COMPLEXITY: usize = 10;
const MAX_LINE_LENGTH: usize = 120;

fn is_pascal_case(name: &str) -> bool {
    let name = name.trim_start_matches('_');
    name.chars().next().is_some_and(char::is_uppercase) && name.chars().all(char::is_alphanumeric)
}

fn is_snake_case(name: &str) -> bool {
    is_dunder(name)
        || name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The ONEX node type a class name declares (`NodeUserFetchEffect` →
/// `effect`).
fn node_type_of(class_name: &str) -> Option<&'static str> {
    let rest = class_name.strip_prefix("Node")?;
    NODE_TYPES.into_iter().find(|t| {
        rest.strip_suffix(capitalised(t).as_str())
            .is_some_and(|middle| !middle.is_empty())
    })
}

/// Naming conventions (PascalCase classes, snake_case functions, ONEX
/// `Node<Name><Type>` node classes), structure (balanced brackets,
/// docstrings, type hints, bare `except:`, indentation) and size limits.
pub fn validate(request: &CodeRequest) -> Validation {
    let code = request.code.as_deref().unwrap_or("");
    let mut issues = Vec::new();
    let mut issue = |severity, rule, message: String, line| {
        issues.push(Issue {
            severity,
            rule,
            message,
            line,
        });
    };
    let lines = lines(code);
    let blocks = blocks(&lines);

    if code.trim().is_empty() {
        issue(
            Severity::Error,
            "code.missing",
            "no code submitted: set payload.code or payload.code_content".to_owned(),
            None,
        );
    }
    let depth: i32 = lines.iter().map(|l| bracket_delta(&l.code)).sum();
    if depth != 0 {
        issue(
            Severity::Error,
            "syntax.brackets",
            format!(
                "unbalanced brackets: {} more {} than {}",
                depth.abs(),
                if depth > 0 { "opening" } else { "closing" },
                if depth > 0 { "closing" } else { "opening" }
            ),
            None,
        );
    }
    let tabs = lines.iter().any(|l| l.raw.starts_with('\t'));
    let spaces = lines.iter().any(|l| l.raw.starts_with(' '));
    if tabs && spaces {
        issue(
            Severity::Error,
            "syntax.indentation",
            "indentation mixes tabs and spaces".to_owned(),
            lines
                .iter()
                .find(|l| l.raw.starts_with('\t'))
                .map(|l| l.number),
        );
    }

    match request.node_type.as_deref().map(str::to_ascii_lowercase) {
        None => {}
        Some(t) if !NODE_TYPES.contains(&t.as_str()) => issue(
            Severity::Error,
            "onex.node_type",
            format!("node_type `{t}` is not one of effect, compute, reducer, orchestrator"),
            None,
        ),
        Some(t) => {
            let suffix = capitalised(&t);
            let node = blocks
                .iter()
                .find(|b| b.kind == BlockKind::Class && node_type_of(&b.name) == Some(&*t));
            match node {
                None => issue(
                    Severity::Error,
                    "onex.node_name",
                    format!("node_type {t}: no class named Node<Name>{suffix}"),
                    None,
                ),
                Some(b) if !words(&b.signature).any(|w| w == format!("Node{suffix}")) => issue(
                    Severity::Warning,
                    "onex.node_base",
                    format!("class {} should derive from Node{suffix}", b.name),
                    Some(lines[b.header].number),
                ),
                Some(_) => {}
            }
        }
    }

    for b in &blocks {
        let at = Some(lines[b.header].number);
        match b.kind {
            BlockKind::Class => {
                if !is_pascal_case(&b.name) {
                    issue(
                        Severity::Warning,
                        "naming.class",
                        format!("class {} should be PascalCase", b.name),
                        at,
                    );
                }
            }
            BlockKind::Function { .. } => {
                if !is_snake_case(&b.name) {
                    issue(
                        Severity::Warning,
                        "naming.function",
                        format!("function {} should be snake_case", b.name),
                        at,
                    );
                }
                if b.is_public() && !is_dunder(&b.name) && !b.signature.contains("->") {
                    issue(
                        Severity::Warning,
                        "typing.return",
                        format!("function {} has no return type hint", b.name),
                        at,
                    );
                }
                let length = b.length(&lines);
                if length > MAX_FUNCTION_LINES {
                    issue(
                        Severity::Warning,
                        "size.function",
                        format!(
                            "function {} is {length} lines long (limit {MAX_FUNCTION_LINES})",
                            b.name
                        ),
                        at,
                    );
                }
                let c = complexity(&lines[b.header..b.body.end.max(b.header + 1)]);
                if c > MAX_COMPLEXITY {
                    issue(
                        Severity::Warning,
                        "complexity.function",
                        format!(
                            "function {} has cyclomatic complexity {c} (limit {MAX_COMPLEXITY})",
                            b.name
                        ),
                        at,
                    );
                }
            }
        }
        if b.is_public() && !is_dunder(&b.name) && !b.has_docstring(&lines) {
            issue(
                Severity::Warning,
                "structure.docstring",
                format!("{} has no docstring", b.name),
                at,
            );
        }
    }

    for l in &lines {
        if l.kind != LineKind::Code {
            continue;
        }
        let text = l.code.trim();
        if text == "except:" || text.starts_with("except:") {
            issue(
                Severity::Warning,
                "structure.bare_except",
                "bare `except:` also catches KeyboardInterrupt and SystemExit; name the exception"
                    .to_owned(),
                Some(l.number),
            );
        }
        if words(text).next() == Some("print") {
            issue(
                Severity::Info,
                "structure.print",
                "print() in node code; log instead".to_owned(),
                Some(l.number),
            );
        }
    }
    for l in &lines {
        let length = l.raw.chars().count();
        if length > MAX_LINE_LENGTH {
            issue(
                Severity::Info,
                "style.line_length",
                format!("line is {length} characters (limit {MAX_LINE_LENGTH})"),
                Some(l.number),
            );
        }
    }

    issues.sort_by_key(|i| i.line.unwrap_or(0));
    let count = |s| issues.iter().filter(|i| i.severity == s).count() as f64;
    let score = 1.0
        - 0.25 * count(Severity::Error)
        - 0.05 * count(Severity::Warning)
        - 0.01 * count(Severity::Info);
    Validation {
        is_valid: count(Severity::Error) == 0.0,
        quality_score: (score.max(0.0) * 100.0).round() / 100.0,
        issues,
        node_type: request.node_type.clone(),
    }
}

// ---------------------------------------------------------------------------
// Analyze

/// Line counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LineCounts {
    /// Every line.
    pub total: usize,
    /// Lines with code.
    pub code: usize,
    /// Comment lines.
    pub comment: usize,
    /// Lines that are only string text (docstrings).
    pub docstring: usize,
    /// Empty lines.
    pub blank: usize,
}

/// One function's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionFigures {
    /// Its name.
    pub name: String,
    /// Header line.
    pub line: usize,
    /// Lines from header to last body line.
    pub lines: usize,
    /// McCabe complexity.
    pub complexity: usize,
    /// `async def`.
    pub is_async: bool,
}

/// The analyze handler's response.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// Line counts.
    pub lines: LineCounts,
    /// Number of classes.
    pub classes: usize,
    /// Number of functions and methods.
    pub functions: usize,
    /// Imported modules (top-level names), in order.
    pub imports: Vec<String>,
    /// Module complexity (1 + every decision point).
    pub cyclomatic_complexity: usize,
    /// The most complex function's complexity (0 without functions).
    pub max_function_complexity: usize,
    /// Deepest block nesting.
    pub max_nesting_depth: usize,
    /// Per function.
    pub per_function: Vec<FunctionFigures>,
    /// `low` (complexity ≤ 5), `moderate` (≤ 10) or `high`, by the most
    /// complex function (or the module without functions).
    pub complexity_rating: &'static str,
}

/// Size and complexity figures.
pub fn analyze(request: &CodeRequest) -> Analysis {
    let code = request.code.as_deref().unwrap_or("");
    let lines = lines(code);
    let blocks = blocks(&lines);
    let count = |kind| lines.iter().filter(|l| l.kind == kind).count();
    let per_function: Vec<FunctionFigures> = blocks
        .iter()
        .filter_map(|b| match b.kind {
            BlockKind::Function { is_async } => Some(FunctionFigures {
                name: b.name.clone(),
                line: lines[b.header].number,
                lines: b.length(&lines),
                complexity: complexity(&lines[b.header..b.body.end.max(b.header + 1)]),
                is_async,
            }),
            BlockKind::Class => None,
        })
        .collect();
    let mut imports = Vec::new();
    for l in lines.iter().filter(|l| l.kind == LineKind::Code) {
        let text = l.code.trim();
        let modules: Vec<&str> = if let Some(rest) = text.strip_prefix("import ") {
            rest.split(',').collect()
        } else if let Some(rest) = text.strip_prefix("from ") {
            rest.split(" import").next().into_iter().collect()
        } else {
            continue;
        };
        for m in modules {
            let root = m.trim().split([' ', '.']).next().unwrap_or("");
            if !root.is_empty() && !imports.iter().any(|i| i == root) {
                imports.push(root.to_owned());
            }
        }
    }
    let module = complexity(&lines);
    let max_function = per_function.iter().map(|f| f.complexity).max().unwrap_or(0);
    let rated = if per_function.is_empty() {
        module
    } else {
        max_function
    };
    Analysis {
        lines: LineCounts {
            total: lines.len(),
            code: count(LineKind::Code),
            comment: count(LineKind::Comment),
            docstring: count(LineKind::Text),
            blank: count(LineKind::Blank),
        },
        classes: blocks.iter().filter(|b| b.kind == BlockKind::Class).count(),
        functions: per_function.len(),
        imports,
        cyclomatic_complexity: module,
        max_function_complexity: max_function,
        max_nesting_depth: max_nesting(&lines),
        complexity_rating: match rated {
            0..=5 => "low",
            6..=10 => "moderate",
            _ => "high",
        },
        per_function,
    }
}

// ---------------------------------------------------------------------------
// Pattern

/// A known pattern the code matches, with the lines that show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatternMatch {
    /// Stable name, e.g. `singleton`.
    pub pattern: &'static str,
    /// What it is.
    pub description: &'static str,
    /// Share of the pattern's indicators found, 0-1.
    pub confidence: f64,
    /// Lines where indicators were found.
    pub evidence: Vec<usize>,
}

/// The pattern handler's response.
#[derive(Debug, Clone, Serialize)]
pub struct Patterns {
    /// Matches, most confident first.
    pub patterns: Vec<PatternMatch>,
    /// How many known patterns were checked.
    pub patterns_checked: usize,
}

/// A known pattern: its indicators, each a predicate on a code line; it
/// matches when at least `required` indicators are found.
struct Known {
    name: &'static str,
    description: &'static str,
    indicators: &'static [fn(&str) -> bool],
    required: usize,
}

fn has_word(code: &str, word: &str) -> bool {
    words(code).any(|w| w == word)
}

fn word_starting(code: &str, prefixes: &[&str]) -> bool {
    words(code).any(|w| prefixes.iter().any(|p| w.starts_with(p)))
}

const KNOWN: &[Known] = &[
    Known {
        name: "onex_node",
        description: "ONEX node: a Node<Name><Type> class deriving from a node base",
        indicators: &[
            |c| {
                c.trim_start().starts_with("class ")
                    && words(c).nth(1).and_then(node_type_of).is_some()
            },
            |c| {
                c.trim_start().starts_with("class ")
                    && words(c).skip(2).any(|w| {
                        NODE_TYPES
                            .iter()
                            .any(|t| w == format!("Node{}", capitalised(t)))
                    })
            },
        ],
        required: 1,
    },
    Known {
        name: "singleton",
        description: "one shared instance, created on first use",
        indicators: &[
            |c| has_word(c, "_instance"),
            |c| has_word(c, "__new__"),
            |c| c.contains("lru_cache") || c.contains("@cache"),
        ],
        required: 2,
    },
    Known {
        name: "factory",
        description: "objects built by a dedicated function or class",
        indicators: &[
            |c| {
                let t = c.trim_start();
                (t.starts_with("def ") || t.starts_with("async def "))
                    && word_starting(c, &["create_", "make_", "build_"])
            },
            |c| c.trim_start().starts_with("class ") && words(c).any(|w| w.ends_with("Factory")),
        ],
        required: 1,
    },
    Known {
        name: "context_manager",
        description: "resources released by `with`",
        indicators: &[
            |c| has_word(c, "__enter__") || has_word(c, "__aenter__"),
            |c| has_word(c, "__exit__") || has_word(c, "__aexit__"),
            |c| c.contains("@contextmanager") || c.contains("@asynccontextmanager"),
        ],
        required: 2,
    },
    Known {
        name: "data_model",
        description: "typed data classes (dataclass, pydantic, NamedTuple)",
        indicators: &[
            |c| c.contains("@dataclass"),
            |c| {
                c.trim_start().starts_with("class ")
                    && words(c)
                        .skip(2)
                        .any(|w| matches!(w, "BaseModel" | "NamedTuple" | "TypedDict"))
            },
        ],
        required: 1,
    },
    Known {
        name: "async_io",
        description: "asynchronous I/O with async/await",
        indicators: &[
            |c| c.trim_start().starts_with("async def "),
            |c| has_word(c, "await"),
        ],
        required: 2,
    },
    Known {
        name: "retry_with_backoff",
        description: "failed calls retried after a growing delay",
        indicators: &[
            |c| word_starting(c, &["retry", "retries", "max_retries", "tenacity"]),
            |c| word_starting(c, &["backoff", "delay", "sleep"]),
            |c| has_word(c, "for") || has_word(c, "while"),
        ],
        required: 2,
    },
    Known {
        name: "observer",
        description: "subscribers notified of events",
        indicators: &[
            |c| word_starting(c, &["subscribe", "add_listener", "register_handler", "on_"]),
            |c| word_starting(c, &["notify", "publish", "emit", "dispatch"]),
        ],
        required: 2,
    },
];

/// Which known patterns the code matches.
pub fn patterns(request: &CodeRequest) -> Patterns {
    let code = request.code.as_deref().unwrap_or("");
    let lines = lines(code);
    let mut found: Vec<PatternMatch> = KNOWN
        .iter()
        .filter_map(|known| {
            let mut evidence = Vec::new();
            let mut hits = 0;
            for indicator in known.indicators {
                let at: Vec<usize> = lines
                    .iter()
                    .filter(|l| l.kind == LineKind::Code && indicator(&l.code))
                    .map(|l| l.number)
                    .collect();
                if !at.is_empty() {
                    hits += 1;
                    evidence.extend(at);
                }
            }
            (hits >= known.required).then(|| {
                evidence.sort_unstable();
                evidence.dedup();
                PatternMatch {
                    pattern: known.name,
                    description: known.description,
                    confidence: (hits as f64 / known.indicators.len() as f64 * 100.0).round()
                        / 100.0,
                    evidence,
                }
            })
        })
        .collect();
    found.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    Patterns {
        patterns: found,
        patterns_checked: KNOWN.len(),
    }
}

// ---------------------------------------------------------------------------
// Mixin

/// A recommended mixin and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recommendation {
    /// Mixin class name.
    pub mixin: &'static str,
    /// What in the code calls for it.
    pub reason: String,
    /// `high`, `medium` or `low`.
    pub priority: &'static str,
}

/// The mixin handler's response.
#[derive(Debug, Clone, Serialize)]
pub struct Mixins {
    /// The node type used: the request's, else the one a class name
    /// declares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    /// Recommendations, highest priority first.
    pub recommendations: Vec<Recommendation>,
}

/// Modules that talk to the network or a database.
const IO_MODULES: &[&str] = &[
    "aiohttp",
    "httpx",
    "requests",
    "urllib",
    "asyncpg",
    "psycopg",
    "psycopg2",
    "sqlalchemy",
    "redis",
    "aiokafka",
    "kafka",
    "confluent_kafka",
    "grpc",
    "boto3",
    "socket",
];

/// Mixins the code would benefit from, derived from its node type, imports
/// and what it already does.
pub fn mixins(request: &CodeRequest) -> Mixins {
    let code = request.code.as_deref().unwrap_or("");
    let analysis = analyze(request);
    let lines = lines(code);
    let blocks = blocks(&lines);
    let node_type = request
        .node_type
        .as_deref()
        .map(str::to_ascii_lowercase)
        .or_else(|| {
            blocks
                .iter()
                .find_map(|b| node_type_of(&b.name))
                .map(str::to_owned)
        });
    let uses = |pred: &dyn Fn(&str) -> bool| {
        lines
            .iter()
            .any(|l| l.kind == LineKind::Code && pred(&l.code))
    };
    let io: Vec<&str> = analysis
        .imports
        .iter()
        .map(String::as_str)
        .filter(|m| IO_MODULES.contains(m))
        .collect();
    let mut out = Vec::new();
    let mut recommend = |mixin, priority, reason: String| {
        out.push(Recommendation {
            mixin,
            reason,
            priority,
        });
    };
    if !io.is_empty() {
        let io = io.join(", ");
        if !uses(&|c| word_starting(c, &["retry", "retries", "tenacity", "backoff"])) {
            recommend(
                "MixinRetry",
                "high",
                format!("calls external services ({io}) without retries"),
            );
        }
        if !uses(&|c| word_starting(c, &["circuit", "breaker"])) {
            recommend(
                "MixinCircuitBreaker",
                "medium",
                format!("a failing dependency ({io}) should fail fast"),
            );
        }
        if !uses(&|c| word_starting(c, &["health"])) {
            recommend(
                "MixinHealthCheck",
                "medium",
                format!("its dependencies ({io}) should be part of its health"),
            );
        }
    }
    if node_type.as_deref() == Some("compute")
        && !uses(&|c| c.contains("lru_cache") || c.contains("@cache"))
    {
        recommend(
            "MixinCaching",
            "medium",
            "compute nodes are pure; repeated inputs can be served from a cache".to_owned(),
        );
    }
    if matches!(node_type.as_deref(), Some("effect" | "orchestrator"))
        && !uses(&|c| word_starting(c, &["metrics", "prometheus", "counter", "histogram"]))
    {
        recommend(
            "MixinMetrics",
            "medium",
            format!(
                "{} nodes should count their calls, failures and latency",
                node_type.as_deref().unwrap_or_default()
            ),
        );
    }
    if uses(&|c| word_starting(c, &["publish", "emit", "send_event", "produce"])) {
        recommend(
            "MixinEventBus",
            "medium",
            "publishes events; an event bus mixin gives it envelopes and correlation ids"
                .to_owned(),
        );
    }
    if analysis.functions > 0 && !uses(&|c| has_word(c, "logging") || has_word(c, "logger")) {
        recommend(
            "MixinLogging",
            "low",
            "no logging: failures would go unnoticed".to_owned(),
        );
    }
    if blocks.iter().any(|b| {
        matches!(b.kind, BlockKind::Function { .. })
            && (has_word(&b.signature, "dict") || has_word(&b.signature, "Any"))
    }) {
        recommend(
            "MixinValidation",
            "low",
            "takes untyped input (dict or Any); validate it at the boundary".to_owned(),
        );
    }
    let rank = |p: &str| match p {
        "high" => 0,
        "medium" => 1,
        _ => 2,
    };
    out.sort_by_key(|r| rank(r.priority));
    Mixins {
        node_type,
        recommendations: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(code: &str, node_type: Option<&str>) -> CodeRequest {
        CodeRequest {
            code: Some(code.to_owned()),
            node_type: node_type.map(ToOwned::to_owned),
        }
    }

    const GOOD: &str = r#"
import logging
from typing import Any

logger = logging.getLogger(__name__)


class NodeUserFetchEffect(NodeEffect):
    """Fetches a user."""

    async def execute(self, user_id: int) -> dict[str, str]:
        """Returns the user's record."""
        logger.info("fetching %s", user_id)
        return {"id": str(user_id)}
"#;

    #[test]
    fn a_well_formed_effect_node_is_valid_with_a_full_score() {
        let v = validate(&req(GOOD, Some("effect")));
        assert!(v.is_valid, "{:?}", v.issues);
        assert_eq!(v.quality_score, 1.0, "{:?}", v.issues);
        assert!(v.issues.is_empty());
    }

    #[test]
    fn naming_and_structure_problems_are_reported_with_their_lines() {
        let code = "class bad_name:\n    def DoThing(self):\n        try:\n            pass\n        except:\n            pass\n";
        let v = validate(&req(code, Some("effect")));
        assert!(!v.is_valid);
        let rules: Vec<_> = v.issues.iter().map(|i| (i.rule, i.line)).collect();
        assert!(rules.contains(&("onex.node_name", None)), "{rules:?}");
        assert!(rules.contains(&("naming.class", Some(1))), "{rules:?}");
        assert!(rules.contains(&("naming.function", Some(2))), "{rules:?}");
        assert!(rules.contains(&("typing.return", Some(2))), "{rules:?}");
        assert!(
            rules.contains(&("structure.bare_except", Some(5))),
            "{rules:?}"
        );
        assert!(v.quality_score < 0.7, "{}", v.quality_score);
    }

    #[test]
    fn seed_004s_example_request_is_an_effect_node_missing_its_docstring() {
        let v = validate(&req(
            "class NodeTestEffect(NodeEffect): pass",
            Some("effect"),
        ));
        assert!(v.is_valid);
        assert_eq!(v.quality_score, 0.95);
        assert_eq!(v.issues[0].rule, "structure.docstring");
        // The wrong base is a warning; a wrong node type an error.
        let v = validate(&req("class NodeTestEffect(Base): pass", Some("effect")));
        assert!(v.issues.iter().any(|i| i.rule == "onex.node_base"));
        let v = validate(&req(
            "class NodeTestEffect(NodeEffect): pass",
            Some("gizmo"),
        ));
        assert!(!v.is_valid);
    }

    #[test]
    fn no_code_and_unbalanced_brackets_are_errors() {
        let v = validate(&CodeRequest::default());
        assert!(!v.is_valid);
        assert_eq!(v.quality_score, 0.75);
        assert_eq!(v.issues[0].rule, "code.missing");
        let v = validate(&req("def f(x -> int:\n    return [x\n", None));
        assert!(v.issues.iter().any(|i| i.rule == "syntax.brackets"));
        // Brackets inside strings and comments do not count.
        let v = validate(&req(
            "def f() -> str:\n    \"\"\"Doc (.\"\"\"\n    return \")\"  # (\n",
            None,
        ));
        assert!(v.is_valid, "{:?}", v.issues);
    }

    #[test]
    fn analysis_counts_lines_functions_and_complexity() {
        let code = r##"import os, sys
from collections.abc import Mapping

# A comment.
def pick(items, limit):
    """Docstring
    over two lines."""
    out = []
    for item in items:
        if item and len(out) < limit:
            out.append(item)
        elif item is None or limit == 0:
            break
    return out


async def fetch(client):
    return await client.get("#not a comment")
"##;
        let a = analyze(&req(code, None));
        assert_eq!(
            a.lines,
            LineCounts {
                total: 18,
                code: 12,
                comment: 1,
                docstring: 2,
                blank: 3
            }
        );
        assert_eq!(a.imports, ["os", "sys", "collections"]);
        assert_eq!(a.functions, 2);
        // for, if, and, elif, or.
        assert_eq!(a.per_function[0].complexity, 6);
        assert_eq!(a.per_function[0].lines, 10);
        assert_eq!(a.per_function[1].complexity, 1);
        assert!(a.per_function[1].is_async);
        assert_eq!(a.max_function_complexity, 6);
        assert_eq!(a.complexity_rating, "moderate");
        // def > for > if.
        assert_eq!(a.max_nesting_depth, 3);
    }

    #[test]
    fn known_patterns_are_matched_with_evidence() {
        let code = r#"
class NodeCacheCompute(NodeCompute):
    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance


def create_node() -> NodeCacheCompute:
    return NodeCacheCompute()
"#;
        let p = patterns(&req(code, None));
        let names: Vec<_> = p.patterns.iter().map(|m| m.pattern).collect();
        assert!(names.contains(&"onex_node"), "{names:?}");
        assert!(names.contains(&"singleton"), "{names:?}");
        assert!(names.contains(&"factory"), "{names:?}");
        assert!(!names.contains(&"async_io"), "{names:?}");
        let singleton = p
            .patterns
            .iter()
            .find(|m| m.pattern == "singleton")
            .unwrap();
        assert_eq!(singleton.evidence, [3, 5, 6, 7, 8]);
        assert!(patterns(&CodeRequest::default()).patterns.is_empty());
    }

    #[test]
    fn mixins_follow_from_io_node_type_and_what_is_missing() {
        let code = r#"
import httpx


class NodeWeatherEffect(NodeEffect):
    async def execute(self, query: dict) -> dict:
        async with httpx.AsyncClient() as client:
            return (await client.get(query["url"])).json()
"#;
        let m = mixins(&req(code, None));
        assert_eq!(m.node_type.as_deref(), Some("effect"));
        let names: Vec<_> = m.recommendations.iter().map(|r| r.mixin).collect();
        assert_eq!(
            names,
            [
                "MixinRetry",
                "MixinCircuitBreaker",
                "MixinHealthCheck",
                "MixinMetrics",
                "MixinLogging",
                "MixinValidation"
            ]
        );
        // Code that already logs and retries is not told to.
        let code = "import logging\nimport httpx\nfrom tenacity import retry\n\n@retry\ndef get(url: str) -> str:\n    logging.info(url)\n    return httpx.get(url).text\n";
        let names: Vec<_> = mixins(&req(code, None))
            .recommendations
            .iter()
            .map(|r| r.mixin)
            .collect();
        assert_eq!(names, ["MixinCircuitBreaker", "MixinHealthCheck"]);
    }
}
