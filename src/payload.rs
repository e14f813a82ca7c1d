//! Payload decoding shared by the built-in handlers: a JSON object, or a Python pickle whose top
//! level is a dict (protocols 0–5, as Python 2.7 and 3.x write them).
//!
//! Producers that moved from an FC OSS trigger write `pickle.dumps({...})` into the bucket, so
//! pickles must keep working. Unpickling with Python's own machinery would let any producer run
//! code in the worker, so this module carries a small pickle *reader* instead: it understands
//! only the opcodes that build plain data (dicts, lists, tuples, sets, strings, bytes, numbers,
//! booleans, `None`) and refuses every opcode that names a class or calls something (`GLOBAL`,
//! `STACK_GLOBAL`, `REDUCE`, `BUILD`, `INST`, `OBJ`, `NEWOBJ`, `PERSID`, ...). The one exception
//! is the fixed recipe Python 3 uses for `bytes` in protocols 0–2 (`_codecs.encode(s, "latin1")`
//! and `bytes()`), which is recognised as data and never looked up or called.
//!
//! The common representation is [`serde_json::Value`], so JSON and pickle producers look the
//! same to a handler. Byte strings (Python 2 `str`, Python 3 `bytes`) become JSON strings when
//! they are UTF-8 and are an error otherwise, naming the field.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

/// Limits that keep a hostile or broken payload from exhausting memory or the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of containers (the top-level dict is depth 1).
    pub max_depth: usize,
    /// Most values (containers, scalars and dict keys) a payload may contain, counted after
    /// memo references are expanded, so a pickle that repeats one list a billion times by
    /// reference is refused.
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 64,
            max_items: 100_000,
        }
    }
}

/// How the payload was written; the webhook picks its `Content-Type` from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON object.
    Json,
    /// A Python pickle of the given protocol (0 and 1 have no `PROTO` opcode and read as 0).
    Pickle {
        /// Protocol number from the `PROTO` opcode.
        protocol: u8,
    },
}

/// A decoded payload: the top-level dict and the format it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// JSON or pickle.
    pub format: Format,
    /// The top-level object / dict.
    pub fields: Map<String, Value>,
}

/// Why a payload could not be decoded. Every message says what was wrong, so the reason stored
/// on the failed task is enough to fix the producer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Zero bytes.
    #[error("the payload is empty")]
    Empty,
    /// Over [`Limits::max_bytes`].
    #[error("the payload is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Starts like JSON but does not parse.
    #[error("invalid JSON: {message}")]
    Json {
        /// serde_json's description, with line and column.
        message: String,
    },
    /// Valid JSON, but not an object.
    #[error("the payload is a JSON {found}, not a JSON object")]
    JsonNotObject {
        /// `array`, `string`, `number`, ...
        found: &'static str,
    },
    /// A pickle whose top level is not a dict.
    #[error("the payload is a pickle of a {found}, not of a dict")]
    PickleNotDict {
        /// `list`, `tuple`, `str`, ...
        found: &'static str,
    },
    /// A pickle that cannot be read.
    #[error("invalid pickle at byte {offset}: {problem}")]
    Pickle {
        /// Offset of the opcode that failed.
        offset: usize,
        /// What was wrong there.
        problem: String,
    },
    /// Neither JSON nor a pickle.
    #[error("the payload is neither a JSON object nor a Python pickle (it starts with {start})")]
    Unrecognised {
        /// The first bytes, escaped.
        start: String,
    },
    /// A value that has no JSON form.
    #[error("field {path}: {problem}")]
    Value {
        /// Where in the dict, like `subject` or `to[2]`.
        path: String,
        /// What was wrong with it.
        problem: String,
    },
    /// Nested deeper than [`Limits::max_depth`].
    #[error("the payload nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More than [`Limits::max_items`] values.
    #[error("the payload holds more than {limit} values")]
    TooManyItems {
        /// The limit.
        limit: usize,
    },
}

/// A task whose payload cannot be decoded: a permanent failure whose reason names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: unusable payload: {source}")]
pub struct BadPayload {
    /// The task's key.
    pub key: String,
    /// What was wrong.
    #[source]
    pub source: PayloadError,
}

/// [`decode`] a task's payload, naming its key in the error (the built-in handlers turn the
/// error's text into `Outcome::Fail`).
pub fn decode_for(key: &str, bytes: &[u8], limits: &Limits) -> Result<Decoded, BadPayload> {
    decode(bytes, limits).map_err(|source| BadPayload {
        key: key.to_owned(),
        source,
    })
}

/// Decode a payload into its top-level dict.
///
/// A payload whose first non-blank byte is `{` is JSON; one starting with the `PROTO` opcode
/// (protocol 2 and later) or with another opcode is read as a pickle. Anything else is tried as
/// JSON so that `[1, 2]` is reported as "a JSON array" rather than as garbage.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Decoded, PayloadError> {
    if bytes.is_empty() {
        return Err(PayloadError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(PayloadError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let text = strip_bom_and_blanks(bytes);
    if text.first() == Some(&b'{') {
        return decode_json(text, limits);
    }
    if bytes[0] == PROTO {
        return decode_pickle(bytes, limits);
    }
    if let Ok(value) = serde_json::from_slice::<Value>(text) {
        return Err(PayloadError::JsonNotObject {
            found: json_kind(&value),
        });
    }
    if !can_start_pickle(bytes[0]) {
        return Err(PayloadError::Unrecognised {
            start: escape_start(bytes),
        });
    }
    decode_pickle(bytes, limits)
}

/// True for the opcodes a protocol 0 or 1 pickle can begin with (those that push a value or a
/// mark onto an empty stack); anything else is not a pickle at all.
fn can_start_pickle(op: u8) -> bool {
    matches!(
        op,
        MARK | EMPTY_DICT
            | EMPTY_LIST
            | EMPTY_TUPLE
            | NONE
            | INT
            | BININT
            | BININT1
            | BININT2
            | LONG
            | FLOAT
            | BINFLOAT
            | STRING
            | BINSTRING
            | SHORT_BINSTRING
            | UNICODE
            | BINUNICODE
            | GLOBAL
            | INST
            | PERSID
    )
}

fn strip_bom_and_blanks(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn escape_start(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(16)];
    format!("b\"{}\"", head.escape_ascii())
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn decode_json(text: &[u8], limits: &Limits) -> Result<Decoded, PayloadError> {
    let value: Value = serde_json::from_slice(text).map_err(|e| PayloadError::Json {
        message: e.to_string(),
    })?;
    check_shape(&value, limits, 1, &mut 0)?;
    match value {
        Value::Object(fields) => Ok(Decoded {
            format: Format::Json,
            fields,
        }),
        other => Err(PayloadError::JsonNotObject {
            found: json_kind(&other),
        }),
    }
}

/// Enforce depth and item limits on parsed JSON (serde_json's own recursion limit is 128).
fn check_shape(
    value: &Value,
    limits: &Limits,
    depth: usize,
    items: &mut usize,
) -> Result<(), PayloadError> {
    *items += 1;
    if *items > limits.max_items {
        return Err(PayloadError::TooManyItems {
            limit: limits.max_items,
        });
    }
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(o) => Box::new(o.values()),
        _ => return Ok(()),
    };
    if depth > limits.max_depth {
        return Err(PayloadError::TooDeep {
            limit: limits.max_depth,
        });
    }
    for child in children {
        check_shape(child, limits, depth + 1, items)?;
    }
    Ok(())
}

/// Read a pickle into its top-level dict.
pub fn decode_pickle(bytes: &[u8], limits: &Limits) -> Result<Decoded, PayloadError> {
    let mut machine = Machine::new(bytes, limits);
    let (root, protocol) = machine.run()?;
    let found = machine.kind_of(root);
    if found != "dict" {
        return Err(PayloadError::PickleNotDict { found });
    }
    let mut items = 0;
    match machine.to_json(root, "", 1, &mut items)? {
        Value::Object(fields) => Ok(Decoded {
            format: Format::Pickle { protocol },
            fields,
        }),
        _ => unreachable!("a dict node converts to a JSON object"),
    }
}

// Opcodes, named as in CPython's `pickletools`.
const MARK: u8 = b'(';
const STOP: u8 = b'.';
const POP: u8 = b'0';
const POP_MARK: u8 = b'1';
const DUP: u8 = b'2';
const FLOAT: u8 = b'F';
const INT: u8 = b'I';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const LONG: u8 = b'L';
const BININT2: u8 = b'M';
const NONE: u8 = b'N';
const PERSID: u8 = b'P';
const BINPERSID: u8 = b'Q';
const REDUCE: u8 = b'R';
const STRING: u8 = b'S';
const BINSTRING: u8 = b'T';
const SHORT_BINSTRING: u8 = b'U';
const UNICODE: u8 = b'V';
const BINUNICODE: u8 = b'X';
const APPEND: u8 = b'a';
const BUILD: u8 = b'b';
const GLOBAL: u8 = b'c';
const DICT: u8 = b'd';
const EMPTY_DICT: u8 = b'}';
const APPENDS: u8 = b'e';
const GET: u8 = b'g';
const BINGET: u8 = b'h';
const INST: u8 = b'i';
const LONG_BINGET: u8 = b'j';
const LIST: u8 = b'l';
const EMPTY_LIST: u8 = b']';
const OBJ: u8 = b'o';
const PUT: u8 = b'p';
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const SETITEM: u8 = b's';
const TUPLE: u8 = b't';
const EMPTY_TUPLE: u8 = b')';
const SETITEMS: u8 = b'u';
const BINFLOAT: u8 = b'G';
const PROTO: u8 = 0x80;
const NEWOBJ: u8 = 0x81;
const EXT1: u8 = 0x82;
const EXT2: u8 = 0x83;
const EXT4: u8 = 0x84;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const LONG1: u8 = 0x8a;
const LONG4: u8 = 0x8b;
const BINBYTES: u8 = b'B';
const SHORT_BINBYTES: u8 = b'C';
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE8: u8 = 0x8d;
const BINBYTES8: u8 = 0x8e;
const EMPTY_SET: u8 = 0x8f;
const ADDITEMS: u8 = 0x90;
const FROZENSET: u8 = 0x91;
const NEWOBJ_EX: u8 = 0x92;
const STACK_GLOBAL: u8 = 0x93;
const MEMOIZE: u8 = 0x94;
const FRAME: u8 = 0x95;
const BYTEARRAY8: u8 = 0x96;
const NEXT_BUFFER: u8 = 0x97;
const READONLY_BUFFER: u8 = 0x98;

/// Highest pickle protocol understood.
const HIGHEST_PROTOCOL: u8 = 5;

/// Index of a node in the machine's arena. Containers refer to their members by index so that
/// a memoized container mutated after `PUT` (the way every pickler fills dicts) is seen whole
/// by a later `GET`, exactly as in Python.
type NodeId = usize;

/// A value the machine built.
#[derive(Debug, Clone)]
enum Node {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<NodeId>),
    Tuple(Vec<NodeId>),
    Set(Vec<NodeId>),
    Dict(Vec<(NodeId, NodeId)>),
    /// A recognised global that only ever builds bytes (Python 3's protocol 0–2 recipe).
    BytesRecipe(BytesRecipe),
}

/// The globals Python 3 names when it pickles `bytes` for protocols 0–2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BytesRecipe {
    /// `_codecs.encode(text, "latin1")`: the bytes are the text's code points.
    CodecsEncode,
    /// `builtins.bytes()` (or `__builtin__.bytes`): empty bytes.
    EmptyBytes,
}

/// One stack slot: a value, or the boundary `MARK` pushed.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Value(NodeId),
    Mark,
}

/// The pickle reader: a stack machine over an arena of [`Node`]s.
struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    /// Offset of the opcode being executed, for error messages.
    op_start: usize,
    limits: &'a Limits,
    nodes: Vec<Node>,
    stack: Vec<Slot>,
    memo: HashMap<u64, NodeId>,
    protocol: u8,
}

impl<'a> Machine<'a> {
    fn new(input: &'a [u8], limits: &'a Limits) -> Self {
        Machine {
            input,
            pos: 0,
            op_start: 0,
            limits,
            nodes: Vec::new(),
            stack: Vec::new(),
            memo: HashMap::new(),
            protocol: 0,
        }
    }

    fn err(&self, problem: impl Into<String>) -> PayloadError {
        PayloadError::Pickle {
            offset: self.op_start,
            problem: problem.into(),
        }
    }

    /// Execute opcodes up to `STOP`; the value left on the stack and the protocol.
    fn run(&mut self) -> Result<(NodeId, u8), PayloadError> {
        loop {
            self.op_start = self.pos;
            let op = self.byte().map_err(|_| self.truncated())?;
            if op == STOP {
                let root = self.pop()?;
                if self.pos != self.input.len() {
                    return Err(PayloadError::Pickle {
                        offset: self.pos,
                        problem: format!(
                            "{} bytes of trailing data after STOP",
                            self.input.len() - self.pos
                        ),
                    });
                }
                return Ok((root, self.protocol));
            }
            self.step(op)?;
        }
    }

    fn truncated(&self) -> PayloadError {
        PayloadError::Pickle {
            offset: self.input.len(),
            problem: "truncated: the data ends before the STOP opcode".into(),
        }
    }

    fn step(&mut self, op: u8) -> Result<(), PayloadError> {
        match op {
            PROTO => self.proto(),
            FRAME => self.take(8).map(|_| ()),
            MARK => {
                if self.stack.len() >= self.limits.max_items {
                    return Err(PayloadError::TooManyItems {
                        limit: self.limits.max_items,
                    });
                }
                self.stack.push(Slot::Mark);
                Ok(())
            }
            POP => self.pop_any(),
            POP_MARK => self.pop_to_mark().map(|_| ()),
            DUP => {
                let top = self.peek()?;
                self.push_id(top)
            }
            NONE => self.push(Node::None),
            NEWTRUE => self.push(Node::Bool(true)),
            NEWFALSE => self.push(Node::Bool(false)),
            INT => self.int_text(),
            LONG => self.long_text(),
            BININT => {
                let b = self.take_array::<4>()?;
                self.push(Node::Int(i32::from_le_bytes(b).into()))
            }
            BININT1 => {
                let b = self.byte()?;
                self.push(Node::Int(b.into()))
            }
            BININT2 => {
                let b = self.take_array::<2>()?;
                self.push(Node::Int(u16::from_le_bytes(b).into()))
            }
            LONG1 => {
                let n = usize::from(self.byte()?);
                self.long_binary(n)
            }
            LONG4 => {
                let n = self.len_i32()?;
                self.long_binary(n)
            }
            FLOAT => self.float_text(),
            BINFLOAT => {
                let b = self.take_array::<8>()?;
                self.push(Node::Float(f64::from_be_bytes(b)))
            }
            STRING => self.string_text(),
            BINSTRING => {
                let n = self.len_i32()?;
                self.push_bytes(n)
            }
            SHORT_BINSTRING | SHORT_BINBYTES => {
                let n = usize::from(self.byte()?);
                self.push_bytes(n)
            }
            BINBYTES => {
                let n = self.len_u32()?;
                self.push_bytes(n)
            }
            BINBYTES8 | BYTEARRAY8 => {
                let n = self.len_u64()?;
                self.push_bytes(n)
            }
            UNICODE => self.unicode_text(),
            SHORT_BINUNICODE => {
                let n = usize::from(self.byte()?);
                self.push_utf8(n)
            }
            BINUNICODE => {
                let n = self.len_u32()?;
                self.push_utf8(n)
            }
            BINUNICODE8 => {
                let n = self.len_u64()?;
                self.push_utf8(n)
            }
            EMPTY_DICT => self.push(Node::Dict(Vec::new())),
            EMPTY_LIST => self.push(Node::List(Vec::new())),
            EMPTY_TUPLE => self.push(Node::Tuple(Vec::new())),
            EMPTY_SET => self.push(Node::Set(Vec::new())),
            DICT => {
                let items = self.pop_to_mark()?;
                let pairs = self.pairs(items)?;
                self.push(Node::Dict(pairs))
            }
            LIST => {
                let items = self.pop_to_mark()?;
                self.push(Node::List(items))
            }
            TUPLE => {
                let items = self.pop_to_mark()?;
                self.push(Node::Tuple(items))
            }
            FROZENSET => {
                let items = self.pop_to_mark()?;
                self.push(Node::Set(items))
            }
            TUPLE1 | TUPLE2 | TUPLE3 => {
                let n = usize::from(op - TUPLE1 + 1);
                let mut items = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
                items.reverse();
                self.push(Node::Tuple(items))
            }
            APPEND => {
                let item = self.pop()?;
                self.extend_container(vec![item])
            }
            APPENDS | ADDITEMS => {
                let items = self.pop_to_mark()?;
                self.extend_container(items)
            }
            SETITEM => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.set_items(vec![(key, value)])
            }
            SETITEMS => {
                let items = self.pop_to_mark()?;
                let pairs = self.pairs(items)?;
                self.set_items(pairs)
            }
            PUT => {
                let index = self.decimal_line()?;
                self.memoize(index)
            }
            BINPUT => {
                let index = u64::from(self.byte()?);
                self.memoize(index)
            }
            LONG_BINPUT => {
                let index = u64::from(u32::from_le_bytes(self.take_array::<4>()?));
                self.memoize(index)
            }
            MEMOIZE => {
                let index = self.memo.len() as u64;
                self.memoize(index)
            }
            GET => {
                let index = self.decimal_line()?;
                self.recall(index)
            }
            BINGET => {
                let index = u64::from(self.byte()?);
                self.recall(index)
            }
            LONG_BINGET => {
                let index = u64::from(u32::from_le_bytes(self.take_array::<4>()?));
                self.recall(index)
            }
            GLOBAL => self.global(),
            REDUCE => self.reduce(),
            STACK_GLOBAL => Err(self.err(
                "STACK_GLOBAL names a class or function; only plain data (dicts, lists, strings, numbers) is accepted",
            )),
            INST | OBJ | NEWOBJ | NEWOBJ_EX | BUILD => Err(self.err(format!(
                "{} builds a class instance; only plain data (dicts, lists, strings, numbers) is accepted",
                opcode_name(op)
            ))),
            PERSID | BINPERSID => Err(self.err(format!(
                "{} refers to a persistent object outside the pickle",
                opcode_name(op)
            ))),
            EXT1 | EXT2 | EXT4 => Err(self.err(format!(
                "{} refers to a registered extension (a class or function)",
                opcode_name(op)
            ))),
            NEXT_BUFFER | READONLY_BUFFER => Err(self.err(format!(
                "{} needs an out-of-band buffer, which a stored payload cannot carry",
                opcode_name(op)
            ))),
            other => Err(self.err(format!("unknown opcode 0x{other:02x}"))),
        }
    }

    fn proto(&mut self) -> Result<(), PayloadError> {
        let version = self.byte()?;
        if version > HIGHEST_PROTOCOL {
            return Err(self.err(format!(
                "pickle protocol {version} is newer than the highest supported ({HIGHEST_PROTOCOL})"
            )));
        }
        self.protocol = version;
        Ok(())
    }

    // ---- input ----

    fn byte(&mut self) -> Result<u8, PayloadError> {
        let b = *self.input.get(self.pos).ok_or_else(|| self.truncated())?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PayloadError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.input.len())
            .ok_or_else(|| self.truncated())?;
        let slice = &self.input[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], PayloadError> {
        let slice = self.take(N)?;
        Ok(slice.try_into().expect("take returned exactly N bytes"))
    }

    fn len_i32(&mut self) -> Result<usize, PayloadError> {
        let n = i32::from_le_bytes(self.take_array::<4>()?);
        usize::try_from(n).map_err(|_| self.err(format!("negative length {n}")))
    }

    fn len_u32(&mut self) -> Result<usize, PayloadError> {
        let n = u32::from_le_bytes(self.take_array::<4>()?);
        Ok(n as usize)
    }

    fn len_u64(&mut self) -> Result<usize, PayloadError> {
        let n = u64::from_le_bytes(self.take_array::<8>()?);
        usize::try_from(n).map_err(|_| self.truncated())
    }

    /// A text argument of a protocol 0 opcode, up to (not including) the newline.
    fn line(&mut self) -> Result<&'a [u8], PayloadError> {
        let rest = &self.input[self.pos..];
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| self.truncated())?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    fn line_str(&mut self) -> Result<&'a str, PayloadError> {
        let line = self.line()?;
        std::str::from_utf8(line).map_err(|_| self.err("text argument is not ASCII"))
    }

    fn decimal_line(&mut self) -> Result<u64, PayloadError> {
        let text = self.line_str()?;
        text.trim()
            .parse()
            .map_err(|_| self.err(format!("bad memo index {text:?}")))
    }

    // ---- stack ----

    fn push(&mut self, node: Node) -> Result<(), PayloadError> {
        if self.nodes.len() >= self.limits.max_items {
            return Err(PayloadError::TooManyItems {
                limit: self.limits.max_items,
            });
        }
        self.nodes.push(node);
        self.push_id(self.nodes.len() - 1)
    }

    fn push_id(&mut self, id: NodeId) -> Result<(), PayloadError> {
        if self.stack.len() >= self.limits.max_items {
            return Err(PayloadError::TooManyItems {
                limit: self.limits.max_items,
            });
        }
        self.stack.push(Slot::Value(id));
        Ok(())
    }

    fn pop(&mut self) -> Result<NodeId, PayloadError> {
        match self.stack.pop() {
            Some(Slot::Value(id)) => Ok(id),
            Some(Slot::Mark) => Err(self.err("expected a value on the stack, found a MARK")),
            None => Err(self.err("the stack is empty")),
        }
    }

    fn pop_any(&mut self) -> Result<(), PayloadError> {
        self.stack
            .pop()
            .map(|_| ())
            .ok_or_else(|| self.err("the stack is empty"))
    }

    fn peek(&self) -> Result<NodeId, PayloadError> {
        match self.stack.last() {
            Some(Slot::Value(id)) => Ok(*id),
            Some(Slot::Mark) => Err(self.err("expected a value on the stack, found a MARK")),
            None => Err(self.err("the stack is empty")),
        }
    }

    /// Pop everything above the topmost MARK (and the MARK), in push order.
    fn pop_to_mark(&mut self) -> Result<Vec<NodeId>, PayloadError> {
        let mark = self
            .stack
            .iter()
            .rposition(|s| matches!(s, Slot::Mark))
            .ok_or_else(|| self.err("no MARK on the stack"))?;
        let items = self
            .stack
            .drain(mark + 1..)
            .map(|s| match s {
                Slot::Value(id) => id,
                Slot::Mark => unreachable!("rposition found the topmost mark"),
            })
            .collect();
        self.stack.pop();
        Ok(items)
    }

    fn pairs(&self, items: Vec<NodeId>) -> Result<Vec<(NodeId, NodeId)>, PayloadError> {
        if items.len() % 2 != 0 {
            return Err(self.err("odd number of items for a dict"));
        }
        Ok(items.chunks(2).map(|p| (p[0], p[1])).collect())
    }

    fn extend_container(&mut self, items: Vec<NodeId>) -> Result<(), PayloadError> {
        let target = self.peek()?;
        match &mut self.nodes[target] {
            Node::List(v) | Node::Set(v) => {
                v.extend(items);
                Ok(())
            }
            other => {
                let kind = node_kind(other);
                Err(self.err(format!("cannot append to a {kind}")))
            }
        }
    }

    fn set_items(&mut self, pairs: Vec<(NodeId, NodeId)>) -> Result<(), PayloadError> {
        let target = self.peek()?;
        match &mut self.nodes[target] {
            Node::Dict(v) => {
                v.extend(pairs);
                Ok(())
            }
            other => {
                let kind = node_kind(other);
                Err(self.err(format!("cannot set items on a {kind}")))
            }
        }
    }

    fn memoize(&mut self, index: u64) -> Result<(), PayloadError> {
        let top = self.peek()?;
        if self.memo.len() >= self.limits.max_items {
            return Err(PayloadError::TooManyItems {
                limit: self.limits.max_items,
            });
        }
        self.memo.insert(index, top);
        Ok(())
    }

    fn recall(&mut self, index: u64) -> Result<(), PayloadError> {
        let id = *self
            .memo
            .get(&index)
            .ok_or_else(|| self.err(format!("memo index {index} was never stored")))?;
        self.push_id(id)
    }

    // ---- scalars ----

    fn int_text(&mut self) -> Result<(), PayloadError> {
        let text = self.line_str()?;
        // Protocol 0 and 1 spell True and False as INT 01 and 00.
        match text {
            "01" => return self.push(Node::Bool(true)),
            "00" => return self.push(Node::Bool(false)),
            _ => {}
        }
        let value = parse_int(text).ok_or_else(|| self.err(format!("bad INT {text:?}")))?;
        self.push(Node::Int(value))
    }

    fn long_text(&mut self) -> Result<(), PayloadError> {
        let text = self.line_str()?;
        let digits = text.strip_suffix('L').unwrap_or(text);
        let value = parse_int(digits)
            .ok_or_else(|| self.err(format!("bad or out-of-range LONG {text:?}")))?;
        self.push(Node::Int(value))
    }

    fn long_binary(&mut self, n: usize) -> Result<(), PayloadError> {
        if n > 16 {
            return Err(self.err(format!(
                "a {n}-byte integer is out of range (at most 128 bits are supported)"
            )));
        }
        let bytes = self.take(n)?;
        let mut value: i128 = 0;
        for (i, b) in bytes.iter().enumerate() {
            value |= i128::from(*b) << (8 * i);
        }
        // Sign-extend from the top bit of the last byte (two's complement, little-endian).
        if n > 0 && n < 16 && bytes[n - 1] & 0x80 != 0 {
            value -= 1i128 << (8 * n);
        }
        self.push(Node::Int(value))
    }

    fn float_text(&mut self) -> Result<(), PayloadError> {
        let text = self.line_str()?;
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| self.err(format!("bad FLOAT {text:?}")))?;
        self.push(Node::Float(value))
    }

    fn push_bytes(&mut self, n: usize) -> Result<(), PayloadError> {
        let bytes = self.take(n)?.to_vec();
        self.push(Node::Bytes(bytes))
    }

    fn push_utf8(&mut self, n: usize) -> Result<(), PayloadError> {
        let bytes = self.take(n)?;
        let text = std::str::from_utf8(bytes)
            .map_err(|e| self.err(format!("text is not valid UTF-8 ({e})")))?;
        self.push(Node::Str(text.to_owned()))
    }

    /// `STRING 'repr'`: a Python 2 `str` literal with its escapes.
    fn string_text(&mut self) -> Result<(), PayloadError> {
        let line = self.line()?;
        let inner = match line {
            [q, inner @ .., last] if (*q == b'\'' || *q == b'"') && q == last => inner,
            _ => return Err(self.err("STRING argument is not quoted")),
        };
        let bytes = unescape_python_str(inner)
            .map_err(|problem| self.err(format!("bad STRING escape: {problem}")))?;
        self.push(Node::Bytes(bytes))
    }

    /// `UNICODE`: text in Python's raw-unicode-escape encoding.
    fn unicode_text(&mut self) -> Result<(), PayloadError> {
        let line = self.line()?;
        let text = decode_raw_unicode_escape(line)
            .map_err(|problem| self.err(format!("bad UNICODE text: {problem}")))?;
        self.push(Node::Str(text))
    }

    // ---- the bytes recipe (Python 3, protocols 0–2) ----

    fn global(&mut self) -> Result<(), PayloadError> {
        let module = self.line_str()?;
        let name = self.line_str()?;
        let recipe = match (module, name) {
            ("_codecs", "encode") => BytesRecipe::CodecsEncode,
            ("__builtin__" | "builtins", "bytes") => BytesRecipe::EmptyBytes,
            _ => {
                return Err(self.err(format!(
                    "GLOBAL {module}.{name} names a class or function; only plain data (dicts, lists, strings, numbers) is accepted"
                )))
            }
        };
        self.push(Node::BytesRecipe(recipe))
    }

    fn reduce(&mut self) -> Result<(), PayloadError> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let Node::BytesRecipe(recipe) = self.nodes[callable] else {
            return Err(self.err(
                "REDUCE calls a function; only plain data (dicts, lists, strings, numbers) is accepted",
            ));
        };
        let Node::Tuple(args) = &self.nodes[args] else {
            return Err(self.err("REDUCE arguments are not a tuple"));
        };
        let bytes = match (recipe, args.as_slice()) {
            (BytesRecipe::EmptyBytes, []) => Vec::new(),
            (BytesRecipe::CodecsEncode, [text, codec]) => {
                match (&self.nodes[*text], &self.nodes[*codec]) {
                    (Node::Str(text), Node::Str(codec))
                        if codec == "latin1" || codec == "latin-1" =>
                    {
                        latin1_bytes(text).ok_or_else(|| {
                            self.err("_codecs.encode text has characters outside latin-1")
                        })?
                    }
                    _ => return Err(self.err(
                        "_codecs.encode is only accepted as the bytes recipe (text, \"latin1\")",
                    )),
                }
            }
            _ => return Err(self.err("unexpected arguments to the bytes recipe")),
        };
        self.push(Node::Bytes(bytes))
    }

    // ---- output ----

    fn kind_of(&self, id: NodeId) -> &'static str {
        node_kind(&self.nodes[id])
    }

    /// Convert a node to JSON, expanding memo references, within the depth and item limits.
    fn to_json(
        &self,
        id: NodeId,
        path: &str,
        depth: usize,
        items: &mut usize,
    ) -> Result<Value, PayloadError> {
        *items += 1;
        if *items > self.limits.max_items {
            return Err(PayloadError::TooManyItems {
                limit: self.limits.max_items,
            });
        }
        let value_err = |problem: String| PayloadError::Value {
            path: if path.is_empty() {
                "(top level)".into()
            } else {
                path.to_owned()
            },
            problem,
        };
        let node = &self.nodes[id];
        if matches!(
            node,
            Node::List(_) | Node::Tuple(_) | Node::Set(_) | Node::Dict(_)
        ) && depth > self.limits.max_depth
        {
            return Err(PayloadError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        Ok(match node {
            Node::None => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => int_to_json(*i)
                .ok_or_else(|| value_err(format!("integer {i} does not fit in 64 bits")))?,
            Node::Float(f) => Number::from_f64(*f)
                .map(Value::Number)
                .ok_or_else(|| value_err(format!("float {f} has no JSON form")))?,
            Node::Str(s) => Value::String(s.clone()),
            Node::Bytes(b) => Value::String(String::from_utf8(b.clone()).map_err(|_| {
                value_err("byte string is not UTF-8 text (decode it to str before pickling)".into())
            })?),
            Node::List(v) | Node::Tuple(v) | Node::Set(v) => Value::Array(
                v.iter()
                    .enumerate()
                    .map(|(i, child)| {
                        self.to_json(*child, &format!("{path}[{i}]"), depth + 1, items)
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Node::Dict(pairs) => {
                let mut map = Map::new();
                for (k, v) in pairs {
                    let key = self
                        .key_text(*k)
                        .map_err(|problem| value_err(format!("dict key: {problem}")))?;
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    let value = self.to_json(*v, &child_path, depth + 1, items)?;
                    map.insert(key, value);
                }
                Value::Object(map)
            }
            Node::BytesRecipe(_) => {
                return Err(value_err("a function reference is not data".into()))
            }
        })
    }

    /// JSON keys are strings; like `json.dumps`, numbers, booleans and `None` are spelled out.
    fn key_text(&self, id: NodeId) -> Result<String, String> {
        match &self.nodes[id] {
            Node::Str(s) => Ok(s.clone()),
            Node::Bytes(b) => String::from_utf8(b.clone())
                .map_err(|_| "byte-string key is not UTF-8 text".to_string()),
            Node::Int(i) => Ok(i.to_string()),
            Node::Bool(true) => Ok("true".into()),
            Node::Bool(false) => Ok("false".into()),
            Node::None => Ok("null".into()),
            other => Err(format!(
                "a {} cannot be a JSON object key",
                node_kind(other)
            )),
        }
    }
}

fn node_kind(node: &Node) -> &'static str {
    match node {
        Node::None => "None",
        Node::Bool(_) => "bool",
        Node::Int(_) => "int",
        Node::Float(_) => "float",
        Node::Str(_) => "str",
        Node::Bytes(_) => "bytes",
        Node::List(_) => "list",
        Node::Tuple(_) => "tuple",
        Node::Set(_) => "set",
        Node::Dict(_) => "dict",
        Node::BytesRecipe(_) => "function reference",
    }
}

fn opcode_name(op: u8) -> &'static str {
    match op {
        INST => "INST",
        OBJ => "OBJ",
        NEWOBJ => "NEWOBJ",
        NEWOBJ_EX => "NEWOBJ_EX",
        BUILD => "BUILD",
        PERSID => "PERSID",
        BINPERSID => "BINPERSID",
        EXT1 => "EXT1",
        EXT2 => "EXT2",
        EXT4 => "EXT4",
        NEXT_BUFFER => "NEXT_BUFFER",
        READONLY_BUFFER => "READONLY_BUFFER",
        _ => "opcode",
    }
}

fn parse_int(text: &str) -> Option<i128> {
    text.trim().parse::<i128>().ok()
}

fn int_to_json(value: i128) -> Option<Value> {
    if let Ok(v) = i64::try_from(value) {
        return Some(Value::Number(v.into()));
    }
    u64::try_from(value).ok().map(|v| Value::Number(v.into()))
}

fn latin1_bytes(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

/// Decode the body of a Python 2 `str` repr (`codecs.escape_decode`).
fn unescape_python_str(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = input.get(i) else {
            return Err("trailing backslash".into());
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'x' => {
                let hex = input
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or("\\x needs two hex digits")?;
                out.push(hex);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match input.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xff) as u8);
            }
            other => {
                // Python keeps unknown escapes as they are.
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// Decode Python's raw-unicode-escape: `\uXXXX` and `\UXXXXXXXX` escapes, every other byte a
/// latin-1 code point. Surrogate pairs (from narrow Python 2 builds) are joined.
fn decode_raw_unicode_escape(input: &[u8]) -> Result<String, String> {
    let mut units: Vec<u32> = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'\\' {
            let (width, skip) = match input.get(i + 1) {
                Some(b'u') => (4, 2),
                Some(b'U') => (8, 2),
                _ => (0, 0),
            };
            if width > 0 {
                let code = input
                    .get(i + skip..i + skip + width)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        format!("\\{} needs {width} hex digits", input[i + 1] as char)
                    })?;
                units.push(code);
                i += skip + width;
                continue;
            }
        }
        units.push(u32::from(b));
        i += 1;
    }
    let mut out = String::with_capacity(units.len());
    let mut j = 0;
    while j < units.len() {
        let u = units[j];
        if (0xd800..0xdc00).contains(&u) {
            if let Some(&low) = units.get(j + 1) {
                if (0xdc00..0xe000).contains(&low) {
                    let c = 0x10000 + ((u - 0xd800) << 10) + (low - 0xdc00);
                    out.push(char::from_u32(c).ok_or("bad surrogate pair")?);
                    j += 2;
                    continue;
                }
            }
        }
        out.push(char::from_u32(u).ok_or_else(|| format!("U+{u:04X} is not a character"))?);
        j += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Known-answer tests on hand-assembled pickles; the pickles Python itself writes are
    //! checked in `tests/handlers_payload.rs`.
    use super::*;

    fn decode_ok(bytes: &[u8]) -> Decoded {
        decode(bytes, &Limits::default()).expect("decodes")
    }

    fn decode_err(bytes: &[u8]) -> PayloadError {
        decode(bytes, &Limits::default()).expect_err("must fail")
    }

    #[test]
    fn json_object_decodes() {
        let d = decode_ok(b"\xef\xbb\xbf  {\"to_email\": \"a@b.c\", \"n\": [1, 2]}");
        assert_eq!(d.format, Format::Json);
        assert_eq!(d.fields["to_email"], "a@b.c");
        assert_eq!(d.fields["n"], serde_json::json!([1, 2]));
    }

    #[test]
    fn json_non_object_is_named() {
        assert_eq!(
            decode_err(b"[1, 2]"),
            PayloadError::JsonNotObject { found: "array" }
        );
        assert_eq!(
            decode_err(b"\"x\""),
            PayloadError::JsonNotObject { found: "string" }
        );
        assert!(matches!(decode_err(b"{\"a\": "), PayloadError::Json { .. }));
    }

    #[test]
    fn protocol_0_dict_with_unicode_escapes() {
        // Python 3: pickle.dumps({"s": "测试\\x"}, 0)
        let p = b"(dp0\nVs\np1\nV\\u6d4b\\u8bd5\\u005cx\np2\ns.";
        let d = decode_ok(p);
        assert_eq!(d.format, Format::Pickle { protocol: 0 });
        assert_eq!(d.fields["s"], "测试\\x");
    }

    #[test]
    fn protocol_0_python2_str_and_bools_and_longs() {
        // Python 2: pickle.dumps({'a': '\xe6\xb5\x8b', 'b': True, 'c': 10**15 (long)}, 0)
        let p = b"(dp0\nS'a'\np1\nS'\\xe6\\xb5\\x8b'\np2\nsS'b'\np3\nI01\nsS'c'\np4\nL1000000000000000L\ns.";
        let d = decode_ok(p);
        assert_eq!(d.fields["a"], "测");
        assert_eq!(d.fields["b"], true);
        assert_eq!(d.fields["c"], 1_000_000_000_000_000u64);
    }

    #[test]
    fn protocol_2_binary_ints_and_memo_get() {
        // {'l': [1, -2, 70000, -32768], 'm': <the same list by memo reference>}
        let mut p = vec![PROTO, 2, EMPTY_DICT, BINPUT, 0, MARK];
        p.extend([SHORT_BINSTRING, 1, b'l', EMPTY_LIST, BINPUT, 1, MARK]);
        p.extend([BININT1, 1, BININT, 0xfe, 0xff, 0xff, 0xff]);
        p.extend([
            BININT, 0x70, 0x11, 0x01, 0x00, LONG1, 2, 0x00, 0x80, APPENDS,
        ]);
        p.extend([SHORT_BINSTRING, 1, b'm', BINGET, 1, SETITEMS, STOP]);
        let d = decode_ok(&p);
        assert_eq!(d.fields["l"], serde_json::json!([1, -2, 70000, -32768]));
        // The memo reference sees the list after APPENDS filled it.
        assert_eq!(d.fields["m"], d.fields["l"]);
    }

    #[test]
    fn protocol_4_frames_and_memoize() {
        let body = [
            EMPTY_DICT,
            MEMOIZE,
            SHORT_BINUNICODE,
            1,
            b'k',
            MEMOIZE,
            SHORT_BINUNICODE,
            3,
            0xe6,
            0xb5,
            0x8b,
            MEMOIZE,
            SETITEM,
            STOP,
        ];
        let mut p = vec![PROTO, 4, FRAME];
        p.extend((body.len() as u64).to_le_bytes());
        p.extend(body);
        let d = decode_ok(&p);
        assert_eq!(d.format, Format::Pickle { protocol: 4 });
        assert_eq!(d.fields["k"], "测");
    }

    #[test]
    fn class_instances_and_calls_are_refused() {
        // pickle.dumps(Foo(), 0) begins with GLOBAL-like INST / c__main__\nFoo
        let e = decode_err(b"(dp0\nS'x'\np1\nc__main__\nFoo\np2\ns.");
        assert!(e.to_string().contains("GLOBAL __main__.Foo"), "{e}");
        let e = decode_err(&[PROTO, 4, EMPTY_DICT, STACK_GLOBAL]);
        assert!(e.to_string().contains("STACK_GLOBAL"), "{e}");
        let e = decode_err(b"cos\nsystem\n(S'true'\ntR.");
        assert!(e.to_string().contains("os.system"), "{e}");
        let e = decode_err(&[PROTO, 2, EMPTY_DICT, BUILD]);
        assert!(e.to_string().contains("BUILD"), "{e}");
    }

    #[test]
    fn python3_bytes_recipe_is_data() {
        // Python 3: pickle.dumps({'b': b'\xc3\xa9'}, 2)
        let p = b"\x80\x02}q\x00X\x01\x00\x00\x00bq\x01c_codecs\nencode\nq\x02X\x04\x00\x00\x00\xc3\x83\xc2\xa9q\x03X\x06\x00\x00\x00latin1q\x04\x86q\x05Rq\x06s.";
        let d = decode_ok(p);
        assert_eq!(d.fields["b"], "é");
    }

    #[test]
    fn non_dict_and_broken_pickles_name_the_problem() {
        assert_eq!(
            decode_err(&[PROTO, 2, EMPTY_LIST, STOP]),
            PayloadError::PickleNotDict { found: "list" }
        );
        let e = decode_err(&[PROTO, 2, EMPTY_DICT]);
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = decode_err(&[0x01, 0x02, 0xff, 0x00]);
        assert!(
            matches!(e, PayloadError::Unrecognised { .. }),
            "{e}: random bytes"
        );
        assert!(e.to_string().contains("\\x01\\x02"), "{e}");
        assert_eq!(decode_err(b""), PayloadError::Empty);
        let e = decode_err(&[PROTO, 6, EMPTY_DICT, STOP]);
        assert!(e.to_string().contains("protocol 6"), "{e}");
        let e = decode_err(&[PROTO, 2, EMPTY_DICT, STOP, 0]);
        assert!(e.to_string().contains("trailing"), "{e}");
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            decode(&[b' '; 11], &limits),
            Err(PayloadError::TooLarge {
                size: 11,
                limit: 10
            })
        ));

        // 100 nested lists.
        let mut p = vec![PROTO, 2, EMPTY_DICT, SHORT_BINUNICODE, 1, b'x'];
        p.extend(std::iter::repeat_n(EMPTY_LIST, 100));
        p.extend(std::iter::repeat_n(APPEND, 99));
        p.extend([SETITEM, STOP]);
        assert_eq!(
            decode_err(&p),
            PayloadError::TooDeep { limit: 64 },
            "deep pickle"
        );
        let deep_json = format!("{{\"x\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(
            decode_err(deep_json.as_bytes()),
            PayloadError::TooDeep { limit: 64 }
        );

        // "Billion laughs": each list holds the previous one twice, by memo reference.
        let mut p = vec![PROTO, 2, EMPTY_DICT, SHORT_BINUNICODE, 1, b'x'];
        p.extend([EMPTY_LIST, BINPUT, 0, POP]);
        for i in 0..40u8 {
            p.extend([MARK, BINGET, i, BINGET, i, LIST, BINPUT, i + 1, POP]);
        }
        p.extend([BINGET, 40, SETITEM, STOP]);
        let limits = Limits::default();
        assert_eq!(
            decode(&p, &limits),
            Err(PayloadError::TooManyItems { limit: 100_000 })
        );
    }

    #[test]
    fn undecodable_values_name_the_field() {
        // {'subject': b'\xff'} in protocol 3
        let p = [
            PROTO,
            3,
            EMPTY_DICT,
            SHORT_BINUNICODE,
            7,
            b's',
            b'u',
            b'b',
            b'j',
            b'e',
            b'c',
            b't',
            SHORT_BINBYTES,
            1,
            0xff,
            SETITEM,
            STOP,
        ];
        let e = decode_err(&p);
        assert!(e.to_string().starts_with("field subject:"), "{e}");
    }

    #[test]
    fn python_escapes() {
        assert_eq!(
            unescape_python_str(br"a\'b\\c\x41\101\n\q").expect("valid"),
            b"a'b\\cAA\n\\q".to_vec()
        );
        assert_eq!(
            decode_raw_unicode_escape(br"\ud83d\ude00 \U0001f600 \xe9").expect("valid"),
            "😀 😀 \\xe9"
        );
    }
}
