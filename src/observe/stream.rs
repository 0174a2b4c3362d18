//! A list response decoded while it arrives, item by item. A watch-cache list comes whole
//! (the cache ignores `limit` there), and `kube::Client::request` would hold it three
//! times over (the body, a copy of it, the decoded page) before the first item is slim.
//! Split on the fly, only one item is held undecoded at a time, so memory follows what
//! the model keeps, not the size of the namespace.

use futures::{AsyncBufRead, AsyncBufReadExt};
use serde::de::DeserializeOwned;

/// The parts of a list the caller keeps: its items and its `metadata` (the continue
/// token), each as the raw JSON of one value.
pub enum Part<'a> {
    Item(&'a [u8]),
    Metadata(&'a [u8]),
}

/// A byte-level splitter for `{"kind":…,"metadata":{…},"items":[{…},…]}`: it follows
/// strings and nesting just enough to know where each item and the list metadata begin
/// and end; serde_json decodes each of them (and finds any malformed JSON inside).
#[derive(Default)]
pub struct Splitter {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// At the top level: the next string is a key (after `{` or `,`), not a value.
    expect_key: bool,
    key: Vec<u8>,
    /// The top-level value being read is `items` (an array of objects).
    in_items: bool,
    /// The raw JSON of the item or metadata being read.
    value: Vec<u8>,
    collecting: Option<Collect>,
}

#[derive(Clone, Copy, PartialEq)]
enum Collect {
    Item,
    Metadata,
}

impl Splitter {
    /// Feeds the next chunk; `emit` gets every item and the metadata as they complete.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        mut emit: impl FnMut(Part<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut start = 0; // where the current collected run began in this chunk
        for (i, &b) in chunk.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                } else if self.depth == 1 && self.expect_key {
                    self.key.push(b);
                }
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    if self.depth == 1 && self.expect_key {
                        self.key.clear();
                    }
                }
                b':' if self.depth == 1 => self.expect_key = false,
                b',' if self.depth == 1 => self.expect_key = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    let begins = match (self.depth, b) {
                        (1, _) => {
                            self.expect_key = true;
                            None
                        }
                        (2, b'[') => {
                            self.in_items = self.key == b"items";
                            None
                        }
                        (2, b'{') if self.key == b"metadata" => Some(Collect::Metadata),
                        (3, b'{') if self.in_items => Some(Collect::Item),
                        _ => None,
                    };
                    if begins.is_some() {
                        self.collecting = begins;
                        self.value.clear();
                        start = i;
                    }
                }
                b'}' | b']' => {
                    let ends = match self.collecting {
                        Some(Collect::Item) => self.depth == 3,
                        Some(Collect::Metadata) => self.depth == 2,
                        None => false,
                    };
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 1 {
                        self.in_items = false;
                    }
                    if ends {
                        let what = self.collecting.take().expect("collecting");
                        let whole: &[u8] = if self.value.is_empty() {
                            &chunk[start..=i]
                        } else {
                            self.value.extend_from_slice(&chunk[start..=i]);
                            &self.value
                        };
                        emit(match what {
                            Collect::Item => Part::Item(whole),
                            Collect::Metadata => Part::Metadata(whole),
                        })?;
                        self.value.clear();
                    }
                }
                _ => {}
            }
        }
        // A value that goes on in the next chunk: keep what this one holds of it.
        if self.collecting.is_some() {
            self.value.extend_from_slice(&chunk[start..]);
        }
        Ok(())
    }
}

/// Reads a list body to its end: the items decoded as `T` one by one, and the decoded
/// list metadata.
pub async fn decode<T, M>(mut body: impl AsyncBufRead + Unpin) -> kube::Result<(Vec<T>, Option<M>)>
where
    T: DeserializeOwned,
    M: DeserializeOwned,
{
    let mut splitter = Splitter::default();
    let (mut items, mut meta) = (Vec::new(), None);
    loop {
        let chunk = body.fill_buf().await.map_err(kube::Error::ReadEvents)?;
        if chunk.is_empty() {
            break;
        }
        splitter
            .feed(chunk, |part| {
                match part {
                    Part::Item(raw) => items.push(serde_json::from_slice(raw)?),
                    Part::Metadata(raw) => meta = Some(serde_json::from_slice(raw)?),
                }
                Ok::<_, serde_json::Error>(())
            })
            .map_err(kube::Error::SerdeError)?;
        let n = chunk.len();
        body.consume_unpin(n);
    }
    if splitter.depth != 0 || splitter.in_string {
        return Err(kube::Error::ReadEvents(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the list response ended before its last item",
        )));
    }
    Ok((items, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn split(body: &[u8], chunk: usize) -> (Vec<Value>, Option<Value>) {
        let mut s = Splitter::default();
        let (mut items, mut meta) = (Vec::new(), None);
        for c in body.chunks(chunk) {
            s.feed(c, |p| {
                match p {
                    Part::Item(raw) => items.push(serde_json::from_slice(raw)?),
                    Part::Metadata(raw) => meta = Some(serde_json::from_slice(raw)?),
                }
                Ok::<_, serde_json::Error>(())
            })
            .unwrap();
        }
        assert_eq!(s.depth, 0);
        (items, meta)
    }

    /// Every chunking of a list with the JSON that trips splitters (braces, brackets and
    /// quotes inside strings, escapes, keys named like the list's, nested arrays) gives
    /// the items and metadata serde_json gives for the whole body.
    #[test]
    fn items_split_at_any_chunk_boundary_match_a_whole_decode() {
        let list = json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "12", "continue": "abc\"}]{["},
            "items": [
                {"metadata": {"name": "a", "annotations": {"items": "[{\"x\": 1}]", "k\\": "\\"}},
                 "spec": {"containers": [{"name": "c", "args": ["}", "]", "{", "\\\"", "é☃"]}]}},
                {},
                {"metadata": {"name": "b", "labels": {"metadata": "{"}}, "items": [[1], {"y": []}]},
            ],
            "extra": {"items": [{"not": "an item"}]},
        });
        let whole = serde_json::to_vec_pretty(&list).unwrap();
        for chunk in 1..=whole.len() {
            let (items, meta) = split(&whole, chunk);
            assert_eq!(Value::Array(items), list["items"], "chunks of {chunk}");
            assert_eq!(meta.as_ref(), Some(&list["metadata"]), "chunks of {chunk}");
        }
        let compact = serde_json::to_vec(&list).unwrap();
        assert_eq!(Value::Array(split(&compact, 7).0), list["items"]);
    }

    #[test]
    fn an_empty_or_null_items_list_has_no_items() {
        assert!(split(br#"{"metadata":{},"items":[]}"#, 3).0.is_empty());
        assert!(split(br#"{"metadata":{},"items":null}"#, 3).0.is_empty());
        assert!(split(br#"{"kind":"List"}"#, 3).1.is_none());
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error_not_a_short_list() {
        let body: &[u8] = br#"{"metadata":{},"items":[{"a":1},{"b":"#;
        let r = decode::<Value, Value>(futures::io::Cursor::new(body)).await;
        assert!(r.is_err());
        let body: &[u8] = br#"{"metadata":{"continue":"x"},"items":[{"a":1}]}"#;
        let (items, meta) = decode::<Value, Value>(futures::io::Cursor::new(body))
            .await
            .unwrap();
        assert_eq!(items, [json!({"a": 1})]);
        assert_eq!(meta, Some(json!({"continue": "x"})));
    }
}
