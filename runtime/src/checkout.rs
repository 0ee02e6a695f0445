//! Clone one commit of a repository with libgit2 into a private directory:
//! shallow where the transport allows it, credentials only to the job's own
//! host, SSH host keys pinned, bytes and time capped.
//!
//! Blocking: run it on a blocking thread.

use std::cell::Cell;
use std::path::Path;
use std::time::Instant;

use base64::Engine;
use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, Direction, FetchOptions, Oid,
    RemoteCallbacks, RemoteRedirect, Repository, build::CheckoutBuilder,
};

use crate::error::Error;
use crate::job::{Auth, GitRef, RepoUrl, Transport};

/// The token or key, resolved.
pub enum Credentials<'a> {
    None,
    Token {
        username: &'a str,
        token: &'a str,
    },
    Ssh {
        username: &'a str,
        private_key: &'a str,
        known_hosts: &'a str,
    },
}

impl<'a> Credentials<'a> {
    /// `resolved` is the token behind a `token_ref`.
    pub fn from_auth(auth: &'a Auth, resolved: Option<&'a str>) -> Credentials<'a> {
        match auth {
            Auth::None => Credentials::None,
            Auth::Token { username, token } => Credentials::Token {
                username,
                token: token.expose(),
            },
            Auth::TokenRef { username, .. } => resolved.map_or(Credentials::None, |token| {
                Credentials::Token { username, token }
            }),
            Auth::Ssh {
                username,
                private_key,
                known_hosts,
            } => Credentials::Ssh {
                username,
                private_key: private_key.expose(),
                known_hosts,
            },
        }
    }
}

pub struct CheckoutRequest<'a> {
    pub repo: &'a RepoUrl,
    pub git_ref: &'a GitRef,
    pub credentials: Credentials<'a>,
    pub dest: &'a Path,
    pub max_bytes: u64,
    pub deadline: Instant,
    /// For the timeout message.
    pub timeout_seconds: u64,
}

#[derive(Debug)]
pub struct Checkout {
    pub commit: String,
    pub received_bytes: u64,
}

/// Why a callback stopped the transfer; libgit2 only reports "user cancelled".
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    None,
    TooLarge,
    Deadline,
    AuthRefused,
    HostKey,
}

pub fn checkout(req: &CheckoutRequest) -> Result<Checkout, Error> {
    static OPTS: std::sync::Once = std::sync::Once::new();
    OPTS.call_once(|| {
        // The indexer hashes every object as it arrives from the server;
        // hashing each blob again when checkout reads it back from the pack
        // we just wrote (sha1dc, ~40% of a large checkout's CPU) adds nothing.
        git2::opts::strict_hash_verification(false);
    });
    let url = &req.repo.url;
    let repo = Repository::init(req.dest).map_err(Error::clone_failed(url))?;
    let stop = Cell::new(Stop::None);
    let received = Cell::new(0u64);
    let known_hosts = match &req.credentials {
        Credentials::Ssh { known_hosts, .. } => parse_known_hosts(known_hosts)?,
        _ => Vec::new(),
    };
    let callbacks = || callbacks(req, &stop, &received, &known_hosts);
    let fail = |source: git2::Error| map_error(req, stop.get(), source);

    let mut remote = repo
        .remote_anonymous(url)
        .map_err(Error::clone_failed(url))?;
    let mut conn = remote
        .connect_auth(Direction::Fetch, Some(callbacks()), None)
        .map_err(fail)?;
    let (fetch_spec, wanted) = resolve(req, &conn)?;

    let mut fo = FetchOptions::new();
    fo.remote_callbacks(callbacks());
    fo.download_tags(AutotagOption::None);
    // Only the first request may redirect (a moved repository); credentials
    // are still only given to the job's host (see `callbacks`).
    fo.follow_redirects(RemoteRedirect::Initial);
    if req.repo.transport != Transport::Local {
        fo.depth(1);
    }
    let fetched = conn
        .remote()
        .fetch(&[fetch_spec.as_str()], Some(&mut fo), None);
    if let Err(e) = fetched {
        // A server that refuses to send an unadvertised commit by id: fetch
        // every branch and tag in full and look for it there.
        if stop.get() != Stop::None || !matches!(req.git_ref, GitRef::Commit(_)) {
            return Err(fail(e));
        }
        tracing::debug!(error = %e, "fetch by commit id refused; fetching all branches and tags");
        let mut fo = FetchOptions::new();
        fo.remote_callbacks(callbacks());
        fo.download_tags(AutotagOption::None);
        conn.remote()
            .fetch(
                &[
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/tags/*",
                ],
                Some(&mut fo),
                None,
            )
            .map_err(fail)?;
    }
    drop(conn);

    let commit = match &wanted {
        Wanted::Ref(name) => repo.find_reference(name).and_then(|r| r.peel_to_commit()),
        Wanted::Commit(oid) => repo.find_commit(*oid),
    }
    .map_err(|_| Error::RefNotFound {
        what: describe_ref(req.git_ref),
        url: url.clone(),
    })?;

    let mut co = CheckoutBuilder::new();
    co.force();
    // Without any attributes or eol settings libgit2's filters (crlf, ident,
    // drivers) are all no-ops, but loading them costs a realpath and a walk
    // up the directories for .gitattributes, per file.
    if !filters_may_apply(&repo, &commit) {
        co.disable_filters(true);
    }
    repo.checkout_tree(commit.as_object(), Some(&mut co))
        .map_err(Error::clone_failed(url))?;
    repo.set_head_detached(commit.id())
        .map_err(Error::clone_failed(url))?;
    Ok(Checkout {
        commit: commit.id().to_string(),
        received_bytes: received.get(),
    })
}

enum Wanted {
    Ref(String),
    Commit(Oid),
}

/// Whether checking out `commit` can involve a filter: a `.gitattributes`
/// anywhere in its tree, an attributes file outside it (`core.attributesFile`,
/// the XDG or system one), or eol conversion configured (`core.autocrlf`,
/// `core.eol`). Any doubt answers yes.
fn filters_may_apply(repo: &Repository, commit: &git2::Commit) -> bool {
    let Ok(config) = repo.config().and_then(|mut c| c.snapshot()) else {
        return true;
    };
    let set = |name: &str| match config.get_entry(name) {
        Ok(_) => true,
        Err(e) => e.code() != git2::ErrorCode::NotFound,
    };
    if ["core.autocrlf", "core.eol", "core.attributesfile"]
        .iter()
        .any(|n| set(n))
    {
        return true;
    }
    let env = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty());
    let xdg = env("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")));
    if xdg.is_some_and(|d| d.join("git/attributes").exists()) {
        return true;
    }
    // SAFETY: reads libgit2's global search path; nothing sets it concurrently.
    let system = unsafe { git2::opts::get_search_path(git2::ConfigLevel::System) };
    match system {
        Ok(paths) => {
            let paths = paths.to_string_lossy().into_owned();
            if paths
                .split(':')
                .filter(|p| !p.is_empty())
                .any(|p| Path::new(p).join("gitattributes").exists())
            {
                return true;
            }
        }
        Err(_) => return true,
    }
    let Ok(tree) = commit.tree() else {
        return true;
    };
    let mut found = false;
    let walked = tree.walk(git2::TreeWalkMode::PreOrder, |_, entry| {
        if entry.name_bytes() == b".gitattributes" {
            found = true;
            git2::TreeWalkResult::Abort
        } else {
            git2::TreeWalkResult::Ok
        }
    });
    found || walked.is_err()
}

/// Pick the remote ref to fetch from the advertised list: one round trip.
fn resolve(
    req: &CheckoutRequest,
    conn: &git2::RemoteConnection<'_, '_, '_>,
) -> Result<(String, Wanted), Error> {
    let url = &req.repo.url;
    let not_found = || Error::RefNotFound {
        what: describe_ref(req.git_ref),
        url: url.clone(),
    };
    let heads = conn.list().map_err(Error::clone_failed(url))?;
    let advertised = |name: &str| heads.iter().any(|h| h.name() == name);
    match req.git_ref {
        GitRef::Default => {
            let buf = conn.default_branch().map_err(|_| Error::RefNotFound {
                what: "a default branch (the remote has no HEAD)".into(),
                url: url.clone(),
            })?;
            let name = buf.as_str().map_err(|_| not_found())?.to_owned();
            Ok((format!("+{name}:{name}"), Wanted::Ref(name)))
        }
        GitRef::Name(name) => {
            let candidates = if name.starts_with("refs/") {
                vec![name.clone()]
            } else {
                vec![format!("refs/heads/{name}"), format!("refs/tags/{name}")]
            };
            let full = candidates
                .into_iter()
                .find(|c| advertised(c))
                .ok_or_else(not_found)?;
            Ok((format!("+{full}:{full}"), Wanted::Ref(full)))
        }
        GitRef::Commit(sha) => {
            let oid = Oid::from_str(sha).map_err(|_| not_found())?;
            Ok((sha.clone(), Wanted::Commit(oid)))
        }
    }
}

fn describe_ref(r: &GitRef) -> String {
    match r {
        GitRef::Default => "the default branch".to_owned(),
        GitRef::Name(n) => format!("ref {n:?} (no branch or tag of that name)"),
        GitRef::Commit(c) => format!("commit {c}"),
    }
}

fn callbacks<'a>(
    req: &'a CheckoutRequest,
    stop: &'a Cell<Stop>,
    received: &'a Cell<u64>,
    known_hosts: &'a [KnownHost],
) -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    let asked = Cell::new(false);
    let job_host = req.repo.host.clone();
    cb.credentials(move |url, username_from_url, allowed| {
        // Answer once: a second request means the server rejected what we
        // sent, and libgit2 would otherwise loop until "too many replays".
        if asked.replace(true) {
            stop.set(Stop::AuthRefused);
            return Err(git2::Error::from_str("credentials rejected"));
        }
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        if job_host.is_some() && host.is_some() && host != job_host {
            stop.set(Stop::AuthRefused);
            return Err(git2::Error::from_str(
                "credentials are only sent to the job's own host",
            ));
        }
        match &req.credentials {
            Credentials::Token { username, token }
                if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
            {
                Cred::userpass_plaintext(username, token)
            }
            Credentials::Ssh {
                username,
                private_key,
                ..
            } if allowed.contains(CredentialType::SSH_KEY) => Cred::ssh_key_from_memory(
                username_from_url.unwrap_or(username),
                None,
                private_key,
                None,
            ),
            Credentials::Ssh { username, .. } if allowed.contains(CredentialType::USERNAME) => {
                Cred::username(username_from_url.unwrap_or(username))
            }
            _ => {
                stop.set(Stop::AuthRefused);
                Err(git2::Error::from_str(
                    "the server asked for credentials the job does not have",
                ))
            }
        }
    });
    let https_port = url::Url::parse(&req.repo.url)
        .ok()
        .filter(|u| u.scheme() == "https")
        .and_then(|u| u.port_or_known_default());
    cb.certificate_check(move |cert, host| {
        let Some(hostkey) = cert.as_hostkey() else {
            // A TLS connection was just opened: before its first request.
            if let Some(port) = https_port {
                set_nodelay_on_connections_to(port);
            }
            // TLS: let OpenSSL verify against the system (or SSL_CERT_FILE) CAs.
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let Some(raw) = hostkey.hostkey() else {
            stop.set(Stop::HostKey);
            return Err(git2::Error::from_str("the server sent no host key"));
        };
        let port = url::Url::parse(&req.repo.url).ok().and_then(|u| u.port());
        if known_hosts
            .iter()
            .any(|k| k.matches(host, port) && k.key == raw)
        {
            Ok(CertificateCheckStatus::CertificateOk)
        } else {
            stop.set(Stop::HostKey);
            Err(git2::Error::from_str("host key mismatch"))
        }
    });
    cb.transfer_progress(move |p| {
        received.set(p.received_bytes() as u64);
        check_limits(req, stop, p.received_bytes() as u64)
    });
    cb.sideband_progress(move |_| check_limits(req, stop, received.get()));
    cb
}

/// libgit2 writes an HTTP request's headers and its body separately and never
/// sets `TCP_NODELAY`, so with Nagle's algorithm every POST of the smart
/// protocol holds its body back until the server acknowledges the headers,
/// which a server waiting for that body does only when its delayed-ACK timer
/// fires (40 ms on Linux): two POSTs cost a small clone ~80 ms. libgit2 has
/// no hook for its sockets; this runs from the certificate callback, right
/// after the TLS handshake of a new connection, and sets `TCP_NODELAY` on the
/// TCP sockets of this process connected to the repository's port (another
/// connection to that port only gains from it).
fn set_nodelay_on_connections_to(port: u16) {
    use nix::libc;
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in fds.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: getpeername and setsockopt only read and write the buffers
        // given here; on an fd that is not a connected socket (or was closed
        // meanwhile) they fail and nothing changes.
        unsafe {
            let mut addr: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            if libc::getpeername(fd, (&raw mut addr).cast(), &mut len) != 0 {
                continue;
            }
            let peer_port = match i32::from(addr.ss_family) {
                libc::AF_INET => {
                    u16::from_be((*(&raw const addr).cast::<libc::sockaddr_in>()).sin_port)
                }
                libc::AF_INET6 => {
                    u16::from_be((*(&raw const addr).cast::<libc::sockaddr_in6>()).sin6_port)
                }
                _ => continue,
            };
            if peer_port != port {
                continue;
            }
            let one: libc::c_int = 1;
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&raw const one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

fn check_limits(req: &CheckoutRequest, stop: &Cell<Stop>, received: u64) -> bool {
    if received > req.max_bytes {
        stop.set(Stop::TooLarge);
        return false;
    }
    if Instant::now() >= req.deadline {
        stop.set(Stop::Deadline);
        return false;
    }
    true
}

fn map_error(req: &CheckoutRequest, stop: Stop, source: git2::Error) -> Error {
    let url = req.repo.url.clone();
    match stop {
        Stop::TooLarge => Error::CloneTooLarge {
            url,
            limit: req.max_bytes,
        },
        Stop::Deadline => Error::CloneTimeout {
            url,
            seconds: req.timeout_seconds,
        },
        Stop::AuthRefused => Error::AuthFailed {
            url,
            reason: auth_reason(&req.credentials),
        },
        Stop::HostKey => Error::HostKeyMismatch {
            host: req.repo.host.clone().unwrap_or_default(),
        },
        Stop::None => match (source.class(), source.code()) {
            (_, git2::ErrorCode::Auth) => Error::AuthFailed {
                url,
                reason: auth_reason(&req.credentials),
            },
            (git2::ErrorClass::Ssl, _) | (_, git2::ErrorCode::Certificate) => {
                Error::Tls { url, source }
            }
            (git2::ErrorClass::Http, _)
                if source.message().contains("401") || source.message().contains("403") =>
            {
                Error::AuthFailed {
                    url,
                    reason: auth_reason(&req.credentials),
                }
            }
            _ if Instant::now() >= req.deadline => Error::CloneTimeout {
                url,
                seconds: req.timeout_seconds,
            },
            _ => Error::Clone { url, source },
        },
    }
}

fn auth_reason(c: &Credentials) -> String {
    match c {
        Credentials::None => "the repository needs credentials and the job gave none (set repository.token or token_ref)".into(),
        Credentials::Token { username, .. } => format!("the server rejected the token (user {username:?}); check that it is valid and can read the repository"),
        Credentials::Ssh { username, .. } => format!("the server rejected the SSH key (user {username:?})"),
    }
}

/// One plain `known_hosts` line.
struct KnownHost {
    patterns: Vec<String>,
    key: Vec<u8>,
}

impl KnownHost {
    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        let want = match port {
            Some(p) if p != 22 => format!("[{host}]:{p}"),
            _ => host.to_owned(),
        };
        self.patterns.iter().any(|p| p.eq_ignore_ascii_case(&want))
    }
}

fn parse_known_hosts(text: &str) -> Result<Vec<KnownHost>, Error> {
    let bad = |reason: String| Error::KnownHosts { reason };
    let mut out = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (hosts, key) = match fields.as_slice() {
            [marker, ..] if marker.starts_with('@') => {
                return Err(bad(format!("markers such as {marker} are not supported")));
            }
            [hosts, _kind, key, ..] => (hosts, key),
            _ => {
                return Err(bad(format!(
                    "line {line:?} is not `host key-type base64-key`"
                )));
            }
        };
        if hosts.starts_with("|1|") {
            return Err(bad(
                "hashed host names are not supported; use `ssh-keyscan` without -H".into(),
            ));
        }
        let key = base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|e| bad(format!("the key of {hosts} is not base64: {e}")))?;
        out.push(KnownHost {
            patterns: hosts.split(',').map(str::to_owned).collect(),
            key,
        });
    }
    if out.is_empty() {
        return Err(bad("no host key lines".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_lines_match_host_and_port() {
        let k = parse_known_hosts("# c\n[127.0.0.1]:2222,gh ssh-ed25519 AAAA\n").unwrap();
        assert!(k[0].matches("127.0.0.1", Some(2222)));
        assert!(!k[0].matches("127.0.0.1", Some(22)));
        assert!(k[0].matches("gh", None));
        assert!(parse_known_hosts("|1|abc|def ssh-ed25519 AAAA").is_err());
        assert!(parse_known_hosts("host only").is_err());
        assert!(parse_known_hosts("").is_err());
    }
}
