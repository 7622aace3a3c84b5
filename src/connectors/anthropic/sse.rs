//! The Messages API stream (spec §4.4) without I/O: bytes → SSE events → one assembled message.
//! Blocks are keyed by their index, `input_json_delta`s are concatenated and parsed at the
//! block's stop, `ping` and unknown events are ignored, an `error` event is an API error.

use super::{AnthropicError, Usage};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// One server-sent event: its name and its (joined) data lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub data: String,
}

/// Splits a byte stream into events; chunks may cut lines and UTF-8 anywhere.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    name: String,
    data: Vec<String>,
}

impl Decoder {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if !self.data.is_empty() || !self.name.is_empty() {
                    out.push(Event {
                        name: std::mem::take(&mut self.name),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "event" => self.name = value.to_owned(),
                "data" => self.data.push(value.to_owned()),
                _ => {}
            }
        }
        out
    }
}

/// What the caller sees while a message streams.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// Text of the block at `index`.
    Text { index: usize, text: String },
    /// The call is being tried again: what streamed so far is void.
    Retry { attempt: u32 },
}

#[derive(Default)]
struct Block {
    start: Value,
    text: String,
    json: String,
    thinking: String,
    signature: String,
    citations: Vec<Value>,
}

/// Builds the final message from the events of one stream.
#[derive(Default)]
pub struct Assembler {
    message: Option<Value>,
    open: BTreeMap<usize, Block>,
    done: BTreeMap<usize, Value>,
    stop_reason: Option<String>,
    usage: Map<String, Value>,
    finished: bool,
}

/// The assembled message.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub id: String,
    pub content: Vec<Value>,
    pub stop_reason: Option<String>,
    pub usage: Usage,
    pub raw_usage: Value,
}

impl Assembler {
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Feeds one event; returns a text delta to pass on, if any.
    pub fn feed(&mut self, ev: &Event) -> Result<Option<Delta>, AnthropicError> {
        let parse = || -> Result<Value, AnthropicError> {
            serde_json::from_str(&ev.data)
                .map_err(|_| AnthropicError::Malformed(format!("{} event is not JSON", ev.name)))
        };
        match ev.name.as_str() {
            "message_start" => {
                let v = parse()?;
                let msg = v.get("message").cloned().unwrap_or(Value::Null);
                if let Some(Value::Object(u)) = msg.get("usage") {
                    self.usage.extend(u.clone());
                }
                self.message = Some(msg);
            }
            "content_block_start" => {
                let v = parse()?;
                let index = index_of(&v)?;
                let start = v.get("content_block").cloned().unwrap_or(Value::Null);
                let text = start
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.open.insert(
                    index,
                    Block {
                        start,
                        text,
                        ..Block::default()
                    },
                );
            }
            "content_block_delta" => {
                let v = parse()?;
                let index = index_of(&v)?;
                let block = self.open.get_mut(&index).ok_or_else(|| {
                    AnthropicError::Malformed(format!("delta for block {index}, which is not open"))
                })?;
                let delta = v.get("delta").cloned().unwrap_or(Value::Null);
                let s = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or_default();
                match s("type") {
                    "text_delta" => {
                        block.text.push_str(s("text"));
                        return Ok(Some(Delta::Text {
                            index,
                            text: s("text").to_owned(),
                        }));
                    }
                    "input_json_delta" => block.json.push_str(s("partial_json")),
                    "thinking_delta" => block.thinking.push_str(s("thinking")),
                    "signature_delta" => block.signature.push_str(s("signature")),
                    "citations_delta" => {
                        if let Some(c) = delta.get("citation") {
                            block.citations.push(c.clone());
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let v = parse()?;
                let index = index_of(&v)?;
                let block = self.open.remove(&index).ok_or_else(|| {
                    AnthropicError::Malformed(format!("stop for block {index}, which is not open"))
                })?;
                self.done.insert(index, finish(block)?);
            }
            "message_delta" => {
                let v = parse()?;
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(r.to_owned());
                }
                if let Some(Value::Object(u)) = v.get("usage") {
                    // Cumulative counts: the latest wins, key by key.
                    for (k, val) in u {
                        if !val.is_null() {
                            self.usage.insert(k.clone(), val.clone());
                        }
                    }
                }
            }
            "message_stop" => self.finished = true,
            "error" => {
                let v = parse()?;
                return Err(AnthropicError::from_error_event(&v));
            }
            // `ping` and event types added later.
            _ => {}
        }
        Ok(None)
    }

    pub fn into_message(self) -> Result<Assembled, AnthropicError> {
        if !self.finished {
            return Err(AnthropicError::Transport(
                "the stream ended before message_stop".into(),
            ));
        }
        if !self.open.is_empty() {
            return Err(AnthropicError::Malformed(
                "a content block was never stopped".into(),
            ));
        }
        let id = self
            .message
            .as_ref()
            .and_then(|m| m.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let raw_usage = Value::Object(self.usage);
        Ok(Assembled {
            id,
            content: self.done.into_values().collect(),
            stop_reason: self.stop_reason,
            usage: Usage::from_json(&raw_usage),
            raw_usage,
        })
    }
}

fn index_of(v: &Value) -> Result<usize, AnthropicError> {
    v.get("index")
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(|| AnthropicError::Malformed("an event without an index".into()))
}

fn finish(block: Block) -> Result<Value, AnthropicError> {
    let mut v = block.start;
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(obj) = v.as_object_mut() else {
        return Err(AnthropicError::Malformed(
            "a content block is not an object".into(),
        ));
    };
    match kind.as_str() {
        "text" => {
            obj.insert("text".into(), json!(block.text));
            if !block.citations.is_empty() {
                obj.insert("citations".into(), Value::Array(block.citations));
            }
        }
        "tool_use" | "server_tool_use" => {
            let input = if block.json.trim().is_empty() {
                obj.get("input").cloned().unwrap_or_else(|| json!({}))
            } else {
                serde_json::from_str::<Value>(&block.json).map_err(|_| {
                    AnthropicError::Malformed("a tool call's input is not valid JSON".into())
                })?
            };
            obj.insert("input".into(), input);
        }
        "thinking" => {
            let t = obj
                .get("thinking")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            obj.insert("thinking".into(), json!(t + &block.thinking));
            if !block.signature.is_empty() {
                obj.insert("signature".into(), json!(block.signature));
            }
        }
        _ => {}
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(s: &str) -> Vec<Event> {
        let mut d = Decoder::default();
        // Byte by byte: events survive any chunking.
        s.as_bytes().iter().flat_map(|b| d.push(&[*b])).collect()
    }

    const STREAM: &str = "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"content\":[],\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\r\n\r\n\
event: ping\ndata: {\"type\":\"ping\"}\n\n\
: a comment\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"echo\",\"input\":{}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hé\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"message\\\": \"}}\n\n\
event: something_new\ndata: {\"type\":\"something_new\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"llo\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"hi\\\"}\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":42}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn blocks_by_index_json_assembled_ping_and_unknown_ignored() {
        let mut a = Assembler::default();
        let mut texts = Vec::new();
        for ev in events(STREAM) {
            if let Some(Delta::Text { index, text }) = a.feed(&ev).unwrap() {
                texts.push((index, text));
            }
        }
        assert_eq!(texts, vec![(0, "Hé".to_owned()), (0, "llo".to_owned())]);
        let m = a.into_message().unwrap();
        assert_eq!(m.id, "msg_1");
        assert_eq!(m.stop_reason.as_deref(), Some("tool_use"));
        assert_eq!(m.content[0], json!({"type": "text", "text": "Héllo"}));
        assert_eq!(
            m.content[1],
            json!({"type": "tool_use", "id": "toolu_1", "name": "echo", "input": {"message": "hi"}})
        );
        assert_eq!((m.usage.input_tokens, m.usage.output_tokens), (10, 42));
    }

    #[test]
    fn error_event_malformed_json_and_early_end() {
        let mut a = Assembler::default();
        let err = a
            .feed(&Event {
                name: "error".into(),
                data:
                    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                        .into(),
            })
            .unwrap_err();
        assert!(err.retryable(), "{err:?}");
        assert!(matches!(err, AnthropicError::Api { status: 529, .. }));

        let bad = STREAM.replace("\\\"hi\\\"}", "\\\"hi");
        let mut a = Assembler::default();
        let err = events(&bad).iter().find_map(|e| a.feed(e).err()).unwrap();
        assert!(matches!(err, AnthropicError::Malformed(_)), "{err:?}");

        let cut = &STREAM[..STREAM.find("event: message_delta").unwrap()];
        let mut a = Assembler::default();
        for e in events(cut) {
            a.feed(&e).unwrap();
        }
        assert!(matches!(
            a.into_message(),
            Err(AnthropicError::Transport(_))
        ));
    }
}
