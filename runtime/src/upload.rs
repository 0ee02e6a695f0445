//! S3: the full log streamed as the script runs (multipart once it passes one
//! part, so memory stays bounded), the result, and the artifacts.

use std::path::{Path, PathBuf};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::result::Artifact;

/// Size of a multipart part (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 * 1024 * 1024;

/// The AWS configuration of the runtime: the function role's credentials
/// and region from the environment.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// S3 client for the runtime.
pub async fn client() -> Client {
    client_for(&sdk_config().await)
}

/// S3 client with path-style addressing when an endpoint is configured
/// (S3-compatible stores, emulators).
pub fn client_for(config: &aws_config::SdkConfig) -> Client {
    let path_style = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build(),
    )
}

fn upload_error(bucket: &str, key: &str, e: impl std::error::Error) -> Error {
    Error::Upload {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        reason: crate::error::chain(&e),
    }
}

pub async fn put(
    client: &Client,
    bucket: &str,
    key: &str,
    body: impl Into<ByteStream>,
    content_type: &str,
) -> Result<(), Error> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(body.into())
        .send()
        .await
        .map_err(|e| upload_error(bucket, key, e))?;
    Ok(())
}

/// The log upload running beside the script: send chunks, then `finish`.
pub struct LogUpload {
    pub sender: mpsc::Sender<Bytes>,
    bucket: String,
    key: String,
    task: JoinHandle<Result<(), Error>>,
}

impl LogUpload {
    pub fn start(client: Client, bucket: String, key: String) -> LogUpload {
        // A short queue: a slow S3 slows the reader, never grows memory.
        let (sender, rx) = mpsc::channel(4);
        LogUpload {
            sender,
            task: tokio::spawn(stream_log(client, bucket.clone(), key.clone(), rx)),
            bucket,
            key,
        }
    }

    /// Wait for the last part (the senders must have been dropped); the
    /// object's key.
    pub async fn finish(self) -> Result<String, Error> {
        drop(self.sender);
        match self.task.await {
            Ok(r) => r.map(|()| self.key),
            Err(e) => Err(upload_error(&self.bucket, &self.key, e)),
        }
    }
}

async fn stream_log(
    client: Client,
    bucket: String,
    key: String,
    mut rx: mpsc::Receiver<Bytes>,
) -> Result<(), Error> {
    let mut buf = BytesMut::new();
    let mut upload_id: Option<String> = None;
    let mut parts = Vec::new();
    let mut result = Ok(());
    while let Some(chunk) = rx.recv().await {
        if result.is_err() {
            continue; // keep draining so the script is never blocked
        }
        buf.extend_from_slice(&chunk);
        if buf.len() >= PART_BYTES {
            let part = buf.split().freeze();
            result = upload_part(&client, &bucket, &key, &mut upload_id, &mut parts, part).await;
        }
    }
    if let Err(e) = result {
        abort(&client, &bucket, &key, upload_id).await;
        return Err(e);
    }
    let Some(id) = upload_id.clone() else {
        return put(
            &client,
            &bucket,
            &key,
            buf.freeze(),
            "text/plain; charset=utf-8",
        )
        .await;
    };
    let done = async {
        if !buf.is_empty() {
            upload_part(
                &client,
                &bucket,
                &key,
                &mut upload_id,
                &mut parts,
                buf.freeze(),
            )
            .await?;
        }
        client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key(&key)
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| upload_error(&bucket, &key, e))?;
        Ok(())
    };
    match done.await {
        Ok(()) => Ok(()),
        Err(e) => {
            abort(&client, &bucket, &key, Some(id)).await;
            Err(e)
        }
    }
}

async fn upload_part(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &mut Option<String>,
    parts: &mut Vec<CompletedPart>,
    body: Bytes,
) -> Result<(), Error> {
    let id = match upload_id {
        Some(id) => id.clone(),
        None => {
            let created = client
                .create_multipart_upload()
                .bucket(bucket)
                .key(key)
                .content_type("text/plain; charset=utf-8")
                .send()
                .await
                .map_err(|e| upload_error(bucket, key, e))?;
            let id = created.upload_id().unwrap_or_default().to_owned();
            *upload_id = Some(id.clone());
            id
        }
    };
    let number = parts.len() as i32 + 1;
    let out = client
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(number)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| upload_error(bucket, key, e))?;
    parts.push(
        CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag().map(str::to_owned))
            .build(),
    );
    Ok(())
}

async fn abort(client: &Client, bucket: &str, key: &str, upload_id: Option<String>) {
    if let Some(id) = upload_id
        && let Err(e) = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .send()
            .await
    {
        tracing::warn!(error = %e, key, "could not abort the multipart upload of the log");
    }
}

/// Upload every regular file under `dir` (symlinks are not followed) below
/// `key_prefix`, in path order, while the total stays within `max_bytes`.
/// Returns the uploaded files and whether some were left out for the cap.
pub async fn artifacts(
    client: &Client,
    bucket: &str,
    key_prefix: &str,
    dir: &Path,
    max_bytes: u64,
) -> Result<(Vec<Artifact>, bool), Error> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files);
    files.sort();
    let (mut uploaded, mut total, mut truncated) = (Vec::new(), 0u64, false);
    for (rel, path, bytes) in files {
        if total + bytes > max_bytes {
            truncated = true;
            continue;
        }
        let key = format!("{key_prefix}{rel}");
        let body = ByteStream::from_path(&path)
            .await
            .map_err(|e| upload_error(bucket, &key, e))?;
        client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .body(body)
            .send()
            .await
            .map_err(|e| upload_error(bucket, &key, e))?;
        total += bytes;
        uploaded.push(Artifact { key, bytes });
    }
    Ok((uploaded, truncated))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            collect_files(root, &path, out);
        } else if kind.is_file()
            && let (Ok(meta), Ok(rel)) = (entry.metadata(), path.strip_prefix(root))
            && let Some(rel) = rel.to_str()
        {
            out.push((rel.to_owned(), path.clone(), meta.len()));
        }
    }
}
