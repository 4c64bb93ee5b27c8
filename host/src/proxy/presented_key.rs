//! Where a client puts its API key (a header or, for Gemini clients, the `key` query
//! parameter) and the percent-decoded query pairs that both authentication and the upstream
//! allow-list read.

use hyper::HeaderMap;

/// The key a client presented: `Authorization: Bearer`, `x-api-key` (Anthropic clients),
/// `x-goog-api-key` or the `key` query parameter (Gemini clients).
pub fn presented_key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    if let Some(auth) = header("authorization") {
        let (scheme, token) = auth.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string());
    }
    header("x-api-key")
        .or_else(|| header("x-goog-api-key"))
        .map(str::to_string)
        .or_else(|| query.and_then(|q| query_param(q, "key")))
}

/// A query parameter's (percent-decoded) value.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query_pairs(query).find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Every `name=value` pair of a query, both percent-decoded and `+` read as a space (how
/// the key is found here, and how the upstream phase decides what it forwards).
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (decoded, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_key_wherever_clients_put_it() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer XJP_abc".parse().unwrap());
        assert_eq!(presented_key(&h, None).as_deref(), Some("XJP_abc"));
        h.insert("authorization", "Basic Zm9v".parse().unwrap());
        assert_eq!(presented_key(&h, None), None);
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "XJP_a".parse().unwrap());
        assert_eq!(presented_key(&h, None).as_deref(), Some("XJP_a"));
        let h = HeaderMap::new();
        assert_eq!(presented_key(&h, Some("alt=sse&key=XJP_q%2B1")).as_deref(), Some("XJP_q+1"));
        assert_eq!(presented_key(&h, Some("alt=sse")), None);
    }
}
