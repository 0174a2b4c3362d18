//! Just enough Kubernetes protobuf to read the request bodies kubectl sends that way:
//! kubectl's typed clients POST SelfSubjectAccessReview and SelfSubjectReview as
//! `application/vnd.kubernetes.protobuf` (`kubectl auth can-i`, `kubectl auth whoami`).
//! Responses stay JSON: client-go decodes by the response's Content-Type.

use serde_json::{Value, json};

enum Wire<'a> {
    Varint,
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<(u64, Wire<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(buf, &mut pos)?;
                out.push((field, Wire::Varint))
            }
            2 => {
                let len = varint(buf, &mut pos)? as usize;
                let bytes = buf.get(pos..pos + len)?;
                pos += len;
                out.push((field, Wire::Bytes(bytes)));
            }
            1 => pos += 8,
            5 => pos += 4,
            _ => return None,
        }
    }
    Some(out)
}

fn bytes_field<'a>(fs: &[(u64, Wire<'a>)], n: u64) -> Option<&'a [u8]> {
    fs.iter().find_map(|(f, w)| match w {
        Wire::Bytes(b) if *f == n => Some(*b),
        _ => None,
    })
}

fn string_field(fs: &[(u64, Wire<'_>)], n: u64) -> String {
    bytes_field(fs, n)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// Decodes a protobuf-enveloped review into its JSON form, or None if it is not one.
pub fn decode_review(body: &[u8]) -> Option<Value> {
    let envelope = fields(body.strip_prefix(b"k8s\0")?)?;
    let type_meta = fields(bytes_field(&envelope, 1)?)?;
    let (api_version, kind) = (string_field(&type_meta, 1), string_field(&type_meta, 2));
    let raw = fields(bytes_field(&envelope, 2).unwrap_or(&[]))?;
    let mut out = json!({"apiVersion": api_version, "kind": kind, "metadata": {}, "spec": {}});
    if kind == "SelfSubjectAccessReview" {
        let spec = fields(bytes_field(&raw, 2).unwrap_or(&[]))?;
        if let Some(ra) = bytes_field(&spec, 1) {
            let ra = fields(ra)?;
            let names = [
                "namespace",
                "verb",
                "group",
                "version",
                "resource",
                "subresource",
                "name",
            ];
            let mut attrs = serde_json::Map::new();
            for (i, n) in names.iter().enumerate() {
                attrs.insert(n.to_string(), json!(string_field(&ra, i as u64 + 1)));
            }
            out["spec"]["resourceAttributes"] = Value::Object(attrs);
        }
        if let Some(nra) = bytes_field(&spec, 2) {
            let nra = fields(nra)?;
            out["spec"]["nonResourceAttributes"] =
                json!({"path": string_field(&nra, 1), "verb": string_field(&nra, 2)});
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_what_kubectl_auth_can_i_sends() {
        // Captured from `kubectl auth can-i patch services` (kubectl 1.33).
        let body = b"k8s\x00\n2\n\x17authorization.k8s.io/v1\x12\x17SelfSubjectAccessReview\x12B\n\x10\n\x00\x12\x00\x1a\x00\"\x00*\x002\x008\x00B\x00\x12$\n\"\n\x07default\x12\x05patch\x1a\x00\"\x00*\x08services2\x00:\x00\x1a\x08\x08\x00\x12\x00\x1a\x00 \x00\x1a\x00\"\x00";
        let v = super::decode_review(body).unwrap();
        assert_eq!(v["kind"], "SelfSubjectAccessReview");
        let ra = &v["spec"]["resourceAttributes"];
        assert_eq!(
            (
                ra["namespace"].as_str(),
                ra["verb"].as_str(),
                ra["resource"].as_str()
            ),
            (Some("default"), Some("patch"), Some("services"))
        );
    }
}
