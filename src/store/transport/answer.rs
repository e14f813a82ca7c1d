//! Reading answers into store types; the same for S3 and OSS, whose XML bodies share names.

use crate::store::xml::{self, XmlError};
use crate::store::{ListPage, Object, Op, StoreError, WriteResult};

use super::classify;
use super::request::Response;

/// A body the store sent that does not parse.
fn bad_xml(op: Op, key: &str, e: XmlError) -> StoreError {
    StoreError::Unexpected {
        key: key.to_owned(),
        op,
        message: e.to_string(),
    }
}

/// A ListObjectsV2 answer as a page; `prefix` names the listing in errors.
pub fn list_page(resp: &Response, prefix: &str) -> Result<ListPage, StoreError> {
    let parsed = xml::parse_list(&resp.body).map_err(|e| bad_xml(Op::List, prefix, e))?;
    let next = if parsed.is_truncated {
        parsed.next_continuation_token
    } else {
        None
    };
    Ok(ListPage {
        objects: parsed.objects,
        next,
        server_time: resp.require_server_time(Op::List, prefix)?,
    })
}

/// A GetObject answer as an object.
pub fn object(resp: Response, key: &str, meta_prefix: &str) -> Result<Object, StoreError> {
    let head = resp.object_head(Op::Get, key, meta_prefix, Some(resp.body.len() as u64))?;
    Ok(Object {
        head,
        body: resp.body,
    })
}

/// A PutObject answer: the ETag header.
pub fn put_result(resp: &Response) -> WriteResult {
    WriteResult { etag: resp.etag() }
}

/// A CopyObject answer: the ETag of the `<CopyObjectResult>` (or the header).
pub fn copy_result(resp: &Response, dest: &str) -> Result<WriteResult, StoreError> {
    let etag = xml::parse_copy_result(&resp.body).map_err(|e| bad_xml(Op::Copy, dest, e))?;
    Ok(WriteResult {
        etag: etag.or_else(|| resp.etag()),
    })
}

/// A DeleteObjects answer: the keys that failed, each with its error. An absent key counts
/// as deleted (both stores delete idempotently).
pub fn delete_failures(resp: &Response) -> Result<Vec<(String, StoreError)>, StoreError> {
    let entries =
        xml::parse_delete_result(&resp.body).map_err(|e| bad_xml(Op::DeleteMany, "", e))?;
    Ok(entries
        .into_iter()
        .filter(|(_, code, _)| code != "NoSuchKey")
        .map(|(key, code, message)| {
            let err = classify::entry_error(Op::DeleteMany, &key, &code, &message);
            (key, err)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn a_truncated_page_carries_its_cursor_and_the_last_does_not() {
        let body = r#"<ListBucketResult><Name>b</Name><Prefix>p%2F</Prefix><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated><NextContinuationToken>tok</NextContinuationToken><KeyCount>1</KeyCount><Contents><Key>p/a%20b</Key><LastModified>2020-06-22T11:42:32.000Z</LastModified><ETag>"ABC"</ETag><Size>3</Size></Contents></ListBucketResult>"#;
        let date = (
            "date".to_owned(),
            "Sat, 01 Mar 2025 08:00:00 GMT".to_owned(),
        );
        let resp = Response::new(200, vec![date.clone()], Bytes::from(body));
        let page = list_page(&resp, "p/").expect("valid page");
        assert_eq!(page.next.as_deref(), Some("tok"));
        assert_eq!(page.objects[0].key, "p/a b");
        let last = body.replace("<IsTruncated>true", "<IsTruncated>false");
        let resp = Response::new(200, vec![date], Bytes::from(last));
        assert_eq!(list_page(&resp, "p/").expect("valid page").next, None);
        // No Date: lock ages could not be measured.
        let resp = Response::new(200, vec![], Bytes::from(body));
        assert!(list_page(&resp, "p/").is_err());
    }

    #[test]
    fn delete_failures_skip_absent_keys() {
        let body = r#"<DeleteResult><Error><Key>gone</Key><Code>NoSuchKey</Code><Message>x</Message></Error><Error><Key>locked</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>"#;
        let resp = Response::new(200, vec![], Bytes::from(body));
        let failures = delete_failures(&resp).expect("valid result");
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, "locked");
        assert!(matches!(failures[0].1, StoreError::Forbidden { .. }));
    }
}
