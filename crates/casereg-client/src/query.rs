//! A short text syntax for case filters, parsed into the [`pb::Filter`] tree that searches
//! take, and rendered back for display.
//!
//! ```text
//! phenotype:HP:0025520 and disease:ORPHA:289390 and not excluded:HP:0001369 and onset>=40y
//! ```
//!
//! - Leaves are `key:value`: `phenotype`, `excluded` (`phenotype:=ID` and `excluded:=ID` match
//!   that term only), `disease`, `gene`, `treatment`, `procedure`, `sex`
//!   (`female|male|other|unknown`), `center`, `publication` and `variant` (an ACMG class such
//!   as `pathogenic` or `likely_pathogenic`).
//! - A value is a word (up to whitespace or a parenthesis) or a double-quoted string with `\"`
//!   and `\\` escapes. For ontology and code keys a word is an id and a quoted value a label.
//! - Ages compare with `<`, `<=`, `=`, `>=` or `>` and a whole number with a unit `y`, `m`,
//!   `w` or `d`: `onset>=40y` (age at onset), `age < 18y` (age at last encounter).
//! - `not` binds tightest, then `and`, then `or`; parentheses group. Keys, keywords, sexes
//!   and ACMG classes ignore case.

use std::fmt;

use casereg_proto::age::{AgeUnit, days};
use casereg_proto::limits::{MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_QUERY_BYTES};
use casereg_proto::v1 as pb;
use pb::code_match::Code;
use pb::filter::Node;
use pb::phenotype_match::Term;

/// Keys of `key:value` leaves, as error messages list them.
const LEAF_KEYS: [&str; 10] = [
    "phenotype",
    "excluded",
    "disease",
    "gene",
    "treatment",
    "procedure",
    "sex",
    "center",
    "publication",
    "variant",
];

/// Deepest nesting of parentheses and `not` the parser follows. A tree within
/// `MAX_FILTER_DEPTH` never needs more (each level adds a tree level), so this only bounds
/// the recursion, before the tree depth itself is checked.
const MAX_NESTING: usize = MAX_FILTER_DEPTH;

/// A query that does not parse: what is wrong and where.
///
/// `Display` renders three lines: the message with its column, the query, and a caret under
/// the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// Where the problem is: 1-based, in characters of `query` (one past the end for an
    /// unexpected end).
    pub column: usize,
    /// What is wrong, on one line.
    pub message: String,
    /// The query as given.
    pub query: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One character for one character, so the caret stays in line and the query on one line.
        let line: String = self
            .query
            .chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        write!(
            f,
            "error at column {}: {}\n{line}\n{:>width$}",
            self.column,
            self.message,
            "^",
            width = self.column
        )
    }
}

impl std::error::Error for QueryError {}

/// Parses a text query into a filter tree.
///
/// Fails on an empty query (to match every case, send no filter), on bad syntax, and on
/// queries beyond the registry's limits (`MAX_QUERY_BYTES`, `MAX_FILTER_DEPTH`,
/// `MAX_FILTER_NODES`).
pub fn parse_query(text: &str) -> Result<pb::Filter, QueryError> {
    parse(text).map_err(|failure| QueryError {
        column: failure.column,
        message: failure.message,
        query: text.to_owned(),
    })
}

/// Renders a filter tree as query text that [`parse_query`] reads back as the same tree,
/// except that an age range with both bounds becomes two comparisons joined by `and`, and
/// a one-element `all`/`any` is shown as its element.
///
/// Labels are always quoted; ids are written as they are. What the syntax cannot say does
/// not parse back: negative (prenatal) ages, ids with spaces, and, shown in angle brackets,
/// empty `all`/`any` lists, missing nodes, terms or bounds, and unknown sex values.
pub fn to_query_text(filter: &pb::Filter) -> String {
    let mut out = String::new();
    write_filter(&mut out, filter, Context::Top);
    out
}

/// An error before the query text is attached.
#[derive(Debug)]
struct Failure {
    column: usize,
    message: String,
}

fn fail<T>(column: usize, message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        column,
        message: message.into(),
    })
}

fn parse(text: &str) -> Result<pb::Filter, Failure> {
    if text.len() > MAX_QUERY_BYTES {
        let column = text
            .char_indices()
            .take_while(|&(offset, _)| offset < MAX_QUERY_BYTES)
            .count()
            + 1;
        return fail(
            column,
            format!(
                "query too long: {} bytes, at most {MAX_QUERY_BYTES}",
                text.len()
            ),
        );
    }
    if text.trim().is_empty() {
        return fail(1, "empty query");
    }
    let mut parser = Parser {
        lexer: Lexer {
            chars: text.chars().collect(),
            pos: 0,
        },
        peeked: None,
        nodes: 0,
        nesting: 0,
    };
    let expr = parser.or_expr()?;
    let token = parser.next()?;
    match token.kind {
        Kind::End => Ok(expr.filter),
        Kind::Close => fail(token.column, "unmatched `)`"),
        _ => fail(token.column, "expected `and` or `or`"),
    }
}

// ---- Tokens ----

enum Kind {
    Open,
    Close,
    And,
    Or,
    Not,
    /// A whole `key:value` or age comparison.
    Leaf(Node),
    End,
}

struct Token {
    kind: Kind,
    column: usize,
}

/// A value after `key:`.
struct Value {
    text: String,
    quoted: bool,
    column: usize,
}

/// The tokenizer; it reads leaves whole, since how a value reads depends on its key.
struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn ends_word(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')'
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn column(&self) -> usize {
        self.pos + 1
    }

    fn at_word_end(&self) -> bool {
        self.peek().is_none_or(ends_word)
    }

    fn take_while(&mut self, accept: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&accept) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn skip_spaces(&mut self) {
        self.take_while(char::is_whitespace);
    }

    fn token(&mut self) -> Result<Token, Failure> {
        self.skip_spaces();
        let column = self.column();
        let kind = match self.peek() {
            None => Kind::End,
            Some('(') => {
                self.pos += 1;
                Kind::Open
            }
            Some(')') => {
                self.pos += 1;
                Kind::Close
            }
            Some('"') => {
                return fail(
                    column,
                    "a quoted value needs a key, e.g. phenotype:\"Seizure\"",
                );
            }
            Some('&' | '|' | '!') => {
                return fail(column, "combine filters with `and`, `or` and `not`");
            }
            Some(c) if is_word_char(c) => self.word(column)?,
            Some(c) => return fail(column, format!("unexpected `{c}`")),
        };
        Ok(Token { kind, column })
    }

    /// A keyword, a `key:value` leaf or an age comparison, starting at `column`.
    fn word(&mut self, column: usize) -> Result<Kind, Failure> {
        let word = self.take_while(is_word_char);
        let key = word.to_lowercase();
        let is_age = key == "onset" || key == "age";
        if self.peek() == Some(':') {
            if is_age {
                return fail(
                    self.column(),
                    format!("compare ages with <, <=, =, >= or >, e.g. {key}>=40y"),
                );
            }
            self.pos += 1;
            return self.leaf(&word, &key, column).map(Kind::Leaf);
        }
        match key.as_str() {
            "and" => Ok(Kind::And),
            "or" => Ok(Kind::Or),
            "not" => Ok(Kind::Not),
            "onset" | "age" => self.comparison(&key).map(Kind::Leaf),
            _ if LEAF_KEYS.contains(&key.as_str()) => {
                fail(self.column(), format!("expected `:` after `{word}`"))
            }
            _ => fail(
                column,
                format!("expected `key:value`, found `{word}`; {}", valid_keys()),
            ),
        }
    }

    /// The value of a `key:` leaf (the colon is read) and the leaf it makes.
    fn leaf(&mut self, word: &str, key: &str, key_column: usize) -> Result<Node, Failure> {
        let unknown_key = || {
            fail(
                key_column,
                format!("unknown key `{word}`; {}", valid_keys()),
            )
        };
        if !LEAF_KEYS.contains(&key) {
            return unknown_key();
        }
        let exact = self.peek() == Some('=');
        if exact {
            if key != "phenotype" && key != "excluded" {
                return fail(
                    self.column(),
                    "`:=` (this term only) applies to phenotype and excluded only",
                );
            }
            self.pos += 1;
        }
        let value = self.value(key)?;
        let node = match key {
            "phenotype" | "excluded" => {
                let term = if value.quoted {
                    Term::Label(value.text)
                } else if is_curie(&value.text) {
                    Term::Id(value.text)
                } else {
                    return fail(
                        value.column,
                        format!(
                            "`{0}` is not an HPO id; use quotes for a label: {key}:\"{0}\"",
                            value.text
                        ),
                    );
                };
                let matcher = pb::PhenotypeMatch {
                    term: Some(term),
                    exact,
                };
                if key == "phenotype" {
                    Node::Phenotype(matcher)
                } else {
                    Node::Excluded(matcher)
                }
            }
            "disease" | "gene" | "treatment" | "procedure" => {
                let code = Some(if value.quoted {
                    Code::Label(value.text)
                } else {
                    Code::Id(value.text)
                });
                let matcher = pb::CodeMatch { code };
                match key {
                    "disease" => Node::Disease(matcher),
                    "gene" => Node::Gene(matcher),
                    "treatment" => Node::Treatment(matcher),
                    _ => Node::Procedure(matcher),
                }
            }
            "sex" => {
                let sex = match value.text.to_lowercase().as_str() {
                    "female" => pb::Sex::Female,
                    "male" => pb::Sex::Male,
                    "other" => pb::Sex::OtherSex,
                    "unknown" => pb::Sex::UnknownSex,
                    _ => {
                        return fail(
                            value.column,
                            format!(
                                "unknown sex `{}`; use female, male, other or unknown",
                                value.text
                            ),
                        );
                    }
                };
                Node::Sex(sex as i32)
            }
            "center" => Node::Center(value.text),
            "publication" => Node::Publication(value.text),
            "variant" => {
                let name = value.text.to_uppercase();
                match pb::AcmgPathogenicityClassification::from_str_name(&name) {
                    Some(class) if class != pb::AcmgPathogenicityClassification::NotProvided => {
                        Node::VariantClass(name)
                    }
                    _ => {
                        return fail(
                            value.column,
                            format!(
                                "unknown ACMG class `{}`; use pathogenic, likely_pathogenic, \
                                 uncertain_significance, likely_benign or benign",
                                value.text
                            ),
                        );
                    }
                }
            }
            _ => return unknown_key(),
        };
        Ok(node)
    }

    /// A quoted string or a word, not empty.
    fn value(&mut self, key: &str) -> Result<Value, Failure> {
        let column = self.column();
        let quoted = self.peek() == Some('"');
        let text = if quoted {
            self.pos += 1;
            let mut text = String::new();
            loop {
                match self.peek() {
                    None => return fail(column, "unterminated quote"),
                    Some('"') => break,
                    Some('\\') => {
                        self.pos += 1;
                        match self.peek() {
                            Some(c @ ('"' | '\\')) => text.push(c),
                            None => return fail(column, "unterminated quote"),
                            Some(c) => {
                                return fail(
                                    self.pos,
                                    format!(
                                        "unknown escape `\\{c}`; only `\\\"` and `\\\\` are allowed"
                                    ),
                                );
                            }
                        }
                    }
                    Some(c) => text.push(c),
                }
                self.pos += 1;
            }
            self.pos += 1;
            if !self.at_word_end() {
                return fail(
                    self.column(),
                    "expected a space or `)` after the closing quote",
                );
            }
            text
        } else {
            let text = self.take_while(|c| !ends_word(c) && c != '"');
            if self.peek() == Some('"') {
                return fail(
                    self.column(),
                    "unexpected `\"` in a value; quote the whole value",
                );
            }
            text
        };
        if text.is_empty() {
            return fail(column, format!("empty value for `{key}`"));
        }
        Ok(Value {
            text,
            quoted,
            column,
        })
    }

    /// The rest of `onset` or `age` (`key` is read): an operator, a number and a unit.
    fn comparison(&mut self, key: &str) -> Result<Node, Failure> {
        self.skip_spaces();
        let operator_column = self.column();
        let operator = self.take_while(|c| matches!(c, '<' | '=' | '>'));
        if !matches!(operator.as_str(), "<" | "<=" | "=" | ">=" | ">") {
            return fail(
                operator_column,
                format!("expected `<`, `<=`, `=`, `>=` or `>` after `{key}`"),
            );
        }
        self.skip_spaces();
        let number_column = self.column();
        let digits = self.take_while(|c| c.is_ascii_digit());
        if digits.is_empty() {
            return fail(
                number_column,
                format!(
                    "expected a whole number of years, months, weeks or days, e.g. {key}{operator}40y"
                ),
            );
        }
        if matches!(self.peek(), Some('.' | ',')) {
            return fail(
                number_column,
                "ages are whole numbers; use a smaller unit, e.g. 18m for 1.5y",
            );
        }
        let unit_column = self.column();
        let unit_text = self.take_while(char::is_alphabetic);
        let mut unit_chars = unit_text.chars();
        let unit = match (unit_chars.next(), unit_chars.next()) {
            (Some(c), None) => AgeUnit::from_suffix(c),
            _ => None,
        };
        let Some(unit) = unit else {
            return fail(
                unit_column,
                if unit_text.is_empty() {
                    format!("missing unit after `{digits}`: y, m, w or d")
                } else {
                    format!("unknown unit `{unit_text}`; use y, m, w or d")
                },
            );
        };
        if !self.at_word_end() {
            return fail(self.column(), "expected a space or `)` after the age");
        }
        let too_large = || Failure {
            column: number_column,
            message: format!("age too large: at most {} days", i32::MAX),
        };
        let amount: u64 = digits.parse().map_err(|_| too_large())?;
        let fit = |value: Option<i64>| {
            value
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(too_large)
        };
        // [from, until) in days, as unchecked sums; `None` where a sum overflowed.
        let start = days(amount, unit);
        let after = start.checked_add(1);
        let (from, until) = match operator.as_str() {
            ">=" => (Some(Some(start)), None),
            ">" => (Some(after), None),
            "<=" => (None, Some(after)),
            "<" => (None, Some(Some(start))),
            _ => (
                Some(Some(start)),
                Some(amount.checked_add(1).map(|next| days(next, unit))),
            ),
        };
        let range = pb::AgeWindow {
            from_days: from.map(fit).transpose()?,
            until_days: until.map(fit).transpose()?,
        };
        Ok(if key == "onset" {
            Node::Onset(range)
        } else {
            Node::Age(range)
        })
    }
}

fn valid_keys() -> String {
    format!("valid keys: {}, onset, age", LEAF_KEYS.join(", "))
}

/// `prefix:local`, both parts non-empty.
fn is_curie(text: &str) -> bool {
    text.split_once(':')
        .is_some_and(|(prefix, local)| !prefix.is_empty() && !local.is_empty())
}

// ---- Parser ----

/// A parsed sub-expression: its tree, the tree's depth (a leaf is 1) and its first column.
struct Expr {
    filter: pb::Filter,
    height: usize,
    column: usize,
}

/// Recursive descent over
/// `or := and ("or" and)*`, `and := unary ("and" unary)*`,
/// `unary := "not" unary | "(" or ")" | leaf`.
struct Parser {
    lexer: Lexer,
    peeked: Option<Token>,
    /// Nodes made so far.
    nodes: usize,
    /// Open parentheses and `not`s around the current position.
    nesting: usize,
}

impl Parser {
    fn peek(&mut self) -> Result<&Token, Failure> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lexer.token()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn next(&mut self) -> Result<Token, Failure> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.token(),
        }
    }

    fn or_expr(&mut self) -> Result<Expr, Failure> {
        let mut operands = vec![self.and_expr()?];
        while matches!(self.peek()?.kind, Kind::Or) {
            self.next()?;
            operands.push(self.and_expr()?);
        }
        self.chain(operands, Node::Any)
    }

    fn and_expr(&mut self) -> Result<Expr, Failure> {
        let mut operands = vec![self.unary()?];
        while matches!(self.peek()?.kind, Kind::And) {
            self.next()?;
            operands.push(self.unary()?);
        }
        self.chain(operands, Node::All)
    }

    fn unary(&mut self) -> Result<Expr, Failure> {
        let token = self.next()?;
        let column = token.column;
        match token.kind {
            Kind::Leaf(node) => self.node(node, 1, column),
            Kind::Not => {
                self.enter(column)?;
                let operand = self.unary()?;
                self.nesting -= 1;
                self.node(
                    Node::Not(Box::new(operand.filter)),
                    operand.height + 1,
                    column,
                )
            }
            Kind::Open => {
                self.enter(column)?;
                let inner = self.or_expr()?;
                self.nesting -= 1;
                let close = self.next()?;
                match close.kind {
                    Kind::Close => Ok(Expr { column, ..inner }),
                    Kind::End => fail(column, "unclosed parenthesis"),
                    _ => fail(close.column, "expected `and`, `or` or `)`"),
                }
            }
            Kind::Close => fail(column, "expected a filter, found `)`"),
            Kind::And => fail(column, "expected a filter, found `and`"),
            Kind::Or => fail(column, "expected a filter, found `or`"),
            Kind::End => fail(column, "unexpected end of query: expected a filter"),
        }
    }

    /// One `all`/`any` node over a chain of two or more operands; a single operand as is.
    fn chain(
        &mut self,
        mut operands: Vec<Expr>,
        make: fn(pb::FilterList) -> Node,
    ) -> Result<Expr, Failure> {
        if operands.len() == 1
            && let Some(only) = operands.pop()
        {
            return Ok(only);
        }
        let column = operands.first().map_or(1, |first| first.column);
        let height = operands.iter().map(|e| e.height).max().unwrap_or(0) + 1;
        let filters = operands.into_iter().map(|e| e.filter).collect();
        self.node(make(pb::FilterList { filters }), height, column)
    }

    /// Counts a new node and checks the tree limits.
    fn node(&mut self, node: Node, height: usize, column: usize) -> Result<Expr, Failure> {
        if height > MAX_FILTER_DEPTH {
            return fail(
                column,
                format!("filter nested too deeply: more than {MAX_FILTER_DEPTH} levels"),
            );
        }
        self.nodes += 1;
        if self.nodes > MAX_FILTER_NODES {
            return fail(
                column,
                format!("too many filters: more than {MAX_FILTER_NODES} terms and operators"),
            );
        }
        Ok(Expr {
            filter: pb::Filter { node: Some(node) },
            height,
            column,
        })
    }

    /// Enters a parenthesis or `not` at `column`, bounding the recursion.
    fn enter(&mut self, column: usize) -> Result<(), Failure> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return fail(
                column,
                format!("nested too deeply: more than {MAX_NESTING} parentheses and `not`s"),
            );
        }
        Ok(())
    }
}

// ---- Rendering ----

/// Where a sub-expression is written; later variants bind tighter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Context {
    Top,
    OrOperand,
    AndOperand,
    NotOperand,
}

fn write_filter(out: &mut String, filter: &pb::Filter, context: Context) {
    let Some(node) = &filter.node else {
        out.push_str("<empty filter>");
        return;
    };
    match node {
        Node::All(list) => write_chain(out, &list.filters, "and", context, Context::AndOperand),
        Node::Any(list) => write_chain(out, &list.filters, "or", context, Context::OrOperand),
        Node::Not(operand) => {
            out.push_str("not ");
            write_filter(out, operand, Context::NotOperand);
        }
        Node::Phenotype(matcher) => write_phenotype(out, "phenotype", matcher),
        Node::Excluded(matcher) => write_phenotype(out, "excluded", matcher),
        Node::Disease(matcher) => write_code(out, "disease", matcher),
        Node::Gene(matcher) => write_code(out, "gene", matcher),
        Node::Treatment(matcher) => write_code(out, "treatment", matcher),
        Node::Procedure(matcher) => write_code(out, "procedure", matcher),
        Node::Sex(sex) => {
            out.push_str("sex:");
            match pb::Sex::try_from(*sex) {
                Ok(pb::Sex::Female) => out.push_str("female"),
                Ok(pb::Sex::Male) => out.push_str("male"),
                Ok(pb::Sex::OtherSex) => out.push_str("other"),
                Ok(pb::Sex::UnknownSex) => out.push_str("unknown"),
                Err(_) => out.push_str(&format!("<{sex}>")),
            }
        }
        Node::Onset(range) => write_range(out, "onset", range, context),
        Node::Age(range) => write_range(out, "age", range, context),
        Node::Center(center) => write_text(out, "center", center),
        Node::Publication(publication) => write_text(out, "publication", publication),
        Node::VariantClass(class) => write_text(out, "variant", &class.to_lowercase()),
    }
}

/// `a and b and c`, parenthesized where the context binds at least as tightly (so that the
/// text parses back to one node, not into its parent's chain).
fn write_chain(
    out: &mut String,
    filters: &[pb::Filter],
    keyword: &str,
    context: Context,
    operand_context: Context,
) {
    match filters {
        [] => out.push_str(&format!("<{keyword} of nothing>")),
        [only] => write_filter(out, only, context),
        _ => {
            let parenthesize = context >= operand_context;
            if parenthesize {
                out.push('(');
            }
            for (i, filter) in filters.iter().enumerate() {
                if i > 0 {
                    out.push_str(&format!(" {keyword} "));
                }
                write_filter(out, filter, operand_context);
            }
            if parenthesize {
                out.push(')');
            }
        }
    }
}

fn write_phenotype(out: &mut String, key: &str, matcher: &pb::PhenotypeMatch) {
    out.push_str(key);
    out.push_str(if matcher.exact { ":=" } else { ":" });
    match &matcher.term {
        Some(Term::Id(id)) => out.push_str(id),
        Some(Term::Label(label)) => write_quoted(out, label),
        None => out.push_str("<no term>"),
    }
}

fn write_code(out: &mut String, key: &str, matcher: &pb::CodeMatch) {
    out.push_str(key);
    out.push(':');
    match &matcher.code {
        Some(Code::Id(id)) => out.push_str(id),
        Some(Code::Label(label)) => write_quoted(out, label),
        None => out.push_str("<no code>"),
    }
}

/// `key:value`, quoting the value unless it reads back as a word.
fn write_text(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push(':');
    let plain = !value.is_empty()
        && !value.starts_with('=')
        && !value.chars().any(|c| ends_word(c) || c == '"');
    if plain {
        out.push_str(value);
    } else {
        write_quoted(out, value);
    }
}

fn write_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn write_range(out: &mut String, key: &str, range: &pb::AgeWindow, context: Context) {
    match (range.from_days, range.until_days) {
        (Some(from), Some(until)) => {
            let text = format!("{key}>={from}d and {key}<{until}d");
            if context >= Context::AndOperand {
                out.push_str(&format!("({text})"));
            } else {
                out.push_str(&text);
            }
        }
        (Some(from), None) => out.push_str(&format!("{key}>={from}d")),
        (None, Some(until)) => out.push_str(&format!("{key}<{until}d")),
        (None, None) => out.push_str(&format!("{key}:<no bounds>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::select;

    fn filter(node: Node) -> pb::Filter {
        pb::Filter { node: Some(node) }
    }
    fn all_of(filters: Vec<pb::Filter>) -> pb::Filter {
        filter(Node::All(pb::FilterList { filters }))
    }
    fn any_of(filters: Vec<pb::Filter>) -> pb::Filter {
        filter(Node::Any(pb::FilterList { filters }))
    }
    fn not_of(operand: pb::Filter) -> pb::Filter {
        filter(Node::Not(Box::new(operand)))
    }
    fn phenotype(term: Term, exact: bool) -> pb::PhenotypeMatch {
        pb::PhenotypeMatch {
            term: Some(term),
            exact,
        }
    }
    fn hpo(id: &str) -> pb::Filter {
        filter(Node::Phenotype(phenotype(Term::Id(id.into()), false)))
    }
    fn code(id: &str) -> pb::CodeMatch {
        pb::CodeMatch {
            code: Some(Code::Id(id.into())),
        }
    }
    fn gene(id: &str) -> pb::Filter {
        filter(Node::Gene(code(id)))
    }
    fn range(from_days: Option<i32>, until_days: Option<i32>) -> pb::AgeWindow {
        pb::AgeWindow {
            from_days,
            until_days,
        }
    }
    fn parse(text: &str) -> pb::Filter {
        parse_query(text).unwrap()
    }
    /// The error's column and message.
    fn error(text: &str) -> (usize, String) {
        let error = parse_query(text).unwrap_err();
        (error.column, error.message)
    }

    #[test]
    fn example_from_the_issue() {
        let text = "phenotype:HP:0025520 and disease:ORPHA:289390 and not excluded:HP:0001369 and onset>=40y";
        let expected = all_of(vec![
            hpo("HP:0025520"),
            filter(Node::Disease(code("ORPHA:289390"))),
            not_of(filter(Node::Excluded(phenotype(
                Term::Id("HP:0001369".into()),
                false,
            )))),
            filter(Node::Onset(range(Some(14_610), None))),
        ]);
        assert_eq!(parse(text), expected);
    }

    #[test]
    fn precedence_and_grouping() {
        let (a, b, c) = (gene("A"), gene("B"), gene("C"));
        assert_eq!(
            parse("gene:A or gene:B and gene:C"),
            any_of(vec![a.clone(), all_of(vec![b.clone(), c.clone()])])
        );
        assert_eq!(
            parse("gene:A and gene:B or gene:C"),
            any_of(vec![all_of(vec![a.clone(), b.clone()]), c.clone()])
        );
        assert_eq!(
            parse("(gene:A or gene:B) and gene:C"),
            all_of(vec![any_of(vec![a.clone(), b.clone()]), c.clone()])
        );
        assert_eq!(
            parse("not gene:A and gene:B"),
            all_of(vec![not_of(a.clone()), b.clone()])
        );
        assert_eq!(
            parse("NOT (gene:A Or gene:B)"),
            not_of(any_of(vec![a.clone(), b.clone()]))
        );
        assert_eq!(parse("not not gene:A"), not_of(not_of(a.clone())));
        assert_eq!(parse("not(gene:A)"), not_of(a.clone()));
    }

    #[test]
    fn chains_flatten_but_groups_stay() {
        let (a, b, c) = (gene("A"), gene("B"), gene("C"));
        assert_eq!(
            parse("gene:A and gene:B AND gene:C"),
            all_of(vec![a.clone(), b.clone(), c.clone()])
        );
        assert_eq!(
            parse("gene:A or gene:B or gene:C"),
            any_of(vec![a.clone(), b.clone(), c.clone()])
        );
        assert_eq!(
            parse("(gene:A and gene:B) and gene:C"),
            all_of(vec![all_of(vec![a.clone(), b.clone()]), c.clone()])
        );
        assert_eq!(parse("gene:A"), a);
        assert_eq!(parse("  ((gene:A))  "), a);
    }

    #[test]
    fn exact_phenotypes_and_labels() {
        assert_eq!(
            parse("phenotype:=HP:0001250"),
            filter(Node::Phenotype(phenotype(
                Term::Id("HP:0001250".into()),
                true
            )))
        );
        assert_eq!(
            parse("excluded:=HP:0001250"),
            filter(Node::Excluded(phenotype(
                Term::Id("HP:0001250".into()),
                true
            )))
        );
        assert_eq!(
            parse(r#"phenotype:"Calcinosis""#),
            filter(Node::Phenotype(phenotype(
                Term::Label("Calcinosis".into()),
                false
            )))
        );
        assert_eq!(
            parse(r#"excluded:="say \"hi\" \\ (there)""#),
            filter(Node::Excluded(phenotype(
                Term::Label(r#"say "hi" \ (there)"#.into()),
                true
            )))
        );
        assert_eq!(
            parse(r#"disease:"Marfan syndrome""#),
            filter(Node::Disease(pb::CodeMatch {
                code: Some(Code::Label("Marfan syndrome".into()))
            }))
        );
    }

    #[test]
    fn every_key() {
        let label = |text: &str| pb::CodeMatch {
            code: Some(Code::Label(text.into())),
        };
        let cases = [
            ("phenotype:HP:1", hpo("HP:1")),
            (
                "excluded:HP:2",
                filter(Node::Excluded(phenotype(Term::Id("HP:2".into()), false))),
            ),
            (
                "disease:OMIM:154700",
                filter(Node::Disease(code("OMIM:154700"))),
            ),
            ("gene:FBN1", gene("FBN1")),
            ("gene:HGNC:3603", gene("HGNC:3603")),
            (
                r#"gene:"fibrillin 1""#,
                filter(Node::Gene(label("fibrillin 1"))),
            ),
            (
                "treatment:DrugCentral:1234",
                filter(Node::Treatment(code("DrugCentral:1234"))),
            ),
            (
                r#"treatment:"losartan""#,
                filter(Node::Treatment(label("losartan"))),
            ),
            (
                "procedure:NCIT:C51894",
                filter(Node::Procedure(code("NCIT:C51894"))),
            ),
            ("sex:female", filter(Node::Sex(pb::Sex::Female as i32))),
            ("SEX:Male", filter(Node::Sex(pb::Sex::Male as i32))),
            ("sex:OTHER", filter(Node::Sex(pb::Sex::OtherSex as i32))),
            ("sex:unknown", filter(Node::Sex(pb::Sex::UnknownSex as i32))),
            ("center:lab-1.x", filter(Node::Center("lab-1.x".into()))),
            (r#"center:"a b""#, filter(Node::Center("a b".into()))),
            (
                "publication:PMID:30982135",
                filter(Node::Publication("PMID:30982135".into())),
            ),
            (
                "variant:pathogenic",
                filter(Node::VariantClass("PATHOGENIC".into())),
            ),
            (
                "variant:likely_pathogenic",
                filter(Node::VariantClass("LIKELY_PATHOGENIC".into())),
            ),
            (
                "variant:Uncertain_Significance",
                filter(Node::VariantClass("UNCERTAIN_SIGNIFICANCE".into())),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), expected, "{text}");
        }
    }

    #[test]
    fn age_comparisons() {
        let onset = |from, until| filter(Node::Onset(range(from, until)));
        let age = |from, until| filter(Node::Age(range(from, until)));
        let cases = [
            ("onset>=40y", onset(Some(14_610), None)),
            ("onset>40y", onset(Some(14_611), None)),
            ("onset<=40y", onset(None, Some(14_611))),
            ("onset<40y", onset(None, Some(14_610))),
            ("onset=40y", onset(Some(14_610), Some(14_975))),
            ("age<6m", age(None, Some(182))),
            ("age < 18y", age(None, Some(6_574))),
            ("AGE >= 2w", age(Some(14), None)),
            ("age=3d", age(Some(3), Some(4))),
            ("onset=0y", onset(Some(0), Some(365))),
            ("onset<0d", onset(None, Some(0))),
            ("age <=1M", age(None, Some(31))),
            ("onset>=2147483647d", onset(Some(i32::MAX), None)),
            ("(age>1y)", age(Some(366), None)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), expected, "{text}");
        }
    }

    #[test]
    fn error_columns() {
        let cases: [(&str, usize, &str); 33] = [
            ("   ", 1, "empty query"),
            ("", 1, "empty query"),
            ("phenotype:HP:1 and foo:bar", 20, "unknown key `foo`"),
            (
                "phenotype:HP:1 and foo:bar",
                20,
                "valid keys: phenotype, excluded",
            ),
            ("HP:0001250", 1, "unknown key `HP`"),
            ("calcinosis", 1, "expected `key:value`"),
            ("(phenotype:HP:1 and (gene:FBN1)", 1, "unclosed parenthesis"),
            ("gene:A and (gene:B", 12, "unclosed parenthesis"),
            ("gene:FBN1)", 10, "unmatched `)`"),
            ("gene:A and )", 12, "expected a filter, found `)`"),
            ("()", 2, "expected a filter, found `)`"),
            (r#"disease:"Marfan"#, 9, "unterminated quote"),
            (r#"center:"a\"#, 8, "unterminated quote"),
            (r#"center:"a\nb""#, 10, "unknown escape `\\n`"),
            (r#"center:"a"b"#, 11, "after the closing quote"),
            (r#"center:a"b""#, 9, "quote the whole value"),
            (r#""Marfan""#, 1, "needs a key"),
            ("onset>=40", 10, "missing unit"),
            ("onset>=y", 8, "expected a whole number"),
            ("onset>=-1y", 8, "expected a whole number"),
            ("onset>= 4.5y", 9, "whole numbers"),
            ("onset>=40yr", 10, "unknown unit `yr`"),
            ("onset>=40y2", 11, "after the age"),
            ("age<99999999999999999999999y", 5, "age too large"),
            ("age<5879611y", 5, "age too large"),
            ("onset=2147483647d", 7, "age too large"),
            ("onset=>40y", 6, "expected `<`"),
            ("onset 40y", 7, "expected `<`"),
            ("onset:40y", 6, "compare ages"),
            ("gene:FBN1 and", 14, "unexpected end"),
            ("gene:FBN1 and not ", 19, "unexpected end"),
            ("gene:FBN1 gene:TGFBR2", 11, "expected `and` or `or`"),
            ("(gene:A gene:B)", 9, "expected `and`, `or` or `)`"),
        ];
        for (text, column, message) in cases {
            let (actual_column, actual_message) = error(text);
            assert_eq!(actual_column, column, "{text}: {actual_message}");
            assert!(
                actual_message.contains(message),
                "{text}: {actual_message:?} lacks {message:?}"
            );
        }
        let more: [(&str, usize, &str); 9] = [
            ("gene: and gene:A", 6, "empty value for `gene`"),
            (r#"center:"""#, 8, "empty value"),
            (
                "phenotype:calcinosis",
                11,
                "use quotes for a label: phenotype:\"calcinosis\"",
            ),
            ("sex:f", 5, "unknown sex `f`"),
            ("variant:bad", 9, "unknown ACMG class"),
            ("variant:not_provided", 9, "unknown ACMG class"),
            ("gene:=FBN1", 6, "`:=`"),
            ("phenotype HP:1", 10, "expected `:` after `phenotype`"),
            ("gene:A && gene:B", 8, "`and`"),
        ];
        for (text, column, message) in more {
            let (actual_column, actual_message) = error(text);
            assert_eq!(actual_column, column, "{text}: {actual_message}");
            assert!(
                actual_message.contains(message),
                "{text}: {actual_message:?} lacks {message:?}"
            );
        }
    }

    #[test]
    fn columns_count_characters() {
        // "é" is two bytes but one column.
        assert_eq!(error(r#"center:"é" foo:x"#).0, 12);
    }

    #[test]
    fn limits() {
        let long = format!("center:{}", "x".repeat(MAX_QUERY_BYTES));
        assert_eq!(error(&long).0, MAX_QUERY_BYTES + 1);
        assert!(error(&long).1.contains("too long"));

        // 16 `not`s make a tree 17 deep; the outermost `not` is the node too deep.
        let deep = format!("{}gene:A", "not ".repeat(16));
        assert_eq!(error(&deep).0, 1);
        assert!(error(&deep).1.contains("nested too deeply"));
        assert_eq!(
            parse(&format!("{}gene:A", "not ".repeat(15))),
            (0..15).fold(gene("A"), |inner, _| not_of(inner))
        );
        // The 17th `not` is refused before recursing further.
        assert_eq!(error(&format!("{}gene:A", "not ".repeat(17))).0, 65);
        assert_eq!(error(&"(".repeat(4000)).0, 17);
        assert_eq!(error(&"not ".repeat(1000)).0, 65);

        // `gene:A and (gene:A or (gene:A and …))`: 15 groups and the top chain are 16
        // operator levels above the leaves.
        let nested = |groups: usize| {
            let mut text = String::from("gene:A");
            for level in 0..groups {
                let keyword = if level % 2 == 0 { "or" } else { "and" };
                text = format!("gene:A {keyword} ({text})");
            }
            format!("gene:A and ({text})")
        };
        assert!(parse_query(&nested(14)).is_ok());
        assert_eq!(error(&nested(15)).0, 1);

        let at_limit = ["gene:A"; MAX_FILTER_NODES - 1].join(" or ");
        assert!(parse_query(&at_limit).is_ok());
        let over = ["gene:A"; MAX_FILTER_NODES + 1].join(" or ");
        assert_eq!(error(&over).0, MAX_FILTER_NODES * 10 + 1);
        let over = ["gene:A"; MAX_FILTER_NODES].join(" or ");
        assert_eq!(error(&over).0, 1);
    }

    #[test]
    fn display_points_at_the_column() {
        let error = parse_query("gene:FBN1\tfoo").unwrap_err();
        assert_eq!(
            error.to_string(),
            "error at column 11: expected `key:value`, found `foo`; valid keys: phenotype, \
             excluded, disease, gene, treatment, procedure, sex, center, publication, variant, \
             onset, age\ngene:FBN1 foo\n          ^"
        );
        let error = parse_query("gene:A and").unwrap_err();
        assert!(error.to_string().ends_with("\ngene:A and\n          ^"));
    }

    #[test]
    fn renders_text() {
        let filter = any_of(vec![
            all_of(vec![
                filter(Node::Phenotype(phenotype(Term::Id("HP:1".into()), true))),
                filter(Node::Onset(range(Some(10), Some(20)))),
            ]),
            not_of(any_of(vec![
                gene("FBN1"),
                filter(Node::Center("a b".into())),
            ])),
            filter(Node::Disease(pb::CodeMatch {
                code: Some(Code::Label(r#"x "y""#.into())),
            })),
        ]);
        assert_eq!(
            to_query_text(&filter),
            r#"phenotype:=HP:1 and (onset>=10d and onset<20d) or not (gene:FBN1 or center:"a b") or disease:"x \"y\"""#
        );
    }

    /// The tree `parse_query(to_query_text(tree))` gives: ranges with two bounds split in two.
    fn split_ranges(tree: pb::Filter) -> pb::Filter {
        let split = |range: pb::AgeWindow, make: fn(pb::AgeWindow) -> Node| match range {
            pb::AgeWindow {
                from_days: Some(from),
                until_days: Some(until),
            } => all_of(vec![
                filter(make(range_from(from))),
                filter(make(range_until(until))),
            ]),
            range => filter(make(range)),
        };
        match tree.node {
            Some(Node::All(list)) => all_of(list.filters.into_iter().map(split_ranges).collect()),
            Some(Node::Any(list)) => any_of(list.filters.into_iter().map(split_ranges).collect()),
            Some(Node::Not(operand)) => not_of(split_ranges(*operand)),
            Some(Node::Onset(range)) => split(range, Node::Onset),
            Some(Node::Age(range)) => split(range, Node::Age),
            node => pb::Filter { node },
        }
    }
    fn range_from(from: i32) -> pb::AgeWindow {
        range(Some(from), None)
    }
    fn range_until(until: i32) -> pb::AgeWindow {
        range(None, Some(until))
    }

    fn count(filter: &pb::Filter) -> usize {
        1 + match &filter.node {
            Some(Node::All(list) | Node::Any(list)) => list.filters.iter().map(count).sum(),
            Some(Node::Not(operand)) => count(operand),
            _ => 0,
        }
    }

    fn leaf() -> impl Strategy<Value = pb::Filter> {
        let id = "[A-Za-z]{1,6}:[A-Za-z0-9_.]{1,8}";
        let text = "\\PC{1,12}";
        let term = prop_oneof![id.prop_map(Term::Id), text.prop_map(Term::Label),];
        let code = prop_oneof![
            id.prop_map(Code::Id),
            "[A-Z0-9-]{1,8}".prop_map(Code::Id),
            text.prop_map(Code::Label),
        ]
        .prop_map(|code| pb::CodeMatch { code: Some(code) });
        let matcher = (term, prop::bool::ANY).prop_map(|(term, exact)| phenotype(term, exact));
        let bounds = (
            proptest::option::of(0..=i32::MAX),
            proptest::option::of(0..=i32::MAX),
        )
            .prop_filter("one bound", |(from, until)| {
                from.is_some() || until.is_some()
            })
            .prop_map(|(from, until)| range(from, until));
        let word = prop_oneof!["[a-z0-9._:-]{1,10}", text];
        prop_oneof![
            matcher.clone().prop_map(Node::Phenotype),
            matcher.prop_map(Node::Excluded),
            code.clone().prop_map(Node::Disease),
            code.clone().prop_map(Node::Gene),
            code.clone().prop_map(Node::Treatment),
            code.prop_map(Node::Procedure),
            (0..4).prop_map(Node::Sex),
            bounds.clone().prop_map(Node::Onset),
            bounds.prop_map(Node::Age),
            word.clone().prop_map(Node::Center),
            word.prop_map(Node::Publication),
            select(vec![
                "PATHOGENIC",
                "LIKELY_PATHOGENIC",
                "UNCERTAIN_SIGNIFICANCE",
                "LIKELY_BENIGN",
                "BENIGN"
            ])
            .prop_map(|class| Node::VariantClass(class.into())),
        ]
        .prop_map(filter)
    }

    fn tree() -> impl Strategy<Value = pb::Filter> {
        leaf().prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 2..5).prop_map(all_of),
                vec(inner.clone(), 2..5).prop_map(any_of),
                inner.prop_map(not_of),
            ]
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(text in any::<String>()) {
            let _ = parse_query(&text);
        }

        #[test]
        fn never_panics_on_query_like_text(parts in vec(select(vec![
            "(", ")", "and", "OR", "not", " ", "phenotype:", "phenotype:=", "HP:0001250", "\"",
            "\\", "gene:FBN1", "onset", ">=", "<", "=", "40", "y", "-", ".", "sex:", "é", "\t",
            "variant:", "calcinosis", ":",
        ]), 0..40)) {
            let _ = parse_query(&parts.concat());
        }

        #[test]
        fn rendered_trees_parse_back(tree in tree()) {
            let expected = split_ranges(tree.clone());
            prop_assume!(count(&expected) <= MAX_FILTER_NODES);
            let text = to_query_text(&tree);
            prop_assert_eq!(parse_query(&text).map_err(|e| e.to_string()), Ok(expected), "{}", text);
        }
    }
}
